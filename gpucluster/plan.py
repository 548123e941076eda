"""Derive what every back end needs from a valid spec: per-pool GPUs, node labels and taints, names.

The plan is the one place where spec defaults turn into concrete facts (the labels a node carries, the
device-plugin config it selects, the namespaces workloads run in), so the Kubernetes renderer, the
Pulumi programs and the Ansible inventory agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gpucluster.catalog import catalog
from gpucluster.spec import (
    DEVICE_PLUGIN_CONFIG_LABEL,
    GPU_TAINT_KEY,
    MIG_CONFIG_LABEL,
    POOL_LABEL,
    SYSTEM_POOL_NAME,
    ClusterSpec,
    NetworkSpec,
    NodePool,
    SystemPool,
    Taint,
    Tenant,
    control_plane_schedulable,
    gpu_tainted,
    mig_layout,
    pool_gpu_models,
)

MIG_DISABLED = "all-disabled"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gpucluster"}
GPU_TAINT = Taint(key=GPU_TAINT_KEY, value="present", effect="NoSchedule")
# Node-side settings the back ends apply (README, "What the back ends must apply"). API server admission
# plugins: ExtendedResourceToleration gives a pod requesting nvidia.com/gpu the toleration of the GPU taint
# (on in EKS; kubeadm's and k3s's API server need it in enable-admission-plugins).
ADMISSION_PLUGINS = ("ExtendedResourceToleration",)
# Extended resources the NVIDIA device plugin advertises (k8s-device-plugin: whole or time-sliced GPUs,
# time-sliced GPUs under ``renameByDefault``, and MIG devices under the mixed strategy).
GPU_RESOURCE = "nvidia.com/gpu"
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
# Node-side setting every back end applies to the NVIDIA container toolkit (config.toml keys of
# nvidia-container-toolkit api/config/v1/config.go): NVIDIA_VISIBLE_DEVICES is honoured only in privileged
# containers, so a pod that tolerates a GPU taint gets no GPU it did not request; the device plugin passes
# its allocation as volume mounts instead (``DEVICE_LIST_STRATEGY``; with CDI it uses CDI requests).
# The operator-managed toolkit takes them as installer env (the key upper-cased, '-' -> '_').
CONTAINER_TOOLKIT_SETTINGS = {
    "accept-nvidia-visible-devices-envvar-when-unprivileged": False,
    "accept-nvidia-visible-devices-as-volume-mounts": True,
}
DEVICE_LIST_STRATEGY = "volume-mounts"
# ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) is served from this Kubernetes minor on.
ADMISSION_POLICY_MIN_MINOR = 30


def pool_gpu_resources(pool: NodePool) -> dict[str, int]:
    """Extended resource names a pool's nodes advertise -> how many one GPU of the pool yields.

    Whole GPUs and MIG ``single`` instances are ``nvidia.com/gpu``; time-slicing multiplies by the
    replicas and, with ``rename_by_default``, advertises ``nvidia.com/gpu.shared`` instead; MIG ``mixed``
    advertises one ``nvidia.com/mig-<profile>`` per profile of the layout. Fabric devices (EFA, RDMA) are
    not GPU resources and are not listed.
    """
    sharing = pool.sharing
    if sharing.mode == "time-slicing":
        name = SHARED_GPU_RESOURCE if sharing.rename_by_default else GPU_RESOURCE
        return {name: sharing.replicas or 1}
    if sharing.mode == "mig":
        per_gpu: dict[str, int] = {}
        for model in pool_gpu_models(pool):
            for profile, count in mig_layout(pool, model).items():
                name = GPU_RESOURCE if sharing.strategy == "single" else f"{MIG_RESOURCE_PREFIX}{profile}"
                per_gpu[name] = max(per_gpu.get(name, 0), count)
        return per_gpu
    return {GPU_RESOURCE: 1}


# The container runtime's memlock limit on bare-metal nodes (systemd LimitMEMLOCK): RDMA/NCCL pin memory,
# and Pod Security "baseline" refuses the IPC_LOCK capability that would otherwise be needed.
RUNTIME_MEMLOCK = "infinity"


# The driver's GPUDirect RDMA module: lets InfiniBand HCAs read and write GPU memory. The GPU operator's driver
# container loads it (driver.rdma); with the host's driver, the bare-metal back end must.
NVIDIA_PEERMEM = "nvidia-peermem"

PoolFabric = Literal["ethernet", "infiniband", "efa"]


@dataclass(frozen=True)
class PoolPlan:
    spec: NodePool
    gpu_models: tuple[str, ...]
    gpus_per_node: int
    max_nodes: int
    efa_interfaces: int
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    fabric: PoolFabric

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def multi_node(self) -> bool:
        return self.max_nodes > 1

    @property
    def mig_layouts(self) -> dict[str, dict[str, int]]:
        """GPU model -> MIG profile -> instances per GPU (empty unless the pool uses MIG)."""
        if self.spec.sharing.mode != "mig":
            return {}
        return {model: mig_layout(self.spec, model) for model in self.gpu_models}

    @property
    def self_managed(self) -> bool:
        """On EKS: an on-demand base plus a percentage above it needs an Auto Scaling group's
        MixedInstancesPolicy, which managed node groups do not offer; other pools are managed node groups."""
        return self.spec.capacity.type == "mixed"

    @property
    def max_gpus(self) -> int:
        return self.gpus_per_node * self.max_nodes

    @property
    def gpu_resources(self) -> dict[str, int]:
        """GPU resource names the pool advertises -> the most of each its nodes can offer together."""
        return {name: per_gpu * self.max_gpus for name, per_gpu in pool_gpu_resources(self.spec).items()}

    @property
    def max_on_demand_usd_per_hour(self) -> float | None:
        """Upper bound of the pool's hourly cost: every node at the preferred type's on-demand price."""
        if not self.spec.instance_types:
            return None
        return catalog().instance_types[self.spec.instance_types[0]].on_demand_usd_per_hour * self.max_nodes


@dataclass(frozen=True)
class SystemPoolPlan:
    """EKS: the CPU node group for system pods. Untainted, so everything that tolerates nothing lands here."""

    spec: SystemPool
    name: str
    labels: dict[str, str]

    @property
    def max_on_demand_usd_per_hour(self) -> float:
        price = catalog().cpu_instance_types[self.spec.instance_types[0]].on_demand_usd_per_hour
        return price * self.spec.scaling.max


@dataclass(frozen=True)
class Plan:
    spec: ClusterSpec
    pools: tuple[PoolPlan, ...]
    system_pool: SystemPoolPlan | None

    @property
    def control_plane_schedulable(self) -> bool:
        """kubeadm/k3s control-plane machines take ordinary pods (kubeadm: the back end removes the
        node-role.kubernetes.io/control-plane:NoSchedule taint)."""
        return control_plane_schedulable(self.spec)

    @property
    def workload_namespaces(self) -> tuple[str, ...]:
        """Where GPU workloads run: the tenants' namespaces, or ``default`` without tenants."""
        return tuple(t.ns for t in self.spec.tenants) or ("default",)

    def pools_for_namespace(self, namespace: str) -> tuple[PoolPlan, ...]:
        """The pools workloads in a namespace may use: its tenant's ``pools``; every pool without a tenant."""
        tenant = next((t for t in self.spec.tenants if t.ns == namespace), None)
        return self.tenant_pools(tenant) if tenant is not None else self.pools

    @property
    def host_modules(self) -> tuple[str, ...]:
        """Kernel modules the bare-metal back end loads on every pool host (``/etc/modules-load.d``).

        GPUDirect RDMA on InfiniBand needs ``nvidia-peermem``; the GPU operator loads it only with its own driver
        (``driver.rdma``), so with the host's driver the host must.
        """
        if self.spec.network.fabric == "infiniband" and self.spec.gpu_stack.driver == "host":
            return (NVIDIA_PEERMEM,)
        return ()

    @property
    def host_container_toolkit_config(self) -> dict[str, bool]:
        """Top-level keys the back ends set in ``/etc/nvidia-container-runtime/config.toml`` of a host toolkit
        (the bare-metal role; on EKS the GPU AMI's, through node user data). Empty when the GPU operator
        manages the toolkit: its values carry them as installer env."""
        if self.spec.gpu_stack.toolkit != "host":
            return {}
        return dict(CONTAINER_TOOLKIT_SETTINGS)

    @property
    def host_nccl_conf(self) -> dict[str, str]:
        """``/etc/nccl.conf`` the bare-metal back end writes on pool hosts, for NCCL runs outside pods.

        Pods never read it (their image has its own /etc) and have other interfaces, so their settings are the
        per-pool ``nccl-env-<pool>`` ConfigMaps instead. Empty on AWS, where gpucluster configures no host.
        """
        if self.spec.platform == "aws":
            return {}
        network = self.spec.network
        conf = {"NCCL_SOCKET_IFNAME": network.socket_ifname, **ib_settings(network, network.fabric)}
        return dict(sorted(conf.items()))

    @property
    def gpu_resources(self) -> tuple[str, ...]:
        """Every GPU resource name some pool advertises, ``nvidia.com/gpu`` first, then sorted."""
        names = {name for pool in self.pools for name in pool.gpu_resources}
        return tuple(sorted(names, key=lambda name: (name != GPU_RESOURCE, name)))

    @property
    def admission_policies_available(self) -> bool:
        return self.spec.kubernetes.minor >= ADMISSION_POLICY_MIN_MINOR

    def tenant_pools(self, tenant: Tenant) -> tuple[PoolPlan, ...]:
        """The pools a tenant may use, in the order its ``pools`` lists them (all pools by default)."""
        if tenant.pools is None:
            return self.pools
        by_name = {pool.name: pool for pool in self.pools}
        return tuple(by_name[name] for name in tenant.pools)

    def tenant_grants(self, tenant: Tenant) -> dict[str, int]:
        """GPU resource -> what the tenant may request: ``gpus`` for nvidia.com/gpu, ``resources`` for the
        rest, 0 for every other resource the cluster advertises (an unquoted resource is unlimited)."""
        grants = {GPU_RESOURCE: tenant.gpus} | {name: 0 for name in self.gpu_resources if name != GPU_RESOURCE}
        return grants | tenant.resources

    @property
    def uses_mig(self) -> bool:
        return any(pool.spec.sharing.mode == "mig" for pool in self.pools)

    @property
    def installs_prometheus_operator(self) -> bool:
        """Whether a release of the stack installs the prometheus-operator CRDs (ServiceMonitor, ...): the
        kube-prometheus-stack release does, with monitoring on. Chart values that create ServiceMonitors are
        on only when it does."""
        return self.spec.monitoring.enabled

    @property
    def scrapes_with_service_monitors(self) -> bool:
        """GPU and ingress metrics are scraped through ServiceMonitors: wanted, and their CRD installed."""
        return self.spec.monitoring.enabled and self.installs_prometheus_operator


def make_plan(spec: ClusterSpec) -> Plan:
    tainted = gpu_tainted(spec)
    pools = tuple(_pool_plan(spec, pool, gpu) for pool, gpu in zip(spec.node_pools, tainted, strict=True))
    system_pool = None
    if spec.system_pool is not None:
        labels = {POOL_LABEL: SYSTEM_POOL_NAME}
        system_pool = SystemPoolPlan(spec=spec.system_pool, name=SYSTEM_POOL_NAME, labels=labels)
    return Plan(spec=spec, pools=pools, system_pool=system_pool)


def ib_settings(network: NetworkSpec, fabric: PoolFabric) -> dict[str, str]:
    """NCCL's InfiniBand settings for a fabric (the same on hosts and in pods); verbs off elsewhere.

    ``NCCL_IB_HCA`` is a prefix match unless it starts with ``=``: ``mlx5_1`` would also take ``mlx5_10``, so the
    listed HCAs are rendered as ``=mlx5_0,mlx5_1``. Without a list, every ``mlx5`` device (by prefix).
    """
    if fabric != "infiniband":
        return {"NCCL_IB_DISABLE": "1"}
    hcas = "=" + ",".join(network.ib_hcas) if network.ib_hcas else "mlx5"
    return {"NCCL_IB_DISABLE": "0", "NCCL_IB_HCA": hcas}


def _pool_fabric(spec: ClusterSpec, pool: NodePool) -> PoolFabric:
    """EFA pools use EFA; on an InfiniBand cluster every pool's hosts sit on the fabric; the rest use Ethernet."""
    if pool.efa:
        return "efa"
    return "infiniband" if spec.network.fabric == "infiniband" else "ethernet"


def _pool_plan(spec: ClusterSpec, pool: NodePool, gpu_tainted: bool) -> PoolPlan:
    types = catalog().instance_types
    if pool.instance_types:
        first = types[pool.instance_types[0]]
        gpus_per_node, max_nodes = first.gpus, pool.scaling.max
        efa_interfaces = first.efa_interfaces if pool.efa else 0
    else:
        per_host = [sum(g.count for g in (h.gpus or ([pool.gpu] if pool.gpu else []))) for h in pool.hosts]
        gpus_per_node, max_nodes, efa_interfaces = max(per_host), len(pool.hosts), 0
    labels = {
        **pool.labels,
        POOL_LABEL: pool.name,
        DEVICE_PLUGIN_CONFIG_LABEL: pool.name,
    }
    if pool.sharing.mode == "mig":
        labels[MIG_CONFIG_LABEL] = pool.name
    taints = ((GPU_TAINT,) if gpu_tainted else ()) + tuple(pool.taints)  # the spec refuses pool nvidia.com/gpu taints
    return PoolPlan(
        spec=pool,
        gpu_models=tuple(pool_gpu_models(pool)),
        gpus_per_node=gpus_per_node,
        max_nodes=max_nodes,
        efa_interfaces=efa_interfaces,
        labels=dict(sorted(labels.items())),
        taints=taints,
        fabric=_pool_fabric(spec, pool),
    )
