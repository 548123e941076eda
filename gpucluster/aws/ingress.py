"""Cloud side of ingress: the AWS Load Balancer Controller's IRSA role and the values only known after deployment.

The controller's IAM policy is the one AWS publishes with the controller (``data/aws-load-balancer-controller-
iam-policy.json``: kubernetes-sigs/aws-load-balancer-controller ``docs/install/iam_policy.json`` at tag v3.5.0,
the chart version gpucluster pins).
"""

from __future__ import annotations

from importlib import resources

import pulumi

from gpucluster.aws.autoscaling import IRSA_ANNOTATION
from gpucluster.aws.eks import Cluster
from gpucluster.aws.iam import service_account_role
from gpucluster.plan import Plan

LB_CONTROLLER_RELEASE = "aws-load-balancer-controller"
LB_CONTROLLER_SA = ("kube-system", "aws-load-balancer-controller")
POLICY_FILE = "data/aws-load-balancer-controller-iam-policy.json"


def load_balancer_controller_policy() -> str:
    return resources.files("gpucluster").joinpath(POLICY_FILE).read_text(encoding="utf-8")


def load_balancer_controller(
    plan: Plan, cluster: Cluster, vpc_id: pulumi.Output[str], opts: pulumi.ResourceOptions
) -> dict:
    """The controller's role (trusted by its service account only) and its ``vpcId``, when the spec fronts
    ingress with an ALB or NLB."""
    if plan.spec.ingress.load_balancer not in ("alb", "nlb") or plan.spec.ingress.controller == "none":
        return {}
    role = service_account_role(
        f"{cluster.name}-aws-load-balancer-controller",
        cluster.oidc,
        LB_CONTROLLER_SA,
        opts,
        load_balancer_controller_policy(),
    )
    service_account = {"name": LB_CONTROLLER_SA[1], "annotations": {IRSA_ANNOTATION: role.arn}}
    return {LB_CONTROLLER_RELEASE: {"vpcId": vpc_id, "serviceAccount": service_account}}
