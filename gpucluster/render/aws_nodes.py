"""EKS node lifecycle as data: the node autoscaler, Karpenter's per-pool objects, spot interruption handling.

- ``cluster-autoscaler`` resizes each pool's Auto Scaling group between ``scaling.min`` and ``max``. It finds
  the groups by their discovery tags and reads a group's GPUs, labels and taints from its node-template tags
  (``cluster_autoscaler_tags``), which lets it scale a pool up from zero nodes.
- ``karpenter`` launches each GPU pool's nodes from a ``NodePool`` and ``EC2NodeClass`` instead of a node group.
- The AWS Node Termination Handler, in queue mode, drains self-managed (Auto Scaling group) nodes on spot
  interruptions, rebalance recommendations and scale-in; managed node groups drain their nodes themselves,
  and Karpenter handles interruptions from its own queue.

Values known only once Pulumi has created the cloud side (IAM role ARNs, the SQS queue URL) are added by
``gpucluster.aws``; names both sides must agree on (node role, queues, placement groups) are defined here.
"""

from __future__ import annotations

from dataclasses import replace

from gpucluster.plan import Plan, PoolPlan
from gpucluster.render.bundle import HelmRelease
from gpucluster.render.k8s import k8s_object
from gpucluster.spec import GPU_TAINT_KEY, ClusterSpec

CLUSTER_AUTOSCALER = HelmRelease(
    name="cluster-autoscaler",
    chart="cluster-autoscaler",
    repository="https://kubernetes.github.io/autoscaler",
    version="9.54.0",  # cluster-autoscaler v1.35.0
    namespace="kube-system",
    values={},
)
KARPENTER = HelmRelease(
    name="karpenter",
    chart="karpenter",
    repository="oci://public.ecr.aws/karpenter",
    version="1.14.1",
    namespace="kube-system",
    values={},
)
NODE_TERMINATION_HANDLER = HelmRelease(
    name="aws-node-termination-handler",
    chart="aws-node-termination-handler",
    repository="oci://public.ecr.aws/aws-ec2/helm",
    version="0.27.6",  # aws-node-termination-handler v1.25.6
    namespace="kube-system",
    values={},
)
# Service accounts the IAM roles for service accounts (IRSA) trust: namespace and name.
CLUSTER_AUTOSCALER_SA = ("kube-system", "cluster-autoscaler")
KARPENTER_SA = ("kube-system", "karpenter")
NODE_TERMINATION_HANDLER_SA = ("kube-system", "aws-node-termination-handler")
# The Auto Scaling group tag the termination handler checks before draining a node of that group.
NTH_MANAGED_TAG = "aws-node-termination-handler/managed"

# Instance metadata: IMDSv2 only; 2 hops so pods on the node network can still reach it.
IMDS_HOP_LIMIT = 2
ROOT_DEVICE = "/dev/xvda"
KARPENTER_DISCOVERY_TAG = "karpenter.sh/discovery"
EFA_SECURITY_GROUP_TAG = "gpucluster.io/efa"
CA_TAG_PREFIX = "k8s.io/cluster-autoscaler"


def karpenter_node_role(spec: ClusterSpec) -> str:
    """The IAM role of Karpenter's nodes (IAM allows 64 characters)."""
    return f"{spec.name[:49]}-karpenter-node"


def interruption_queue(spec: ClusterSpec, consumer: str) -> str:
    """SQS queue receiving EC2 interruption events for ``consumer`` (karpenter or the termination handler)."""
    return f"{spec.name}-{consumer}"


def placement_group(spec: ClusterSpec, pool: PoolPlan) -> str:
    """The cluster placement group of an EFA pool (one per pool: a placement group lives in one AZ)."""
    return f"{spec.name}-{pool.name}"


def taint_value(value: str, effect: str) -> str:
    return f"{value}:{effect}"


def cluster_autoscaler_tags(spec: ClusterSpec, pool: PoolPlan) -> dict[str, str]:
    """Auto Scaling group tags: discovery by this cluster's autoscaler, and the node template (GPUs, labels,
    taints) it uses to simulate a node of a group that has none yet."""
    template = f"{CA_TAG_PREFIX}/node-template"
    tags = {
        f"{CA_TAG_PREFIX}/enabled": "true",
        f"{CA_TAG_PREFIX}/{spec.name}": "owned",
        f"{template}/resources/{GPU_TAINT_KEY}": str(pool.gpus_per_node),
    }
    tags.update({f"{template}/label/{key}": value for key, value in pool.labels.items()})
    tags.update({f"{template}/taint/{t.key}": taint_value(t.value, t.effect) for t in pool.taints})
    return tags


def node_releases(plan: Plan) -> list[HelmRelease]:
    """The node autoscaler the spec names."""
    spec = plan.spec
    if spec.platform != "aws":
        return []
    assert spec.aws is not None, "the spec requires an aws section on platform aws"
    releases = []
    values: dict[str, object]
    if spec.autoscaling.node_autoscaler == "cluster-autoscaler":
        values = {
            "cloudProvider": "aws",
            "awsRegion": spec.aws.region,
            "autoDiscovery": {"clusterName": spec.name},
            "rbac": {"serviceAccount": {"name": CLUSTER_AUTOSCALER_SA[1]}},
            # Pools of one GPU model in several AZs stay balanced; pick the group wasting least.
            "extraArgs": {"balance-similar-node-groups": True, "expander": "least-waste"},
        }
        releases.append(replace(CLUSTER_AUTOSCALER, values=values))
    if spec.autoscaling.node_autoscaler == "karpenter":
        values = {
            "settings": {"clusterName": spec.name, "interruptionQueue": interruption_queue(spec, "karpenter")},
            "serviceAccount": {"name": KARPENTER_SA[1]},
        }
        releases.append(replace(KARPENTER, values=values))
    return releases


def termination_handler_release(plan: Plan) -> HelmRelease | None:
    """The Node Termination Handler when self-managed groups exist (not with Karpenter, which has its own queue).

    The Pulumi program deploys it with the node groups it serves; it is not part of the rendered bundle,
    as it only makes sense with the queue and groups the program creates."""
    spec = plan.spec
    if spec.aws is None or spec.platform != "aws" or spec.autoscaling.node_autoscaler == "karpenter":
        return None
    if not any(pool.self_managed for pool in plan.pools):
        return None
    values = {
        "enableSqsTerminationDraining": True,
        "awsRegion": spec.aws.region,
        "checkASGTagBeforeDraining": True,
        "managedTag": NTH_MANAGED_TAG,
        "serviceAccount": {"name": NODE_TERMINATION_HANDLER_SA[1]},
    }
    return replace(NODE_TERMINATION_HANDLER, values=values)


def karpenter_objects(plan: Plan) -> list[dict]:
    """One EC2NodeClass and NodePool per GPU pool: its instance types, capacity types, zone, labels, taints,
    GPU limit, IMDSv2 and encrypted root volume."""
    spec = plan.spec
    if spec.autoscaling.node_autoscaler != "karpenter":
        return []
    objects = []
    for pool in plan.pools:
        objects += [_ec2_node_class(spec, pool), _node_pool(pool)]
    return objects


def _ec2_node_class(spec: ClusterSpec, pool: PoolPlan) -> dict:
    discovery = {KARPENTER_DISCOVERY_TAG: spec.name}
    security_groups = [{"tags": discovery}]
    body: dict = {
        # The EKS-optimized AL2023 AMI; Karpenter picks its NVIDIA variant for GPU instance types.
        "amiSelectorTerms": [{"alias": "al2023@latest"}],
        "role": karpenter_node_role(spec),
        "subnetSelectorTerms": [{"tags": discovery}],
        "securityGroupSelectorTerms": security_groups,
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": IMDS_HOP_LIMIT,
            "httpTokens": "required",
        },
        "blockDeviceMappings": [
            {
                "deviceName": ROOT_DEVICE,
                "ebs": {
                    "volumeSize": f"{pool.spec.disk_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        "tags": {"gpucluster.io/cluster": spec.name, "gpucluster.io/pool": pool.name},
    }
    if pool.spec.efa:
        # Karpenter adds the instance type's EFA interfaces for pods requesting vpc.amazonaws.com/efa.
        security_groups.append({"tags": {EFA_SECURITY_GROUP_TAG: spec.name}})
        body["placementGroupSelector"] = {"name": placement_group(spec, pool)}
    return k8s_object("karpenter.k8s.aws/v1", "EC2NodeClass", pool.name, spec=body)


def _node_pool(pool: PoolPlan) -> dict:
    capacity = pool.spec.capacity.type
    capacity_types = {"on-demand": ["on-demand"], "spot": ["spot"], "mixed": ["spot", "on-demand"]}[capacity]
    requirements = [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(pool.spec.instance_types)},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity_types},
    ]
    if pool.spec.availability_zone:
        requirements.append(
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [pool.spec.availability_zone]}
        )
    taints = [{"key": t.key, **({"value": t.value} if t.value else {}), "effect": t.effect} for t in pool.taints]
    template = {
        "metadata": {"labels": dict(pool.labels)},
        "spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": pool.name},
            "requirements": requirements,
            "taints": taints,
        },
    }
    body = {
        "template": template,
        "limits": {GPU_TAINT_KEY: str(pool.max_gpus)},
        # Only empty GPU nodes are removed: consolidating busy ones would restart long training jobs.
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m"},
    }
    return k8s_object("karpenter.sh/v1", "NodePool", pool.name, spec=body)


def ami_parameter(version: str, variant: str, field: str) -> str:
    """Public SSM parameter of the EKS-optimized AL2023 AMI (variant ``standard`` or ``nvidia``)."""
    return f"/aws/service/eks/optimized-ami/{version}/amazon-linux-2023/x86_64/{variant}/recommended/{field}"
