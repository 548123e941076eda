"""The AWS program: network, EKS, node groups, node autoscaling, ingress and the GPU layer for one spec.

Every AWS resource is tagged with the project, the stack, the spec's owner and its extra tags (the
provider's default tags, and explicitly where AWS does not apply them: instances, volumes, Auto Scaling groups).
"""

from __future__ import annotations

from dataclasses import replace

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from gpucluster.aws import autoscaling, backups, ingress
from gpucluster.aws.eks import Addons, Cluster
from gpucluster.aws.gpu_layer import GpuLayer, kubeconfig
from gpucluster.aws.network import Network
from gpucluster.aws.nodes import ManagedGpuPool, NodeRole, SelfManagedGpuPool, SelfManagedNodeRole, SystemNodeGroup
from gpucluster.plan import Plan
from gpucluster.render import render
from gpucluster.render.aws_nodes import KARPENTER_DISCOVERY_TAG, termination_handler_release


def resource_tags(plan: Plan) -> dict[str, str]:
    aws_spec = plan.spec.aws
    assert aws_spec is not None, "the spec requires an aws section on platform aws"
    tags = {"project": pulumi.get_project(), "stack": pulumi.get_stack(), "gpucluster.io/cluster": plan.spec.name}
    if aws_spec.owner:
        tags["owner"] = aws_spec.owner
    return {**aws_spec.tags, **tags}


def build(plan: Plan) -> None:
    spec = plan.spec
    assert spec.aws is not None, "the spec requires an aws section on platform aws"
    tags = resource_tags(plan)
    provider = aws.Provider("aws", region=spec.aws.region, default_tags={"tags": tags})
    opts = pulumi.ResourceOptions(provider=provider)
    network = Network(plan, opts)
    private_subnets = [subnet.id for subnet in network.private_subnets.values()]
    cluster = Cluster(plan, private_subnets, opts)
    node_role = NodeRole(spec.name, opts)
    node_groups: dict[str, pulumi.Output[str]] = {}
    nodes: list[pulumi.Resource] = []
    if plan.system_pool is not None:  # without one, an untainted GPU pool takes the system pods
        system = SystemNodeGroup(plan.system_pool, cluster, network, node_role, tags, opts)
        node_groups[plan.system_pool.name] = system.node_group.node_group_name
        nodes.append(system.node_group)
    overlays: dict[str, dict] = {}
    autoscaler = spec.autoscaling.node_autoscaler
    if autoscaler == "karpenter":
        aws.ec2.Tag(
            f"{spec.name}-karpenter-discovery",
            resource_id=cluster.security_group_id,
            key=KARPENTER_DISCOVERY_TAG,
            value=spec.name,
            opts=opts,
        )
        overlays |= autoscaling.karpenter(plan, cluster, opts)
    else:
        self_managed_role = None
        if any(pool.self_managed for pool in plan.pools):
            self_managed_role = SelfManagedNodeRole(cluster, f"{spec.name}-self-managed-nodes", opts)
            overlays |= autoscaling.node_termination_handler(plan, cluster, opts)
        for pool in plan.pools:
            if pool.self_managed:
                assert self_managed_role is not None
                group = SelfManagedGpuPool(plan, pool, cluster, network, self_managed_role, tags, opts)
                node_groups[pool.name] = group.group.name
                nodes.append(group.group)
            else:
                managed = ManagedGpuPool(plan, pool, cluster, network, node_role, tags, opts)
                node_groups[pool.name] = managed.node_group.node_group_name
                nodes.append(managed.node_group)
        if autoscaler == "cluster-autoscaler":
            overlays |= autoscaling.cluster_autoscaler(plan, cluster, opts)
    addons = Addons(cluster, list(nodes), opts)
    overlays |= ingress.load_balancer_controller(plan, cluster, network.vpc.id, opts)
    overlays |= backups.velero_storage(plan, cluster, opts)
    config: pulumi.Output[str] = pulumi.Output.secret(kubeconfig(cluster, spec.aws.region))
    kubernetes = k8s.Provider(
        f"{spec.name}-k8s",
        kubeconfig=config,
        opts=pulumi.ResourceOptions(depends_on=[*nodes, addons]),
    )
    bundle = render(spec)
    handler = termination_handler_release(plan)
    if handler is not None:
        bundle = replace(bundle, releases=[*bundle.releases, handler])
    GpuLayer(f"{spec.name}-gpu-layer", bundle, overlays, kubernetes, pulumi.ResourceOptions())
    pulumi.export("cluster_name", cluster.cluster.name)
    pulumi.export("endpoint", cluster.endpoint)
    pulumi.export("kubeconfig", config)
    pulumi.export("node_groups", node_groups)
    pulumi.export("vpc_id", network.vpc.id)
