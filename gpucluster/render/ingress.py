"""The ingress path: ingress-nginx, and on AWS the load balancer in front of it.

``ingress.load_balancer`` decides what fronts the controller:

- ``service``: the controller's Service of type LoadBalancer (whatever the platform provides);
- ``nlb``: the same Service, turned into an NLB by the AWS Load Balancer Controller;
- ``alb``: an ALB, made by the AWS Load Balancer Controller from the ``ingress-nginx-alb`` Ingress,
  forwarding to the controller's Service (seed 004: user -> ALB -> nginx -> pods).

Chart values are plain data. Values only known once Pulumi has created the cloud resources (the VPC id,
the controller's IAM role for its service account) are added by the Pulumi program, not here.
"""

from __future__ import annotations

from gpucluster.plan import Plan
from gpucluster.render.bundle import HelmRelease
from gpucluster.render.k8s import k8s_object
from gpucluster.spec import INGRESS_NAMESPACE, ClusterSpec

INGRESS_NGINX_CHART = "ingress-nginx"
INGRESS_NGINX_REPOSITORY = "https://kubernetes.github.io/ingress-nginx"
INGRESS_NGINX_VERSION = "4.15.1"  # controller v1.15.1
AWS_LB_CONTROLLER_CHART = "aws-load-balancer-controller"
AWS_LB_CONTROLLER_REPOSITORY = "https://aws.github.io/eks-charts"
AWS_LB_CONTROLLER_VERSION = "3.5.0"  # controller v3.5.0
# The controller Service the ingress-nginx chart names after a release called "ingress-nginx".
INGRESS_NGINX_SERVICE = "ingress-nginx-controller"
ALB_INGRESS_NAME = "ingress-nginx-alb"


def _aws_target_type(spec: ClusterSpec) -> str:
    """``ip`` where pod IPs are VPC addresses (the AWS VPC CNI); ``instance`` (via node ports) otherwise,
    since Cilium's overlay addresses are not reachable from a load balancer."""
    return "ip" if spec.network.cni == "aws-vpc-cni" else "instance"


def _controller_service(spec: ClusterSpec) -> dict:
    load_balancer = spec.ingress.load_balancer
    if load_balancer == "alb":
        # The ALB forwards to this Service; NodePort serves both ALB target types.
        return {"type": "NodePort"}
    if load_balancer == "nlb":
        annotations = {
            "service.beta.kubernetes.io/aws-load-balancer-type": "external",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": _aws_target_type(spec),
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
        }
        return {"type": "LoadBalancer", "annotations": annotations}
    return {"type": "LoadBalancer"}


def _ingress_nginx_values(spec: ClusterSpec) -> dict:
    """Two replicas (the chart then adds its own PodDisruptionBudget), metrics and a ServiceMonitor
    when monitoring is on. Behind an ALB, nginx trusts its X-Forwarded-* headers so backends see the
    client's address and scheme."""
    monitoring = spec.monitoring.enabled
    controller: dict = {
        "replicaCount": 2,
        "service": _controller_service(spec),
        "metrics": {"enabled": monitoring, "serviceMonitor": {"enabled": monitoring}},
    }
    if spec.ingress.load_balancer == "alb":
        controller["config"] = {"use-forwarded-headers": "true"}
    return {"controller": controller}


def _aws_lb_controller_values(spec: ClusterSpec) -> dict:
    """The EKS cluster's name and region. The chart also wants ``vpcId`` where pods cannot reach the
    instance metadata service (IMDSv2 with hop limit 1, the secure default); it is a Pulumi output, so
    the Pulumi program adds it."""
    assert spec.aws is not None, "the spec requires an aws section wherever an ALB or NLB is allowed"
    return {"clusterName": spec.name, "region": spec.aws.region}


def ingress_releases(plan: Plan) -> list[HelmRelease]:
    """ingress-nginx when the spec asks for it, plus the AWS Load Balancer Controller behind an ALB or NLB."""
    spec = plan.spec
    if spec.ingress.controller != "nginx":
        return []
    releases = [
        HelmRelease(
            name="ingress-nginx",
            chart=INGRESS_NGINX_CHART,
            repository=INGRESS_NGINX_REPOSITORY,
            version=INGRESS_NGINX_VERSION,
            namespace=INGRESS_NAMESPACE,
            values=_ingress_nginx_values(spec),
        )
    ]
    if spec.ingress.load_balancer in ("alb", "nlb"):
        releases.append(
            HelmRelease(
                name="aws-load-balancer-controller",
                chart=AWS_LB_CONTROLLER_CHART,
                repository=AWS_LB_CONTROLLER_REPOSITORY,
                version=AWS_LB_CONTROLLER_VERSION,
                namespace="kube-system",
                values=_aws_lb_controller_values(spec),
            )
        )
    return releases


def alb_ingress(plan: Plan) -> list[dict]:
    """The Ingress from which the AWS Load Balancer Controller builds the internet-facing ALB in front of nginx.

    It listens on HTTP 80 only: the spec names no ACM certificate yet, and HTTPS on 443 (with the
    certificate ARN annotation) comes with that field. ALB health checks go to nginx's ``/healthz``,
    which answers 200 on port 80; its default path ``/`` would answer 404 and mark every target unhealthy.
    """
    spec = plan.spec
    if spec.ingress.controller != "nginx" or spec.ingress.load_balancer != "alb":
        return []
    annotations = {
        "alb.ingress.kubernetes.io/scheme": "internet-facing",
        "alb.ingress.kubernetes.io/target-type": _aws_target_type(spec),
        "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}]',
        "alb.ingress.kubernetes.io/healthcheck-path": "/healthz",
    }
    backend = {"service": {"name": INGRESS_NGINX_SERVICE, "port": {"number": 80}}}
    rule = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
    spec_body = {"ingressClassName": "alb", "rules": [rule]}
    ingress = k8s_object(
        "networking.k8s.io/v1", "Ingress", ALB_INGRESS_NAME, INGRESS_NAMESPACE, annotations=annotations, spec=spec_body
    )
    return [ingress]
