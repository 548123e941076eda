"""The fabric's device plugins: without them no pod gets an EFA device or an InfiniBand HCA.

- EFA pools: the AWS EFA device plugin (chart ``aws-efa-k8s-device-plugin``) advertises
  ``vpc.amazonaws.com/efa``; without it a pod requesting EFA devices stays Pending. It runs on the EFA pools
  only (the chart's node affinity, keyed on the pool label) and tolerates their taints.
- InfiniBand pools: the NVIDIA network operator (chart ``network-operator``) and its ``NicClusterPolicy``,
  whose RDMA shared device plugin advertises ``network.rdma_resource`` for the nodes' InfiniBand HCAs. The
  chart does not create the policy: it is a custom resource applied after the release has installed its CRD.
  The InfiniBand stack (MOFED/DOCA-OFED) is the host's, so the policy deploys no driver container, and node
  feature discovery is the GPU operator's (one NFD per cluster; the network operator's NodeFeatureRule
  labels the NVIDIA NICs through it).
- Optionally (``network.ipoib``) an IPoIB secondary network in pods through Multus, with addresses from
  nv-ipam, so NCCL's bootstrap and socket traffic cross InfiniBand too.
"""

from __future__ import annotations

import json

from gpucluster.plan import POOL_LABEL, Plan, PoolPlan
from gpucluster.render.bundle import HelmRelease
from gpucluster.render.k8s import k8s_object
from gpucluster.spec import NETWORK_OPERATOR_NAMESPACE

EFA_PLUGIN_CHART = "aws-efa-k8s-device-plugin"
EFA_PLUGIN_REPOSITORY = "https://aws.github.io/eks-charts"
EFA_PLUGIN_VERSION = "v0.5.30"  # plugin image v0.5.20
NETWORK_OPERATOR_CHART = "network-operator"
NETWORK_OPERATOR_REPOSITORY = "https://helm.ngc.nvidia.com/nvidia"
# A release candidate: the newest chart whose values and CRDs gpucluster checks against. Its images live in
# NVIDIA's staging registry, as the chart's own values pin them.
NETWORK_OPERATOR_VERSION = "26.7.0-rc.1"
NETWORK_OPERATOR_IMAGES = "nvcr.io/nvstaging/mellanox"
OPERAND_VERSION = f"network-operator-v{NETWORK_OPERATOR_VERSION}"
IPOIB_NETWORK = "ipoib"
# The pod's IPoIB interface: the name Multus gives the first secondary network, set explicitly too.
IPOIB_POD_INTERFACE = "net1"
NIC_CLUSTER_POLICY = "nic-cluster-policy"
MELLANOX_VENDOR_ID = "15b3"
# Pods that may share one node's HCAs through the RDMA shared device plugin.
RDMA_HCA_MAX = 63


def _pools(plan: Plan, fabric: str) -> list[PoolPlan]:
    return [pool for pool in plan.pools if pool.fabric == fabric]


def pool_tolerations(pools: list[PoolPlan]) -> list[dict]:
    """Tolerations for every taint the pools carry, once each."""
    seen: dict[tuple, dict] = {}
    for pool in pools:
        for taint in pool.taints:
            seen.setdefault((taint.key, taint.effect), {"key": taint.key, "operator": "Exists", "effect": taint.effect})
    return list(seen.values())


def _on_pools(pools: list[PoolPlan]) -> dict:
    """A required node affinity for the pools' nodes (by the pool label every node carries)."""
    expression = {"key": POOL_LABEL, "operator": "In", "values": [pool.name for pool in pools]}
    return {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}
    }


def efa_device_plugin_release(plan: Plan) -> list[HelmRelease]:
    """The EFA device plugin on the EFA pools, or nothing without them.

    The chart builds its node affinity from ``supportedInstanceLabels`` (keys ORed, values matched with In);
    keyed on the pool label, it selects exactly the EFA pools, whose instance types the spec has checked.
    """
    pools = _pools(plan, "efa")
    if not pools:
        return []
    values = {
        "supportedInstanceLabels": {"keys": [POOL_LABEL], "values": [pool.name for pool in pools]},
        "tolerations": pool_tolerations(pools),
    }
    release = HelmRelease(
        name=EFA_PLUGIN_CHART,
        chart=EFA_PLUGIN_CHART,
        repository=EFA_PLUGIN_REPOSITORY,
        version=EFA_PLUGIN_VERSION,
        namespace="kube-system",
        values=values,
    )
    return [release]


def network_operator_release(plan: Plan) -> list[HelmRelease]:
    """The NVIDIA network operator on InfiniBand clusters, or nothing.

    ``nfd.enabled: false``: the GPU operator already runs node feature discovery, and two would fight over the
    node labels; ``deployNodeFeatureRules`` still labels the NVIDIA NICs (``pci-15b3.present``) through it.
    """
    if not _pools(plan, "infiniband"):
        return []
    release = HelmRelease(
        name=NETWORK_OPERATOR_CHART,
        chart=NETWORK_OPERATOR_CHART,
        repository=NETWORK_OPERATOR_REPOSITORY,
        version=NETWORK_OPERATOR_VERSION,
        namespace=NETWORK_OPERATOR_NAMESPACE,
        values={"nfd": {"enabled": False, "deployNodeFeatureRules": True}},
    )
    return [release]


def rdma_device_plugin_config(plan: Plan) -> dict:
    """The RDMA shared device plugin's config: one resource for every InfiniBand port of an NVIDIA HCA.

    The plugin selects by PCI vendor, device, driver, netdev name and link type, not by RDMA device name, so
    it exposes the node's InfiniBand HCAs (Ethernet ports excluded) and ``NCCL_IB_HCA`` narrows NCCL to the
    spec's ``ib_hcas``.
    """
    resource_name = plan.spec.network.rdma_resource.removeprefix("rdma/")
    selectors = {"vendors": [MELLANOX_VENDOR_ID], "linkTypes": ["infiniband"]}
    return {"configList": [{"resourceName": resource_name, "rdmaHcaMax": RDMA_HCA_MAX, "selectors": selectors}]}


def nic_cluster_policy(plan: Plan) -> list[dict]:
    """The network operator's NicClusterPolicy for the InfiniBand pools, or nothing."""
    pools = _pools(plan, "infiniband")
    if not pools:
        return []
    spec = {
        "nodeAffinity": _on_pools(pools),
        "tolerations": pool_tolerations(pools),
        "rdmaSharedDevicePlugin": {
            **_image("k8s-rdma-shared-dev-plugin"),
            "config": json.dumps(rdma_device_plugin_config(plan), indent=2) + "\n",
        },
    }
    if plan.spec.network.ipoib is not None:
        spec["secondaryNetwork"] = {
            "cniPlugins": _image("plugins"),
            "multus": _image("multus-cni"),
            "ipoib": _image("ipoib-cni"),
        }
        spec["nvIpam"] = {**_image("nvidia-k8s-ipam"), "enableWebhook": False}
    return [k8s_object("mellanox.com/v1alpha1", "NicClusterPolicy", NIC_CLUSTER_POLICY, spec=spec)]


def _image(name: str) -> dict[str, str]:
    """An operand image as the NicClusterPolicy names it: the chart's registry and release tag."""
    return {"image": name, "repository": NETWORK_OPERATOR_IMAGES, "version": OPERAND_VERSION}


def ipoib_network_name(namespace: str) -> str:
    return f"{IPOIB_NETWORK}-{namespace}"


def ipoib_networks(plan: Plan) -> list[dict]:
    """With ``network.ipoib``: nv-ipam's address pool on the InfiniBand pools, and an IPoIBNetwork per workload
    namespace that may use them (the operator makes it a NetworkAttachmentDefinition of the same name there).

    Pods attach it with the ``k8s.v1.cni.cncf.io/networks`` annotation (``ipoib_annotation``). The IPPool's CRD
    comes from the operator once it deploys nv-ipam, not from the chart: apply it after the policy is ready.
    """
    ipoib = plan.spec.network.ipoib
    pools = _pools(plan, "infiniband")
    if ipoib is None or not pools:
        return []
    pool_spec = {
        "subnet": str(ipoib.subnet),
        "perNodeBlockSize": ipoib.per_node_block_size,
        "nodeSelector": _on_pools(pools)["requiredDuringSchedulingIgnoredDuringExecution"],
    }
    objects = [
        k8s_object("nv-ipam.nvidia.com/v1alpha1", "IPPool", IPOIB_NETWORK, NETWORK_OPERATOR_NAMESPACE, spec=pool_spec)
    ]
    ipam = json.dumps({"type": "nv-ipam", "poolName": IPOIB_NETWORK})
    for namespace in plan.workload_namespaces:
        if any(pool.fabric == "infiniband" for pool in plan.pools_for_namespace(namespace)):
            spec = {"networkNamespace": namespace, "master": ipoib.master, "ipam": ipam}
            objects.append(
                k8s_object("mellanox.com/v1alpha1", "IPoIBNetwork", ipoib_network_name(namespace), spec=spec)
            )
    return objects


def ipoib_annotation(namespace: str) -> dict[str, str]:
    """The pod annotation attaching the namespace's IPoIB network as ``IPOIB_POD_INTERFACE``."""
    network = [{"name": ipoib_network_name(namespace), "interface": IPOIB_POD_INTERFACE}]
    return {"k8s.v1.cni.cncf.io/networks": json.dumps(network)}
