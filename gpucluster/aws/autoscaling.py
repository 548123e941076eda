"""Cloud side of node autoscaling and spot interruptions: IRSA roles for cluster-autoscaler, Karpenter and the
Node Termination Handler, and the SQS queues EventBridge feeds with EC2 interruption events.

Each returns the Helm values only known after deployment (role ARNs, queue URL), keyed by release name;
the charts and their static values come from ``gpucluster.render.aws_nodes``.
"""

from __future__ import annotations

import json

import pulumi
from pulumi_aws import cloudwatch, iam, sqs

from gpucluster.aws.eks import Cluster
from gpucluster.aws.iam import policy_document, service_account_role
from gpucluster.aws.nodes import SelfManagedNodeRole
from gpucluster.plan import Plan
from gpucluster.render.aws_nodes import (
    CA_TAG_PREFIX,
    CLUSTER_AUTOSCALER,
    CLUSTER_AUTOSCALER_SA,
    KARPENTER,
    KARPENTER_SA,
    NODE_TERMINATION_HANDLER,
    NODE_TERMINATION_HANDLER_SA,
    interruption_queue,
    karpenter_node_role,
)

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
# EventBridge events that announce an instance going away (or a better time to move off it).
INTERRUPTION_EVENTS = {
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "scheduled-change": ("aws.health", "AWS Health Event"),
}
ASG_TERMINATION_EVENT = {"asg-termination": ("aws.autoscaling", "EC2 Instance-terminate Lifecycle Action")}


def _service_account_values(role: iam.Role) -> dict:
    return {"annotations": {IRSA_ANNOTATION: role.arn}}


class InterruptionQueue(pulumi.ComponentResource):
    """An encrypted SQS queue receiving EC2 interruption events through EventBridge rules."""

    def __init__(self, name: str, events: dict[str, tuple[str, str]], opts: pulumi.ResourceOptions):
        super().__init__("gpucluster:aws:InterruptionQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.queue = sqs.Queue(name, name=name, message_retention_seconds=300, sqs_managed_sse_enabled=True, opts=child)
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
            "Action": "sqs:SendMessage",
            "Resource": self.queue.arn,
        }
        sqs.QueuePolicy(
            name,
            queue_url=self.queue.url,
            policy=self.queue.arn.apply(lambda arn: policy_document([{**statement, "Resource": arn}])),
            opts=child,
        )
        for rule_name, (source, detail_type) in events.items():
            rule = cloudwatch.EventRule(
                f"{name}-{rule_name}",
                event_pattern=json.dumps({"source": [source], "detail-type": [detail_type]}),
                opts=child,
            )
            cloudwatch.EventTarget(
                f"{name}-{rule_name}", rule=rule.name, arn=self.queue.arn, opts=pulumi.ResourceOptions(parent=rule)
            )
        self.register_outputs({"url": self.queue.url})


def cluster_autoscaler(plan: Plan, cluster: Cluster, opts: pulumi.ResourceOptions) -> dict:
    """IRSA role reading every group but resizing only groups tagged as this cluster's."""
    region = plan.spec.aws.region if plan.spec.aws else "*"
    owned = {"StringEquals": {f"aws:ResourceTag/{CA_TAG_PREFIX}/{cluster.name}": "owned"}}
    policy = policy_document(
        [
            {
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                ],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                "Resource": "*",
                "Condition": owned,
            },
            {
                "Effect": "Allow",
                "Action": "eks:DescribeNodegroup",
                "Resource": f"arn:aws:eks:{region}:*:nodegroup/{cluster.name}/*",
            },
        ]
    )
    role = service_account_role(f"{cluster.name}-cluster-autoscaler", cluster.oidc, CLUSTER_AUTOSCALER_SA, opts, policy)
    return {CLUSTER_AUTOSCALER.name: {"rbac": {"serviceAccount": _service_account_values(role)}}}


def node_termination_handler(plan: Plan, cluster: Cluster, opts: pulumi.ResourceOptions) -> dict:
    """Queue-mode termination handler: its queue (with ASG termination lifecycle events) and IRSA role."""
    queue = InterruptionQueue(
        interruption_queue(plan.spec, "nth"), {**INTERRUPTION_EVENTS, **ASG_TERMINATION_EVENT}, opts
    )
    owned = {"StringEquals": {f"aws:ResourceTag/kubernetes.io/cluster/{cluster.name}": "owned"}}
    policy = queue.queue.arn.apply(
        lambda arn: policy_document(
            [
                {
                    "Effect": "Allow",
                    "Action": "autoscaling:CompleteLifecycleAction",
                    "Resource": "*",
                    "Condition": owned,
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeInstances",
                    ],
                    "Resource": "*",
                },
                {"Effect": "Allow", "Action": ["sqs:DeleteMessage", "sqs:ReceiveMessage"], "Resource": arn},
            ]
        )
    )
    role = service_account_role(
        f"{cluster.name}-node-termination-handler", cluster.oidc, NODE_TERMINATION_HANDLER_SA, opts, policy
    )
    values = {"queueURL": queue.queue.url, "serviceAccount": _service_account_values(role)}
    return {NODE_TERMINATION_HANDLER.name: values}


def karpenter(plan: Plan, cluster: Cluster, opts: pulumi.ResourceOptions) -> dict:
    """Karpenter's node role (named as the EC2NodeClasses expect), interruption queue and controller role,
    which may launch and terminate only instances and launch templates tagged as this cluster's."""
    spec = plan.spec
    region = spec.aws.region if spec.aws else "*"
    node_role = SelfManagedNodeRole(
        cluster, f"{cluster.name}-karpenter-node", opts, role_name=karpenter_node_role(spec)
    )
    queue = InterruptionQueue(interruption_queue(spec, "karpenter"), INTERRUPTION_EVENTS, opts)

    def tagged(condition_key: str) -> dict:
        return {f"{condition_key}/kubernetes.io/cluster/{cluster.name}": "owned"}

    def region_tag(condition_key: str) -> dict:
        return {f"{condition_key}/topology.kubernetes.io/region": region}

    owned_request = {
        "StringEquals": tagged("aws:RequestTag"),
        "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
    }
    owned_resource = {"StringEquals": tagged("aws:ResourceTag")}
    ec2_arn = f"arn:aws:ec2:{region}"

    def document(args: list[str]) -> str:
        queue_arn, node_role_arn = args
        return policy_document(
            [
                {
                    "Effect": "Allow",
                    "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
                    "Resource": [
                        f"{ec2_arn}::image/*",
                        f"{ec2_arn}::snapshot/*",
                        f"{ec2_arn}:*:security-group/*",
                        f"{ec2_arn}:*:subnet/*",
                        f"{ec2_arn}:*:placement-group/*",
                        f"{ec2_arn}:*:capacity-reservation/*",
                    ],
                },
                {
                    "Effect": "Allow",
                    "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
                    "Resource": f"{ec2_arn}:*:launch-template/*",
                    "Condition": owned_resource,
                },
                {
                    "Effect": "Allow",
                    "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate", "ec2:CreateTags"],
                    "Resource": [
                        f"{ec2_arn}:*:{kind}/*"
                        for kind in (
                            "fleet",
                            "instance",
                            "volume",
                            "network-interface",
                            "launch-template",
                            "spot-instances-request",
                        )
                    ],
                    "Condition": owned_request,
                },
                {
                    "Effect": "Allow",
                    "Action": ["ec2:CreateTags", "ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                    "Resource": [f"{ec2_arn}:*:instance/*", f"{ec2_arn}:*:launch-template/*"],
                    "Condition": owned_resource,
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "ec2:DescribeAvailabilityZones",
                        "ec2:DescribeCapacityReservations",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstances",
                        "ec2:DescribeInstanceTypeOfferings",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplates",
                        "ec2:DescribePlacementGroups",
                        "ec2:DescribeSecurityGroups",
                        "ec2:DescribeSpotPriceHistory",
                        "ec2:DescribeSubnets",
                        "pricing:GetProducts",
                    ],
                    "Resource": "*",
                },
                {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "arn:aws:ssm:*::parameter/aws/service/*"},
                {
                    "Effect": "Allow",
                    "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
                    "Resource": queue_arn,
                },
                {
                    "Effect": "Allow",
                    "Action": "iam:PassRole",
                    "Resource": node_role_arn,
                    "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
                },
                {
                    "Effect": "Allow",
                    "Action": ["iam:CreateInstanceProfile", "iam:TagInstanceProfile"],
                    "Resource": "arn:aws:iam::*:instance-profile/*",
                    "Condition": {"StringEquals": {**tagged("aws:RequestTag"), **region_tag("aws:RequestTag")}},
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "iam:AddRoleToInstanceProfile",
                        "iam:DeleteInstanceProfile",
                        "iam:RemoveRoleFromInstanceProfile",
                    ],
                    "Resource": "arn:aws:iam::*:instance-profile/*",
                    "Condition": {"StringEquals": {**tagged("aws:ResourceTag"), **region_tag("aws:ResourceTag")}},
                },
                {
                    "Effect": "Allow",
                    "Action": ["iam:GetInstanceProfile", "iam:ListInstanceProfiles"],
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Action": "eks:DescribeCluster",
                    "Resource": f"arn:aws:eks:{region}:*:cluster/{cluster.name}",
                },
            ]
        )

    policy = pulumi.Output.all(queue.queue.arn, node_role.role.arn).apply(document)
    role = service_account_role(f"{cluster.name}-karpenter", cluster.oidc, KARPENTER_SA, opts, policy)
    return {KARPENTER.name: {"serviceAccount": _service_account_values(role)}}
