"""Worker nodes: the untainted system node group, and one node group per GPU pool carrying the pool's labels
and taints from the plan.

- On-demand and all-spot pools are EKS managed node groups (``capacityType: SPOT`` with the pool's instance
  types); labels and taints go through the node group's API, and EKS drains nodes on spot interruptions
  and rebalance recommendations itself.
- Mixed pools (on-demand base + percentage above it) are self-managed Auto Scaling groups with a
  MixedInstancesPolicy (price-capacity-optimized spot, capacity rebalance). Their nodes join through an
  AL2023 ``nodeadm`` NodeConfig whose kubelet flags register the labels and taints; the AWS Node
  Termination Handler (queue mode) drains them on interruptions, through a termination lifecycle hook.

Every launch template requires IMDSv2 (hop limit 2) and an encrypted gp3 root volume of ``disk_gib``; GPU
nodes run the EKS-optimized AL2023 NVIDIA AMI named by the public SSM parameter for the Kubernetes version.
EFA pools get the instance type's EFA interfaces, their placement group and their one AZ's subnet.
"""

from __future__ import annotations

import base64

import pulumi
from pulumi_aws import autoscaling, ec2, eks, iam, ssm

from gpucluster.aws.eks import Cluster, present
from gpucluster.aws.iam import service_role
from gpucluster.aws.network import Network
from gpucluster.plan import POOL_LABEL, Plan, PoolPlan, SystemPoolPlan
from gpucluster.render.aws_nodes import (
    IMDS_HOP_LIMIT,
    NTH_MANAGED_TAG,
    ROOT_DEVICE,
    ami_parameter,
    cluster_autoscaler_tags,
)
from gpucluster.render.k8s import to_yaml

NODE_POLICIES = [
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEKS_CNI_Policy",
    "AmazonSSMManagedInstanceCore",  # Session Manager instead of SSH keys
]
MNG_TAINT_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}
TERMINATION_HOOK = "drain-before-termination"
SYSTEM_DISK_GIB = 50


def _ssm_value(name: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    return ssm.get_parameter_output(name=name, opts=pulumi.InvokeOutputOptions(parent=parent)).value


def launch_template(
    name: str,
    disk_gib: int,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    *,
    security_groups: list[pulumi.Input[str]] | None = None,
    efa_interfaces: int = 0,
    placement_group: pulumi.Input[str] | None = None,
    image_id: pulumi.Input[str] | None = None,
    instance_profile: pulumi.Input[str] | None = None,
    user_data: pulumi.Input[str] | None = None,
) -> ec2.LaunchTemplate:
    """IMDSv2 with hop limit 2, encrypted gp3 root volume, instance and volume tags, and with ``efa_interfaces``
    one EFA interface per network card (the first is the primary, device index 0)."""
    args: dict = {
        "metadata_options": {
            "http_endpoint": "enabled",
            "http_tokens": "required",
            "http_put_response_hop_limit": IMDS_HOP_LIMIT,
        },
        "block_device_mappings": [
            {
                "device_name": ROOT_DEVICE,
                "ebs": {
                    "volume_size": disk_gib,
                    "volume_type": "gp3",
                    "encrypted": "true",
                    "delete_on_termination": "true",
                },
            }
        ],
        "tag_specifications": [
            {"resource_type": "instance", "tags": tags},
            {"resource_type": "volume", "tags": tags},
        ],
        "update_default_version": True,
    }
    if efa_interfaces:
        args["network_interfaces"] = [
            {
                "device_index": 0 if card == 0 else 1,
                "network_card_index": card,
                "interface_type": "efa",
                "security_groups": security_groups,
                "delete_on_termination": "true",
            }
            for card in range(efa_interfaces)
        ]
    elif security_groups:
        args["vpc_security_group_ids"] = security_groups
    if placement_group is not None:
        args["placement"] = {"group_name": placement_group}
    if image_id is not None:
        args["image_id"] = image_id
    if instance_profile is not None:
        args["iam_instance_profile"] = {"arn": instance_profile}
    if user_data is not None:
        args["user_data"] = user_data
    return ec2.LaunchTemplate(name, **args, opts=opts)


def node_config(cluster: str, endpoint: str, certificate_authority: str, service_cidr: str, pool: PoolPlan) -> str:
    """The AL2023 ``nodeadm`` user data (MIME) joining a self-managed node with its pool's labels and taints."""
    labels = ",".join(f"{key}={value}" for key, value in pool.labels.items())
    taints = ",".join(f"{t.key}={t.value}:{t.effect}" for t in pool.taints)
    config = {
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {
            "cluster": {
                "name": cluster,
                "apiServerEndpoint": endpoint,
                "certificateAuthority": certificate_authority,
                "cidr": service_cidr,
            },
            "kubelet": {
                "flags": [f"--node-labels={labels}", *([f"--register-with-taints={taints}"] if taints else [])]
            },
        },
    }
    boundary = "GPUCLUSTER"
    return (
        f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: application/node.eks.aws\n\n---\n{to_yaml(config)}\n--{boundary}--\n"
    )


class NodeRole(pulumi.ComponentResource):
    """The IAM role of managed node groups' nodes (EKS grants it cluster access itself)."""

    def __init__(self, cluster: str, opts: pulumi.ResourceOptions):
        super().__init__("gpucluster:aws:NodeRole", f"{cluster}-nodes", None, opts)
        self.role = service_role(
            f"{cluster}-nodes", "ec2.amazonaws.com", NODE_POLICIES, pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({"arn": self.role.arn})


class SelfManagedNodeRole(pulumi.ComponentResource):
    """Role and instance profile of self-managed nodes, with the EC2_LINUX access entry that lets them join."""

    def __init__(self, cluster: Cluster, name: str, opts: pulumi.ResourceOptions, role_name: str | None = None):
        super().__init__("gpucluster:aws:SelfManagedNodeRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = service_role(name, "ec2.amazonaws.com", NODE_POLICIES, child, role_name=role_name)
        self.profile = iam.InstanceProfile(name, role=self.role.name, opts=child)
        eks.AccessEntry(
            name, cluster_name=cluster.cluster.name, principal_arn=self.role.arn, type="EC2_LINUX", opts=child
        )
        self.register_outputs({"arn": self.role.arn})


def _managed_scaling(minimum: int, maximum: int, desired: int) -> eks.NodeGroupScalingConfigArgsDict:
    return {"min_size": minimum, "max_size": maximum, "desired_size": desired}


def _managed_taint(key: str, value: str, effect: str) -> eks.NodeGroupTaintArgsDict:
    taint: eks.NodeGroupTaintArgsDict = {"key": key, "effect": MNG_TAINT_EFFECTS[effect]}
    if value:
        taint["value"] = value
    return taint


class SystemNodeGroup(pulumi.ComponentResource):
    """CPU nodes without taints (the spec's system pool) for CoreDNS, the controllers and the operators."""

    def __init__(self, system: SystemPoolPlan, cluster: Cluster, network: Network, role: NodeRole, tags, opts):
        super().__init__("gpucluster:aws:SystemNodeGroup", f"{cluster.name}-{system.name}", None, opts)
        child = pulumi.ResourceOptions(parent=self)
        template = launch_template(
            f"{cluster.name}-{system.name}", SYSTEM_DISK_GIB, {**tags, POOL_LABEL: system.name}, child
        )
        scaling = system.spec.scaling
        self.node_group = eks.NodeGroup(
            f"{cluster.name}-{system.name}",
            cluster_name=cluster.cluster.name,
            node_role_arn=role.role.arn,
            subnet_ids=[subnet.id for subnet in network.private_subnets.values()],
            instance_types=list(system.spec.instance_types),
            capacity_type="ON_DEMAND",
            ami_type="AL2023_x86_64_STANDARD",
            release_version=_ssm_value(ami_parameter(cluster.version, "standard", "release_version"), self),
            scaling_config=_managed_scaling(scaling.min, scaling.max, scaling.desired),
            update_config={"max_unavailable": 1},
            labels=dict(system.labels),
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            opts=child,
        )
        self.register_outputs({"name": self.node_group.node_group_name})


def _pool_subnets(pool: PoolPlan, network: Network) -> list[pulumi.Output[str]]:
    if pool.spec.availability_zone:
        return [network.private_subnets[pool.spec.availability_zone].id]
    return [subnet.id for subnet in network.private_subnets.values()]


def _gpu_launch_template(
    pool: PoolPlan, cluster: Cluster, network: Network, tags: dict, opts, self_managed: bool, **extra
) -> ec2.LaunchTemplate:
    """Managed node groups get the cluster security group from EKS unless the template names groups (EFA
    interfaces must); self-managed nodes always name it."""
    security_groups: list[pulumi.Input[str]] = []
    if self_managed or pool.efa_interfaces:
        security_groups.append(cluster.security_group_id)
    if pool.efa_interfaces:
        assert network.efa_security_group is not None, "EFA pools need network.fabric 'efa' (a spec rule)"
        security_groups.append(network.efa_security_group.id)
    placement = network.placement_groups.get(pool.name)
    return launch_template(
        f"{cluster.name}-{pool.name}",
        pool.spec.disk_gib,
        {**tags, POOL_LABEL: pool.name},
        opts,
        security_groups=security_groups or None,
        efa_interfaces=pool.efa_interfaces,
        placement_group=placement.name if placement is not None else None,
        **extra,
    )


class ManagedGpuPool(pulumi.ComponentResource):
    """A managed node group of one GPU pool: the NVIDIA AL2023 AMI, the pool's labels and taints."""

    def __init__(self, plan: Plan, pool: PoolPlan, cluster: Cluster, network: Network, role: NodeRole, tags, opts):
        super().__init__("gpucluster:aws:ManagedGpuPool", f"{cluster.name}-{pool.name}", None, opts)
        child = pulumi.ResourceOptions(parent=self)
        template = _gpu_launch_template(pool, cluster, network, tags, child, self_managed=False)
        scaling = pool.spec.scaling
        autoscaled = plan.spec.autoscaling.node_autoscaler == "cluster-autoscaler"
        self.node_group = eks.NodeGroup(
            f"{cluster.name}-{pool.name}",
            cluster_name=cluster.cluster.name,
            node_role_arn=role.role.arn,
            subnet_ids=_pool_subnets(pool, network),
            instance_types=list(pool.spec.instance_types),
            capacity_type="SPOT" if pool.spec.capacity.type == "spot" else "ON_DEMAND",
            ami_type="AL2023_x86_64_NVIDIA",
            release_version=_ssm_value(ami_parameter(cluster.version, "nvidia", "release_version"), self),
            scaling_config=_managed_scaling(scaling.min, scaling.max, scaling.desired),
            update_config={"max_unavailable": 1},
            labels=dict(pool.labels),
            taints=[_managed_taint(t.key, t.value, t.effect) for t in pool.taints],
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["scalingConfig.desiredSize"] if autoscaled else None
            ),
        )
        self.asg_name = self.node_group.resources.apply(
            lambda rs: present(present(rs[0].autoscaling_groups, "node group ASG")[0].name, "node group ASG name")
        )
        if autoscaled:
            for key, value in cluster_autoscaler_tags(plan.spec, pool).items():
                autoscaling.Tag(
                    f"{cluster.name}-{pool.name}-{key}",
                    autoscaling_group_name=self.asg_name,
                    tag={"key": key, "value": value, "propagate_at_launch": False},
                    opts=pulumi.ResourceOptions(parent=self.node_group),
                )
        self.register_outputs({"name": self.node_group.node_group_name})


class SelfManagedGpuPool(pulumi.ComponentResource):
    """An Auto Scaling group with a MixedInstancesPolicy for a pool mixing on-demand and spot capacity."""

    def __init__(
        self, plan: Plan, pool: PoolPlan, cluster: Cluster, network: Network, role: SelfManagedNodeRole, tags, opts
    ):
        super().__init__("gpucluster:aws:SelfManagedGpuPool", f"{cluster.name}-{pool.name}", None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = plan.spec
        user_data = pulumi.Output.all(cluster.endpoint, cluster.certificate_authority).apply(
            lambda args: base64.b64encode(
                node_config(cluster.name, args[0], args[1], str(spec.kubernetes.service_cidr), pool).encode()
            ).decode()
        )
        template = _gpu_launch_template(
            pool,
            cluster,
            network,
            tags,
            child,
            self_managed=True,
            image_id=_ssm_value(ami_parameter(cluster.version, "nvidia", "image_id"), self),
            instance_profile=role.profile.arn,
            user_data=user_data,
        )
        capacity, scaling = pool.spec.capacity, pool.spec.scaling
        autoscaled = spec.autoscaling.node_autoscaler == "cluster-autoscaler"
        group_tags = {
            "Name": f"{cluster.name}-{pool.name}",
            f"kubernetes.io/cluster/{cluster.name}": "owned",
            NTH_MANAGED_TAG: "true",
            **(cluster_autoscaler_tags(spec, pool) if autoscaled else {}),
        }
        self.group = autoscaling.Group(
            f"{cluster.name}-{pool.name}",
            name=f"{cluster.name}-{pool.name}",
            min_size=scaling.min,
            max_size=scaling.max,
            desired_capacity=scaling.desired,
            vpc_zone_identifiers=_pool_subnets(pool, network),
            capacity_rebalance=True,
            mixed_instances_policy={
                "instances_distribution": {
                    "on_demand_base_capacity": capacity.on_demand_base,
                    "on_demand_percentage_above_base_capacity": capacity.on_demand_percentage,
                    "on_demand_allocation_strategy": "prioritized",
                    "spot_allocation_strategy": "price-capacity-optimized",
                },
                "launch_template": {
                    "launch_template_specification": {
                        "launch_template_id": template.id,
                        "version": template.latest_version.apply(str),
                    },
                    "overrides": [{"instance_type": name} for name in pool.spec.instance_types],
                },
            },
            initial_lifecycle_hooks=[
                {
                    "name": TERMINATION_HOOK,
                    "lifecycle_transition": "autoscaling:EC2_INSTANCE_TERMINATING",
                    "default_result": "CONTINUE",
                    "heartbeat_timeout": 300,
                }
            ],
            tags=[
                {"key": key, "value": value, "propagate_at_launch": not key.startswith("k8s.io/cluster-autoscaler")}
                for key, value in group_tags.items()
            ],
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"] if autoscaled else None),
        )
        self.asg_name = self.group.name
        self.register_outputs({"name": self.group.name})
