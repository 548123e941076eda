"""The typed cluster description: one ``ClusterSpec`` per environment.

A spec lives as Pulumi stack config (``config: gpucluster:cluster:``) in ``stacks/Pulumi.<env>.yaml``.
Field-level checks are pydantic constraints; rules that span fields are collected by
``ClusterSpec._check_rules`` and raised together as ``RuleViolations`` so that every problem is reported
with its own field path (see ``gpucluster.stackfile`` for how they reach the user).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gpucluster.catalog import catalog

# Kubernetes minor versions gpucluster supports: the range kubernetes-validate ships schemas for.
SUPPORTED_KUBERNETES_VERSIONS = tuple(f"1.{minor}" for minor in range(28, 38))


def _described(rule: str, fits: Callable[[str], bool] | None = None) -> WrapValidator:
    """Report a string that breaks its format (pattern, length, ``fits``) as the rule, not a regular expression."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> str:
        try:
            text = handler(value)
        except ValidationError as error:
            if all(e["type"] in ("string_pattern_mismatch", "string_too_long") for e in error.errors()):
                raise PydanticCustomError("text_format", "must be {rule}", {"rule": rule}) from None
            raise
        if fits is not None and not fits(text):
            raise PydanticCustomError("text_format", "must be {rule}", {"rule": rule})
        return text

    return WrapValidator(check)


def _sentence(rule: str) -> str:
    return f"{rule[0].upper()}{rule[1:]}."


_DNS_LABEL_RULE = (
    "a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit, "
    "at most 63 characters"
)
DnsLabel = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63),
    _described(_DNS_LABEL_RULE),
    Field(description=_sentence(_DNS_LABEL_RULE)),
]
_QUANTITY_SUFFIXES = {
    "": 0,
    "m": -3,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
    "Ki": 10,
    "Mi": 20,
    "Gi": 30,
    "Ti": 40,
    "Pi": 50,
    "Ei": 60,
}
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_QUANTITY_RULE = (
    "a Kubernetes quantity: a number with an optional suffix (m, k, M, G, T, P, E or Ki, Mi, Gi, Ti, Pi, Ei), "
    "such as '64', '500m', '256Gi'"
)
Quantity = Annotated[
    str,
    StringConstraints(pattern=_QUANTITY.pattern),
    _described(_QUANTITY_RULE),
    Field(description=_sentence(_QUANTITY_RULE)),
]


def quantity_value(quantity: str) -> Decimal:
    """The exact amount a Kubernetes quantity stands for: '500m' -> 0.5, '2Ki' -> 2048."""
    match = _QUANTITY.match(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    number, suffix = Decimal(match[1]), match[3] or ""
    exponent = _QUANTITY_SUFFIXES[suffix]
    return number * (Decimal(2) ** exponent if suffix.endswith("i") else Decimal(10) ** exponent)


_EXACT_VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+[-+.A-Za-z0-9]*$")


def _exact_version(value: Any) -> Any:
    if isinstance(value, str) and not _EXACT_VERSION.match(value):
        raise ValueError(f"{value!r} is not an exact release; pin one such as 'v0.20.0' ('latest' and ranges drift)")
    return value


def _network_text(value: Any) -> Any:
    if not isinstance(value, (str, IPv4Network)):
        raise ValueError("write the network as a CIDR string such as '10.244.0.0/16'")
    return value


ComponentVersion = Annotated[
    str,
    AfterValidator(_exact_version),
    Field(description="An exact release version; floating tags such as 'latest' are refused."),
]
Cidr = Annotated[IPv4Network, BeforeValidator(_network_text)]
_DNS_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_REGISTRY = rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*(:[0-9]{{1,5}})?$"
MirrorUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$")]
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_DNS_LABEL}(\.{_DNS_LABEL})*$")


def _address(value: str) -> str:
    """An IP address or DNS name another machine can reach this one at."""
    ip = _ip(value)
    if ip is None:
        if not _HOSTNAME.match(value) or value.rsplit(".", 1)[-1].isdigit():  # "10.0.0.300" is a bad IP
            raise ValueError(f"{value!r} is neither an IP address nor a DNS name")
        if address_key(value) == "localhost" or address_key(value).endswith(".localhost"):
            raise ValueError(f"{value!r} always names the local machine; give the machine's name on the network")
        return value
    kinds = [
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("multicast", ip.is_multicast),
        ("link-local", ip.is_link_local),
        ("reserved", ip.is_reserved),
    ]
    for kind, applies in kinds:
        if applies:
            raise ValueError(f"{value!r} is a {kind} address; give the machine's address on the cluster network")
    return value


def _ip(address: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(address)
    except ValueError:
        return None


def address_key(address: str) -> str:
    """One spelling per address, to compare them: IPs normalised, DNS names lower-case without the final dot."""
    ip = _ip(address)
    return str(ip) if ip is not None else address.lower().rstrip(".")


def _endpoint(value: str) -> str:
    """host:port, the host an IP address (IPv6 in brackets) or a DNS name, the port 1-65535."""
    host, colon, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not colon or not port.isdigit() or not 1 <= int(port) <= 65535 or (":" in host) != bracketed:
        raise ValueError(
            f"{value!r} is not host:port with a port from 1 to 65535, such as 'api.example.com:6443' "
            "or '[fd00::10]:6443'"
        )
    _address(host)
    return value


Address = Annotated[str, AfterValidator(_address)]
Endpoint = Annotated[str, AfterValidator(_endpoint)]
_EC2_INSTANCE_TYPE_RULE = "an EC2 instance type: family and size in lower case, such as 'm6i.xlarge'"
Ec2InstanceType = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"),
    _described(_EC2_INSTANCE_TYPE_RULE),
    Field(description=_sentence(_EC2_INSTANCE_TYPE_RULE)),
]
_REGION_RULE = "an AWS region such as 'us-east-1' or 'us-gov-west-1'"
Region = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"),
    _described(_REGION_RULE),
    Field(description=_sentence(_REGION_RULE)),
]
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_PREFIX_MAX, LABEL_NAME_MAX = 253, 63
_LABEL_KEY_RULE = (
    "a label key: an optional prefix (a DNS subdomain of at most 253 characters: lower-case letters, digits, "
    "'-' and '.') and '/', then a name of at most 63 characters: letters, digits, '-', '_' and '.', "
    "starting and ending with a letter or digit"
)
_LABEL_VALUE_RULE = (
    "a label value: empty, or at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
)


def _label_key_fits(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return len(prefix) <= LABEL_PREFIX_MAX and len(name) <= LABEL_NAME_MAX


LabelKey = Annotated[
    str,
    StringConstraints(
        pattern=rf"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$", max_length=LABEL_PREFIX_MAX + 1 + LABEL_NAME_MAX
    ),
    _described(_LABEL_KEY_RULE, _label_key_fits),
    Field(description=_sentence(_LABEL_KEY_RULE)),
]
LabelValue = Annotated[
    str,
    StringConstraints(pattern=rf"^({_LABEL_NAME})?$", max_length=LABEL_NAME_MAX),
    _described(_LABEL_VALUE_RULE),
    Field(description=_sentence(_LABEL_VALUE_RULE)),
]
_IFNAME = r"[A-Za-z0-9][-A-Za-z0-9_.]{0,14}"
_SOCKET_IFNAME_RULE = (
    "NCCL_SOCKET_IFNAME syntax: interface names (or name prefixes), comma-separated, optionally led by '=' "
    "(exact match) or '^' (exclude), such as 'ib0' or 'eno1,eno2'"
)
SocketIfname = Annotated[
    str,
    StringConstraints(pattern=rf"^[=^]?{_IFNAME}(,{_IFNAME})*$"),
    _described(_SOCKET_IFNAME_RULE),
    Field(description=_sentence(_SOCKET_IFNAME_RULE)),
]
InterfaceName = Annotated[
    str,
    StringConstraints(pattern=rf"^{_IFNAME}$"),
    _described("a Linux interface name such as 'ib0'"),
    Field(description="A Linux interface name such as 'ib0'."),
]
_HCA_RULE = "an RDMA device name such as 'mlx5_0', optionally with ':port' (no '=', '^' or ',': gpucluster adds '=')"
HcaName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_]+(:[0-9]+)?$"),
    _described(_HCA_RULE),
    Field(description=_sentence(_HCA_RULE)),
]
_RDMA_RESOURCE_RULE = "an extended resource name 'rdma/<name>', such as 'rdma/ib'"
RdmaResource = Annotated[
    str,
    StringConstraints(pattern=r"^rdma/[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$"),
    _described(_RDMA_RESOURCE_RULE),
    Field(description=_sentence(_RDMA_RESOURCE_RULE)),
]
_SUBJECT_RULE = "a user or group name: not empty, without leading or trailing spaces"
Subject = Annotated[
    str,
    _described(_SUBJECT_RULE, lambda name: bool(name) and name == name.strip()),
    Field(description=_sentence(_SUBJECT_RULE)),
]

GPU_TAINT_KEY = "nvidia.com/gpu"
# Node labels gpucluster puts on every pool's nodes (the plan sets them; the node back ends apply them).
POOL_LABEL = "gpucluster.io/pool"
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
GPUCLUSTER_LABELS = {
    POOL_LABEL: "the pool's name, which workloads and NCCL jobs select",
    DEVICE_PLUGIN_CONFIG_LABEL: "the pool's device-plugin configuration",
    MIG_CONFIG_LABEL: "the pool's MIG layout for the MIG manager",
}
# Label namespaces the kubelet may set on its own node (NodeRestriction); other kubernetes.io and k8s.io
# labels in --node-labels stop the kubelet from starting.
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
RESERVED_POOL_NAME = "default"
SYSTEM_POOL_NAME = "system"
GPU_OPERATOR_NAMESPACE = "gpu-operator"
MONITORING_NAMESPACE = "monitoring"
VELERO_NAMESPACE = "velero"
NETWORK_OPERATOR_NAMESPACE = "nvidia-network-operator"
# The network operator chart's kubeVersion: helm refuses to install it on older clusters.
NETWORK_OPERATOR_MIN_KUBERNETES = "1.32"
INGRESS_NAMESPACE = "nginx-ingress"
KUEUE_NAMESPACE = "kueue-system"
# Namespaces Kubernetes, gpucluster or common platform add-ons (CNIs, certificates, ingress, monitoring,
# backups, autoscalers, queueing, fabric) own; a tenant's quotas and default-deny policies must never land there.
SYSTEM_NAMESPACES = (
    "kube-system",
    "kube-public",
    "kube-node-lease",
    GPU_OPERATOR_NAMESPACE,
    INGRESS_NAMESPACE,
    MONITORING_NAMESPACE,
    VELERO_NAMESPACE,
    NETWORK_OPERATOR_NAMESPACE,
    KUEUE_NAMESPACE,
    "ingress-nginx",  # the community ingress-nginx controller's usual namespace
    "calico-system",
    "calico-apiserver",
    "tigera-operator",
    "kube-flannel",
    "cilium",
    "cilium-secrets",
    "cert-manager",
    "karpenter",
    "keda",
    "amazon-cloudwatch",
    "local-path-storage",
)


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (a path of field names and indexes), the value found, and what is allowed."""

    path: tuple[str | int, ...]
    value: Any
    message: str


class RuleViolations(ValueError):
    """Every cross-field rule a spec breaks, raised together from the model validator."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        super().__init__("; ".join(f"{'.'.join(map(str, v.path))}: {v.message}" for v in violations))


# --- hosts and GPUs ---------------------------------------------------------------------------------


class GpuSet(SpecModel):
    model: str = Field(description="GPU model, a key of the built-in catalog (e.g. 'A100-80GB', 'RTX-5090').")
    count: int = Field(ge=1, le=16, description="GPUs of this model in one machine.")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        known = catalog().gpus
        if model not in known:
            raise ValueError(f"unknown GPU model {model!r}; allowed: {', '.join(known)}")
        return model


class Host(SpecModel):
    """A machine. A pool host named like a control-plane host is that machine also running workloads."""

    name: DnsLabel = Field(description="Hostname; becomes the Kubernetes node name and the Ansible inventory name.")
    address: Address = Field(description="IP address or DNS name Ansible connects to.")
    gpus: list[GpuSet] = Field(default_factory=list, description="GPUs in this host; empty takes the pool's `gpu`.")
    ssh_user: str | None = Field(
        None, pattern=r"^[a-z_][a-z0-9_-]*$", description="User Ansible logs in as (default: Ansible's own)."
    )
    ssh_port: int = Field(22, ge=1, le=65535, description="SSH port Ansible connects to.")


class ControlPlane(SpecModel):
    """Control-plane machines of a kubeadm or k3s cluster (EKS runs its own)."""

    hosts: list[Host] = Field(default_factory=list, description="Existing machines (onprem/hybrid).")
    instance_type: Ec2InstanceType | None = Field(None, description="EC2 instance type to provision (hybrid).")
    count: int = Field(1, ge=1, le=7, description="Provisioned control-plane machines (with instance_type).")
    endpoint: Endpoint | None = Field(
        None,
        description="host:port of the load balancer in front of the API servers; required with more than one.",
    )
    schedulable: bool | None = Field(
        None,
        description="Ordinary pods (CoreDNS, controllers) may run on the control-plane machines. Unset: k3s "
        "servers do, kubeadm control planes do not (node-role.kubernetes.io/control-plane:NoSchedule); true "
        "on kubeadm has the back end remove that taint.",
    )


# --- node pools -------------------------------------------------------------------------------------


class Capacity(SpecModel):
    type: Literal["on-demand", "spot", "mixed"] = Field("on-demand", description="How AWS capacity is bought.")
    on_demand_base: int = Field(0, ge=0, description="Mixed: instances always bought on demand.")
    on_demand_percentage: int = Field(
        100, ge=0, le=100, description="Mixed: percentage of instances above the base bought on demand."
    )


class Scaling(SpecModel):
    min: int = Field(0, ge=0, description="Fewest nodes the autoscaler keeps.")
    max: int = Field(1, ge=1, le=1000, description="Most nodes; also the bound for quotas and cost estimates.")
    desired: int = Field(1, ge=0, description="Nodes at creation.")


class Taint(SpecModel):
    key: LabelKey = Field(description="Taint key, e.g. 'dedicated'.")
    value: LabelValue = Field("", description="Taint value (may be empty).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field("NoSchedule", description="Taint effect.")


class Sharing(SpecModel):
    """How one physical GPU is offered to pods."""

    mode: Literal["none", "time-slicing", "mig"] = Field(
        "none", description="none: one pod per GPU; time-slicing: pods take turns; mig: GPUs split into instances."
    )
    replicas: int | None = Field(None, description="time-slicing: pods that share one GPU (>= 2).")
    rename_by_default: bool = Field(False, description="time-slicing: advertise as nvidia.com/gpu.shared.")
    fail_requests_greater_than_one: bool = Field(
        True, description="time-slicing: refuse requests for more than one shared GPU (they buy no extra compute)."
    )
    strategy: Literal["single", "mixed"] | None = Field(None, description="mig: the device plugin's MIG strategy.")
    profile: str | None = Field(
        None, description="mig single: the MIG profile every GPU is split into (e.g. '1g.10gb')."
    )
    layout: dict[str, int] | None = Field(
        None, description="mig mixed: MIG profile -> instances per GPU (e.g. {'3g.40gb': 1, '2g.20gb': 2})."
    )


class NodePool(SpecModel):
    name: DnsLabel = Field(description="Pool name; nodes carry it as the gpucluster.io/pool label.")
    instance_types: list[str] = Field(
        default_factory=list, description="AWS: EC2 instance types (catalog keys), first is preferred."
    )
    hosts: list[Host] = Field(default_factory=list, description="Onprem/hybrid: existing machines in this pool.")
    gpu: GpuSet | None = Field(
        None, description="GPU model and count per machine. AWS derives it from the instance type."
    )
    capacity: Capacity = Field(Capacity(), description="AWS: on-demand, spot or a mix.")
    scaling: Scaling = Field(Scaling(), description="AWS: node counts. On-prem pools have one node per host.")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, description="Extra node labels.")
    taints: list[Taint] = Field(default_factory=list, description="Extra taints on the pool's nodes.")
    gpu_taint: bool | None = Field(
        None,
        description="Taint the nodes nvidia.com/gpu=present:NoSchedule so only GPU pods land there. Unset: on "
        "AWS yes (system pods run on the system pool); on-prem and hybrid yes only when other nodes take the "
        "system pods (a schedulable control plane outside the pools, or a pool with gpu_taint false).",
    )
    sharing: Sharing = Field(Sharing(), description="How a GPU is shared between pods.")
    efa: bool = Field(False, description="Attach EFA interfaces (needs EFA-capable instance types).")
    availability_zone: str | None = Field(
        None, description="Pin the pool to one AZ; required with EFA so the placement group's AZ is stable."
    )
    disk_gib: int = Field(200, ge=20, le=16384, description="Root volume size (always encrypted, gp3).")


class SystemPool(SpecModel):
    """EKS: CPU nodes for system pods (CoreDNS, controllers, the GPU operator, the ingress controller)."""

    instance_types: list[Ec2InstanceType] = Field(
        min_length=1, description="EC2 CPU instance types (catalog cpu_instance_types), first is preferred."
    )
    scaling: Scaling = Field(
        Scaling(min=2, max=4, desired=2), description="Node counts; two or more keep CoreDNS available."
    )


# --- cluster-wide sections --------------------------------------------------------------------------


class KubernetesSpec(SpecModel):
    distribution: Literal["eks", "kubeadm", "k3s"] = Field(
        description="eks on platform aws; kubeadm or k3s on onprem and hybrid."
    )
    version: str = Field(description=f"Kubernetes minor version, one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}.")
    pod_cidr: Cidr = Field(IPv4Network("10.244.0.0/16"), description="Pod network (kubeadm/k3s).")
    service_cidr: Cidr = Field(IPv4Network("10.96.0.0/12"), description="Service network; must not overlap pods.")
    control_plane: ControlPlane | None = Field(None, description="kubeadm/k3s only.")
    datastore: Literal["sqlite", "etcd"] | None = Field(
        None,
        description="k3s only: 'sqlite' (one server) or embedded 'etcd' (cluster-init; needed for several servers "
        "and for etcd snapshots). Default: sqlite with one server, etcd with more. kubeadm always runs etcd.",
    )

    @field_validator("version", mode="before")
    @classmethod
    def _supported_version(cls, version: Any) -> str:
        if not isinstance(version, str):
            allowed = ", ".join(SUPPORTED_KUBERNETES_VERSIONS)
            raise ValueError(f"quote the version (YAML reads {version!r} as a number); allowed: {allowed}")
        if version not in SUPPORTED_KUBERNETES_VERSIONS:
            raise ValueError(f"unsupported version {version!r}; allowed: {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}")
        return version

    @property
    def minor(self) -> int:
        return int(self.version.split(".")[1])


class IpoibSpec(SpecModel):
    """A secondary network for pods on InfiniBand pools: an IPoIB interface on the hosts' IPoIB device."""

    master: InterfaceName = Field("ib0", description="The hosts' IPoIB interface the pods' interfaces attach to.")
    subnet: Cidr = Field(description="Addresses of the pods' IPoIB interfaces; apart from the pod and service CIDRs.")
    per_node_block_size: int = Field(
        32, ge=4, le=65536, description="Addresses nv-ipam gives each node from the subnet (pods per node at most)."
    )


class NetworkSpec(SpecModel):
    fabric: Literal["ethernet", "infiniband", "efa"] = Field(
        "ethernet", description="The GPU-to-GPU fabric between nodes; decides the NCCL settings."
    )
    cni: Literal["aws-vpc-cni", "calico", "cilium", "flannel"] = Field(
        description="Pod network plugin: aws-vpc-cni or cilium on EKS; calico, cilium or flannel elsewhere."
    )
    socket_ifname: SocketIfname = Field(
        "eth0",
        description=(
            "Host side: the node interface NCCL uses for bootstrap and socket traffic when it runs on the host"
            " (NCCL_SOCKET_IFNAME in the /etc/nccl.conf the bare-metal back end writes). Pods do not have it:"
            " NCCL in pods uses the pod's eth0, or its IPoIB interface with `ipoib`."
        ),
    )
    ib_hcas: list[HcaName] = Field(
        default_factory=list,
        description=(
            "infiniband: HCAs NCCL uses, e.g. ['mlx5_0', 'mlx5_1'] (optionally with ':port'), matched exactly"
            " (NCCL_IB_HCA '=mlx5_0,mlx5_1'); empty: every mlx5 device."
        ),
    )
    rdma_resource: RdmaResource = Field(
        "rdma/ib",
        description=(
            "infiniband: the resource the network operator's RDMA shared device plugin advertises for the"
            " nodes' InfiniBand HCAs; pods using InfiniBand request one."
        ),
    )
    ipoib: IpoibSpec | None = Field(
        None,
        description=(
            "infiniband: an IPoIB secondary network in pods (Multus, IPoIB CNI, nv-ipam) so NCCL's bootstrap and"
            " socket traffic also cross InfiniBand; off: they use the pod network."
        ),
    )


class RuntimeSpec(SpecModel):
    name: Literal["containerd", "cri-o"] = Field("containerd", description="Container runtime (EKS: containerd).")
    cdi: bool = Field(False, description="Inject GPUs through the Container Device Interface.")
    registry_mirrors: dict[Annotated[str, StringConstraints(pattern=_REGISTRY)], list[MirrorUrl]] = Field(
        default_factory=dict,
        description="On-prem/hybrid: registry host -> mirror URLs tried in order (e.g. {'docker.io': ['https://m.local']}).",
    )


class GpuStackSpec(SpecModel):
    """Where the node-level NVIDIA software comes from."""

    driver: Literal["host", "operator"] = Field(
        "host", description="host: preinstalled (EKS GPU AMI, gpucluster's Ansible role); operator: the GPU operator."
    )
    driver_version: ComponentVersion = Field("580.105.08", description="NVIDIA driver branch to install.")
    toolkit: Literal["host", "operator"] = Field("host", description="Where the NVIDIA container toolkit comes from.")
    driver_source: Literal["cuda-repo", "distro"] = Field(
        "cuda-repo",
        description="Host driver on-prem: NVIDIA's CUDA repository (pinned version) or the distribution's packages.",
    )
    open_kernel_modules: bool | None = Field(
        None,
        description="Host driver: NVIDIA's open kernel modules; None picks them for Turing and newer "
        "(Blackwell requires them, Volta cannot use them).",
    )
    fabric_manager: bool | None = Field(
        None, description="Host driver: run nvidia-fabricmanager; None enables it on 8-GPU SXM (NVSwitch) hosts."
    )

    @property
    def driver_branch(self) -> str:
        """The driver branch (major version) packages are pinned to, e.g. '575' for 575.64.03."""
        return self.driver_version.lstrip("v").split(".", 1)[0]


class ComponentVersions(SpecModel):
    """Pinned releases; the defaults are the GPU operator chart v26.7.0's own operand pins."""

    gpu_operator: ComponentVersion = Field("v26.7.0", description="NVIDIA GPU operator Helm chart version.")
    device_plugin: ComponentVersion = Field(
        "v0.20.0",
        description="k8s-device-plugin image version, for the device plugin and GPU feature discovery (one image).",
    )
    dcgm_exporter: ComponentVersion = Field(
        "4.6.0-4.8.3-distroless", description="dcgm-exporter image tag (<DCGM version>-<exporter version>)."
    )


EgressChoice = Literal["https", "cluster-only", "internet"]
EGRESS_CHOICES: tuple[str, ...] = get_args(EgressChoice)


class Tenant(SpecModel):
    name: DnsLabel
    namespace: DnsLabel | None = Field(None, description="Defaults to the tenant name.")
    gpus: int = Field(ge=0, description="Quota: requests.nvidia.com/gpu (whole, MIG single or time-sliced GPUs).")
    resources: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description=(
            "Quota for the other GPU resources the cluster advertises, e.g. {'nvidia.com/mig-1g.10gb': 14,"
            " 'nvidia.com/gpu.shared': 8}. Every GPU resource the tenant is not granted is quoted at 0."
        ),
    )
    pools: list[DnsLabel] | None = Field(
        None,
        description=(
            "Node pools the tenant's GPU pods may run on (default: all). Enforced by a ValidatingAdmissionPolicy"
            " (Kubernetes 1.30+): a pod requesting a GPU resource must select one of them with nodeSelector or"
            " required node affinity on gpucluster.io/pool."
        ),
    )
    egress: EgressChoice | list[Cidr] = Field(
        "https",
        description=(
            "Where the tenant's pods may connect, besides cluster DNS, their own namespace, the monitoring"
            " namespace and the Kubernetes API server, which every choice allows. https: TCP 443 anywhere"
            " (object storage, STS, registries); cluster-only: pods in every namespace, nothing outside the"
            " cluster; internet: everything; a list of CIDRs: every port in those networks only."
        ),
    )
    cpu: Quantity = Field(description="Quota: requests.cpu (limits.cpu is twice this).")
    memory: Quantity = Field(description="Quota: requests.memory (limits.memory is the same).")
    default_cpu: Quantity = Field("1", description="LimitRange: default CPU limit per container.")
    default_memory: Quantity = Field("4Gi", description="LimitRange: default memory limit per container.")
    groups: list[Subject] = Field(
        default_factory=list, description="Identity groups bound to the tenant's Role ('system:' groups refused)."
    )
    users: list[Subject] = Field(
        default_factory=list,
        description="Users bound to the tenant's Role ('system:' users refused, except "
        "system:serviceaccount:<namespace>:<name>).",
    )

    @field_validator("egress", mode="before")
    @classmethod
    def _egress_choice(cls, value: Any) -> Any:
        """One clear message instead of one per union member."""
        choices = "'https', 'cluster-only', 'internet' or a list of CIDRs such as ['10.50.0.0/16']"
        if (isinstance(value, str) and value not in EGRESS_CHOICES) or not isinstance(value, (str, list)):
            raise ValueError(f"{value!r} is not a choice; use {choices}")
        for index, item in enumerate(value if isinstance(value, list) else []):
            try:
                IPv4Network(item if isinstance(item, str) else "")
            except ValueError:
                raise ValueError(f"item {index}, {item!r}, is not an IPv4 network such as '10.50.0.0/16'") from None
        return value

    @property
    def ns(self) -> str:
        return self.namespace or self.name


class TenancySpec(SpecModel):
    """How tenants' GPU jobs are admitted: by the ResourceQuota alone, or queued by Kueue in front of it."""

    mode: Literal["quota", "kueue"] = Field(
        "quota",
        description=(
            "quota: each tenant's ResourceQuota refuses pods beyond its grant. kueue: Kueue queues jobs"
            " labelled kueue.x-k8s.io/queue-name (a LocalQueue 'default' per tenant namespace) against a"
            " ClusterQueue per tenant with its grant per pool (ResourceFlavor); the ResourceQuota stays as"
            " the backstop."
        ),
    )
    borrowing: bool = Field(
        False,
        description=(
            "kueue: tenants' ClusterQueues join one cohort and borrow GPUs other tenants leave idle (owners"
            " reclaim them by preemption). The backstop quota of each GPU resource is then the cohort's total."
        ),
    )
    cohort: DnsLabel = Field("gpu-cohort", description="kueue with borrowing: the cohort's name.")
    version: ComponentVersion = Field("0.19.2", description="kueue: Kueue Helm chart (and image) version.")


IamPrincipalArn = Annotated[
    str,
    StringConstraints(pattern=r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+$"),
    Field(description="An IAM role or user ARN, e.g. 'arn:aws:iam::123456789012:role/platform-admins'."),
]


MachineImage = Literal["ubuntu-24.04", "debian-12"]


class AwsSpec(SpecModel):
    region: Region = Field(description="AWS region; matches aws:region.")
    availability_zones: list[str] = Field(min_length=2, description="At least two, as EKS requires.")
    vpc_cidr: Cidr = Field(IPv4Network("10.0.0.0/16"), description="VPC address range.")
    nat_gateways: Literal["single", "per-az"] = Field(
        "per-az",
        description="NAT for the private subnets: one per AZ, or a single one (cheaper; one AZ's outage cuts egress).",
    )
    endpoint_access: Literal["public", "private", "public-and-private"] = Field(
        "public-and-private", description="Where the EKS API endpoint answers: the internet, the VPC, or both."
    )
    public_access_cidrs: list[Cidr] | None = Field(
        None, description="Addresses allowed to the public endpoint; unset means anywhere (0.0.0.0/0)."
    )
    admins: list[IamPrincipalArn] = Field(
        default_factory=list, description="IAM roles/users granted cluster admin through EKS access entries."
    )
    owner: str | None = Field(None, max_length=256, description="Value of the owner tag on every AWS resource.")
    ssh_public_key: str | None = Field(
        None,
        pattern=r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$",
        description="hybrid: the OpenSSH public key Ansible logs in with (the private key stays with you).",
    )
    admin_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="hybrid: the only addresses allowed to SSH to the machines and reach the Kubernetes API.",
    )
    machine_image: MachineImage = Field("ubuntu-24.04", description="hybrid: the machines' OS image.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on every AWS resource.")


_ACM_CERTIFICATE_ARN = re.compile(
    r"^arn:aws(-cn|-us-gov)?:acm:(?P<region>[a-z]{2}(-gov)?-[a-z]+-[0-9]):[0-9]{12}:certificate/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


def _acm_certificate_arn(value: str) -> str:
    if not _ACM_CERTIFICATE_ARN.match(value):
        raise ValueError(
            f"{value!r} is not an ACM certificate ARN; expected "
            "arn:aws:acm:<region>:<12-digit account>:certificate/<uuid>"
        )
    return value


class IngressSpec(SpecModel):
    controller: Literal["none", "nginx"] = Field(
        "none", description="Ingress controller to install: nginx is the F5 NGINX Ingress Controller."
    )
    load_balancer: Literal["service", "alb", "nlb"] = Field(
        "service", description="What fronts the controller: a plain Service, an AWS ALB or an AWS NLB."
    )
    certificate_arn: Annotated[str, AfterValidator(_acm_certificate_arn)] | None = Field(
        None,
        description="ACM certificate (ARN, in the cluster's region) the ALB serves HTTPS with; HTTP is "
        "redirected to HTTPS. Required with load_balancer 'alb'.",
    )


class GuardianSpec(SpecModel):
    """The thermal guardian (seed 001): evicts the pods on a GPU above the limit and cordons the node."""

    enabled: bool = Field(
        False,
        description="Run the guardian on every GPU node: a DaemonSet, or on on-prem/hybrid clusters "
        "with monitoring disabled a systemd service on the hosts (ansible role guardian).",
    )
    limit_celsius: int = Field(75, ge=40, le=100, description="Act when a GPU is hotter than this (°C).")
    interval_seconds: int = Field(30, ge=5, le=3600, description="How often each GPU is read.")
    image: str | None = Field(
        None,
        pattern=r"^[a-z0-9]+([._/:-][a-zA-Z0-9_.-]+)*(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$",
        description="The guardian image (built from images/guardian/Dockerfile), pinned by tag or digest; "
        "required for the DaemonSet.",
    )


PromDuration = Annotated[
    str,
    StringConstraints(pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$"),
    Field(description="A Prometheus duration such as '30s', '5m', '1h30m'."),
]
# Alert names (receivers, routes) and Secret keys, as Alertmanager and Kubernetes accept them.
ReceiverName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]*$", max_length=63)]
SecretKey = Annotated[str, StringConstraints(pattern=r"^[-._A-Za-z0-9]+$", max_length=253)]
# One Alertmanager matcher: label, operator, value, e.g. 'severity="critical"' or 'namespace=~"team-.*"'.
_MATCHER = re.compile(r"""^\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*("([^"\\]|\\.)*"|[^"\s,{}]*)\s*$""")
NULL_RECEIVER = "null"


def _matcher(value: str) -> str:
    if not _MATCHER.match(value):
        raise ValueError(f"{value!r} is not an Alertmanager matcher such as 'severity=\"critical\"'")
    return value


Matcher = Annotated[str, AfterValidator(_matcher)]


class SecretKeyRef(SpecModel):
    """A key of a Secret in the monitoring namespace; the value never enters the spec or the output."""

    name: DnsLabel = Field(description="Secret name (created out of band, e.g. by an external-secrets operator).")
    key: SecretKey = Field(description="Key inside the Secret.")


class SlackReceiver(SpecModel):
    channel: str = Field(min_length=1, description="Channel to post to, e.g. '#gpu-alerts'.")
    api_url: SecretKeyRef = Field(description="Secret key holding the incoming-webhook URL.")


class PagerDutyReceiver(SpecModel):
    routing_key: SecretKeyRef = Field(description="Secret key holding the Events API v2 routing key.")


class WebhookReceiver(SpecModel):
    url: str = Field(pattern=r"^https?://[^\s]+$", description="Webhook URL; put no token in it, use bearer_token.")
    bearer_token: SecretKeyRef | None = Field(None, description="Secret key holding a bearer token to send.")


class EmailReceiver(SpecModel):
    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="Recipient address.")
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="From address.")
    smarthost: str = Field(pattern=r"^[^:\s]+:[0-9]{1,5}$", description="SMTP server as host:port.")
    username: str | None = Field(None, description="SMTP user name, when the server wants authentication.")
    password: SecretKeyRef | None = Field(None, description="Secret key holding the SMTP password.")


class Receiver(SpecModel):
    """Where Alertmanager sends notifications: one or more integrations, credentials read from Secrets."""

    name: ReceiverName = Field(description="Receiver name, used by routes.")
    slack: SlackReceiver | None = Field(None, description="Post to a Slack channel.")
    pagerduty: PagerDutyReceiver | None = Field(None, description="Open PagerDuty incidents.")
    webhook: WebhookReceiver | None = Field(None, description="POST alerts to a webhook.")
    email: EmailReceiver | None = Field(None, description="Send e-mail.")

    @property
    def secret_refs(self) -> list[SecretKeyRef]:
        refs = [
            self.slack.api_url if self.slack else None,
            self.pagerduty.routing_key if self.pagerduty else None,
            self.webhook.bearer_token if self.webhook else None,
            self.email.password if self.email else None,
        ]
        return [ref for ref in refs if ref is not None]


class AlertRoute(SpecModel):
    receiver: ReceiverName = Field(description="A receiver's name, or 'null' to drop the alerts.")
    matchers: list[Matcher] = Field(
        min_length=1, description="Alertmanager matchers that all must hold, e.g. ['severity=\"critical\"']."
    )
    continue_matching: bool = Field(False, description="Also try the routes after this one.")


class AlertmanagerSpec(SpecModel):
    receivers: list[Receiver] = Field(default_factory=list, description="Notification targets.")
    routes: list[AlertRoute] = Field(default_factory=list, description="Which alerts go where, first match wins.")
    default_receiver: ReceiverName = Field(
        NULL_RECEIVER, description="Receiver of alerts no route matches; 'null' drops them."
    )
    group_by: list[str] = Field(
        default_factory=lambda: ["alertname", "cluster", "node"], description="Labels that group alerts."
    )


class AlertThresholds(SpecModel):
    """When the GPU alerts fire. Defaults follow seed 000's alert table."""

    gpu_temperature_celsius: int = Field(85, ge=40, le=110, description="GpuTemperatureHigh above this (°C).")
    gpu_temperature_for: PromDuration = Field("5m", description="... for this long.")
    fb_memory_used_percent: int = Field(
        98, ge=50, le=100, description="GpuMemoryNearlyFull: framebuffer used above this share of used + free."
    )
    fb_memory_for: PromDuration = Field("10m", description="... for this long.")
    low_utilization_percent: int = Field(70, ge=1, le=100, description="GpuUnderutilized below this utilisation.")
    low_utilization_for: PromDuration = Field("15m", description="... for this long.")
    utilization_metric: str = Field(
        "DCGM_FI_DEV_GPU_UTIL",
        description="Utilisation metric of GpuUnderutilized: DCGM_FI_DEV_GPU_UTIL (%) or a DCP ratio"
        " (DCGM_FI_PROF_GR_ENGINE_ACTIVE, DCGM_FI_PROF_SM_ACTIVE; datacenter GPUs only).",
    )
    power_limit_percent: int = Field(
        100, ge=50, le=120, description="GpuPowerOverLimit: draw above this share of the enforced power limit."
    )
    power_for: PromDuration = Field("5m", description="... for this long.")
    pcie_replays_per_10m: int = Field(
        10, ge=1, le=1_000_000, description="GpuPcieReplays: PCIe replays within 10 minutes above this."
    )
    exporter_missing_for: PromDuration = Field(
        "10m", description="GpuDcgmExporterMissing: a GPU node has no healthy dcgm-exporter this long."
    )
    node_not_ready_for: PromDuration = Field("5m", description="GpuNodeNotReady: a GPU node NotReady this long.")

    @field_validator("utilization_metric")
    @classmethod
    def _known_utilization_metric(cls, name: str) -> str:
        from gpucluster.dcgm import UTILIZATION_METRICS, exported_metrics

        if name not in UTILIZATION_METRICS or name not in exported_metrics():
            allowed = ", ".join(m for m in UTILIZATION_METRICS if m in exported_metrics())
            raise ValueError(f"{name!r} is not a GPU utilisation metric the DCGM exporter exports; allowed: {allowed}")
        return name


class MonitoringStorage(SpecModel):
    size: Quantity = Field("50Gi", description="Prometheus volume size.")
    storage_class: DnsLabel | None = Field(
        None, description="StorageClass of the volume; the cluster default if unset."
    )


class PrometheusResources(SpecModel):
    cpu: Quantity = Field("500m", description="CPU request.")
    memory: Quantity = Field("2Gi", description="Memory request and limit.")


class MonitoringSpec(SpecModel):
    """The monitoring stack (kube-prometheus-stack) with GPU scraping, alerts and dashboards."""

    enabled: bool = Field(
        True,
        description="Install kube-prometheus-stack in namespace 'monitoring', scrape dcgm-exporter, alert and"
        " chart GPUs. The ServiceMonitors of the GPU layer and the ingress controller are on only then.",
    )
    retention: PromDuration = Field("15d", description="How long Prometheus keeps samples.")
    storage: MonitoringStorage = Field(MonitoringStorage(), description="Prometheus persistent volume.")
    resources: PrometheusResources = Field(PrometheusResources(), description="Prometheus container resources.")
    scrape_interval: PromDuration = Field("30s", description="How often dcgm-exporter is scraped.")
    alerts: AlertThresholds = Field(AlertThresholds(), description="GPU alert thresholds and windows.")
    alertmanager: AlertmanagerSpec = Field(AlertmanagerSpec(), description="Alert routes and receivers.")
    grafana_admin_secret: DnsLabel = Field(
        "grafana-admin", description="Secret with keys admin-user and admin-password for Grafana's admin."
    )
    guardian: GuardianSpec = Field(GuardianSpec(), description="The thermal guardian on GPU nodes.")


class GpuWorkload(SpecModel):
    """A GPU Deployment gpucluster renders and scales on its GPUs' utilisation (seed 004's inference service)."""

    name: DnsLabel = Field(description="Deployment, Service and autoscaler name.")
    namespace: DnsLabel = Field(description="A workload namespace: a tenant's (or 'default' without tenants).")
    pool: DnsLabel = Field(description="The node pool it runs on (one of the namespace's tenant's pools).")
    image: str = Field(
        pattern=r"^[a-z0-9]+([._/:-][a-zA-Z0-9_.-]+)*(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$",
        description="Container image, pinned by tag or digest.",
    )
    port: int = Field(8000, ge=1, le=65535, description="Port the container serves on (HTTP).")
    health_path: str = Field("/", pattern=r"^/[^\s]*$", description="HTTP path of its readiness probe.")
    gpus_per_replica: int = Field(1, ge=1, le=16, description="nvidia.com/gpu each replica requests.")
    cpu: Quantity = Field("2", description="CPU request (and limit) of a replica.")
    memory: Quantity = Field("8Gi", description="Memory request (and limit) of a replica.")
    min_replicas: int = Field(1, ge=1, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(4, ge=1, le=1000, description="Most replicas.")
    target_utilization: int | None = Field(
        None, ge=1, le=100, description="Average GPU utilisation to hold (%); default: gpu_utilization_target."
    )
    ingress_host: str | None = Field(
        None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$",
        description="Host name the ingress controller routes to it (seed 004: ALB -> NGINX -> these pods).",
    )


class AutoscalingSpec(SpecModel):
    gpu_utilization_target: int = Field(
        80, ge=1, le=100, description="Default target of the workloads' GPU utilisation (DCGM_FI_DEV_GPU_UTIL), %."
    )
    method: Literal["hpa", "keda"] = Field(
        "hpa",
        description="hpa: HorizontalPodAutoscalers on a custom metric served by prometheus-adapter; keda: KEDA "
        "ScaledObjects with a Prometheus trigger.",
    )
    workloads: list[GpuWorkload] = Field(default_factory=list, description="GPU Deployments to render and scale.")
    node_autoscaler: Literal["none", "cluster-autoscaler", "karpenter"] = Field(
        "none",
        description="Scale AWS GPU pools between scaling.min and max: cluster-autoscaler resizes their node "
        "groups; karpenter provisions each pool's nodes from a NodePool instead of a node group.",
    )


# Macros Kubernetes CronJobs and Velero schedules both accept besides five cron fields.
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _cron(value: Any) -> Any:
    from croniter import croniter  # imported on use: the spec module stays light

    if not isinstance(value, str):
        raise ValueError("quote the schedule, e.g. '0 2 * * *'")
    fields = value.split()
    if not (value in CRON_MACROS or (len(fields) == 5 and croniter.is_valid(value))):
        raise ValueError(
            f"{_cut(value)!r} is not a cron schedule: five fields 'minute hour day-of-month month day-of-week'"
            f" (e.g. '0 2 * * *' is daily at 02:00) or one of {', '.join(CRON_MACROS)}"
        )
    return value


def _cut(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


CronSchedule = Annotated[
    str,
    BeforeValidator(_cron),
    Field(description="Five cron fields 'minute hour day-of-month month day-of-week' (UTC), or @daily etc."),
]
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def _bucket_name(value: str) -> str:
    """The S3 general purpose bucket naming rules, so a bad name fails here and not halfway through ``pulumi up``."""
    rule = (
        "an S3 bucket name: 3-63 characters of lower-case letters, digits, '.' and '-', starting and ending with a"
        " letter or digit, no '..', not an IP address, not starting with xn--, sthree- or amzn-s3-demo-, not ending"
        " with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3"
    )
    reserved = value.startswith(_BUCKET_RESERVED_PREFIXES) or value.endswith(_BUCKET_RESERVED_SUFFIXES)
    looks_like_ip = re.fullmatch(r"[0-9]+(\.[0-9]+){3}", value) is not None
    if not _BUCKET_NAME.match(value) or ".." in value or reserved or looks_like_ip:
        raise ValueError(f"{_cut(value)!r} is not {rule}")
    return value


BucketName = Annotated[str, AfterValidator(_bucket_name)]
AbsolutePath = Annotated[
    str,
    StringConstraints(pattern=r"^/[A-Za-z0-9._/-]*$", max_length=255),
    Field(description="An absolute path on the host of letters, digits, '.', '_', '-' and '/'."),
]


class RetentionTier(SpecModel):
    """One Velero schedule: when it runs and how long its backups are kept."""

    name: DnsLabel = Field(description="Tier name; the Velero Schedule is named velero-<name>.")
    schedule: CronSchedule
    keep_days: int = Field(ge=1, le=3650, description="Days each backup of this tier is kept (its TTL).")


# Seed 000's retention: daily kept 30 days, weekly 12 weeks, monthly 12 months, yearly 5 years.
DEFAULT_RETENTION_TIERS = (
    RetentionTier(name="daily", schedule="0 2 * * *", keep_days=30),
    RetentionTier(name="weekly", schedule="0 3 * * 0", keep_days=12 * 7),
    RetentionTier(name="monthly", schedule="0 4 1 * *", keep_days=365),
    RetentionTier(name="yearly", schedule="0 5 1 1 *", keep_days=5 * 365),
)


class VeleroSpec(SpecModel):
    """Kubernetes objects and volumes backed up by Velero to S3 (AWS) or an S3-compatible store (on-prem)."""

    enabled: bool = Field(False, description="Install Velero and its schedules.")
    bucket: BucketName | None = Field(None, description="Bucket for the backups (required when enabled).")
    prefix: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", description="Folder in the bucket (default: the cluster name)."
    )
    region: str | None = Field(None, description="Bucket region (default: aws.region; 'minio' style names on-prem).")
    s3_url: str | None = Field(
        None,
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/.*)?$",
        description="S3-compatible endpoint such as MinIO (on-prem; required there).",
    )
    credentials_secret: DnsLabel | None = Field(
        None,
        description="Secret in the velero namespace whose key 'cloud' holds an AWS-style credentials file "
        "(on-prem; EKS uses an IAM role for the service account instead).",
    )
    tiers: list[RetentionTier] = Field(
        default_factory=lambda: list(DEFAULT_RETENTION_TIERS),
        min_length=1,
        description="Schedules with their retention (default: daily 30 d, weekly 12 w, monthly 12 mo, yearly 5 y).",
    )
    included_namespaces: list[DnsLabel] = Field(default_factory=list, description="Namespaces to back up (empty: all).")
    excluded_namespaces: list[DnsLabel] = Field(default_factory=list, description="Namespaces to leave out.")
    snapshot_volumes: bool = Field(True, description="Snapshot persistent volumes (EBS snapshots on AWS).")
    file_system_backup: bool = Field(
        False, description="Copy volume contents with Velero's node agent (for volumes without CSI snapshots)."
    )


class EtcdBackupSpec(SpecModel):
    """etcd snapshots on the control plane: a CronJob on kubeadm, k3s's own snapshotter with embedded etcd."""

    enabled: bool = Field(False, description="Snapshot etcd (kubeadm, or k3s with datastore 'etcd').")
    schedule: CronSchedule = Field("0 */6 * * *", description="When to snapshot (default every 6 hours).")
    keep: int = Field(28, ge=1, le=1000, description="Snapshots kept on each control-plane node (newest first).")
    directory: AbsolutePath = Field("/var/backups/etcd", description="Host directory for snapshots (kubeadm).")
    compress: bool = Field(True, description="gzip each snapshot (kubeadm: .db.gz; k3s: its own compression).")
    upload: bool = Field(False, description="Also copy snapshots to the Velero bucket under etcd/<cluster>/.")


class BackupSpec(SpecModel):
    velero: VeleroSpec = Field(VeleroSpec(), description="Velero: objects and volumes, retention tiers.")
    etcd: EtcdBackupSpec = Field(EtcdBackupSpec(), description="etcd snapshots of the control plane.")


# --- the spec ---------------------------------------------------------------------------------------


class ClusterSpec(SpecModel):
    """One environment: where it runs, its Kubernetes, its GPU node pools and who uses them."""

    name: DnsLabel = Field(description="Cluster name; prefixes cloud resources.")
    platform: Literal["aws", "onprem", "hybrid"] = Field(
        description="aws: EKS; onprem: existing machines; hybrid: EC2 machines configured by Ansible."
    )
    kubernetes: KubernetesSpec = Field(description="Distribution, version, CIDRs and control plane.")
    network: NetworkSpec = Field(description="GPU fabric and CNI.")
    runtime: RuntimeSpec = Field(RuntimeSpec(), description="Container runtime on the nodes.")
    gpu_stack: GpuStackSpec = Field(GpuStackSpec(), description="Where the NVIDIA driver and toolkit come from.")
    aws: AwsSpec | None = Field(None, description="Required on aws and hybrid.")
    node_pools: list[NodePool] = Field(min_length=1, description="GPU node pools (at least one).")
    system_pool: SystemPool | None = Field(
        None, description="EKS: CPU nodes for system pods; required when every GPU pool is tainted."
    )
    components: ComponentVersions = Field(ComponentVersions(), description="Pinned versions of the GPU software.")
    tenants: list[Tenant] = Field(default_factory=list, description="Teams sharing the cluster, with quotas.")
    tenancy: TenancySpec = Field(TenancySpec(), description="Quotas alone, or Kueue queues in front of them.")
    ingress: IngressSpec = Field(IngressSpec(), description="How traffic reaches workloads.")
    monitoring: MonitoringSpec = Field(MonitoringSpec(), description="GPU metrics and alerts.")
    autoscaling: AutoscalingSpec = Field(AutoscalingSpec(), description="Pod and node autoscaling.")
    backups: BackupSpec = Field(BackupSpec(), description="Cluster backups.")

    @model_validator(mode="after")
    def _check_rules(self) -> ClusterSpec:
        violations = list(_rule_violations(self))
        if violations:
            raise RuleViolations(violations)
        return self


# --- cross-field rules ------------------------------------------------------------------------------

_MIG_PROFILE = re.compile(r"^[0-9]g\.[0-9]+gb(\+me)?$")


def _rule_violations(spec: ClusterSpec):
    yield from _platform_rules(spec)
    for index, pool in enumerate(spec.node_pools):
        yield from _pool_rules(spec, pool, ("node_pools", index))
    yield from _uniqueness_rules(spec)
    yield from _system_pod_rules(spec)
    yield from _tenant_rules(spec)
    yield from _tenant_access_rules(spec)
    yield from _no_effect_rules(spec)
    yield from _datastore_rules(spec)
    yield from _backup_rules(spec)
    yield from _guardian_rules(spec)
    yield from _gpu_stack_rules(spec)
    yield from _aws_rules(spec)
    yield from _monitoring_rules(spec)
    yield from _autoscaling_rules(spec)


def _gpu_stack_rules(spec: ClusterSpec):
    """Open kernel modules: Blackwell GPUs need them, Volta GPUs cannot use them."""
    open_modules = spec.gpu_stack.open_kernel_modules
    if open_modules is None:
        return
    architectures = {
        catalog().gpus[model].architecture: model for pool in spec.node_pools for model in pool_gpu_models(pool)
    }
    conflict = "volta" if open_modules else "blackwell"
    if conflict in architectures:
        need = "proprietary" if open_modules else "open"
        yield Violation(
            ("gpu_stack", "open_kernel_modules"),
            open_modules,
            f"{architectures[conflict]} ({conflict}) needs NVIDIA's {need} kernel modules; drop the field to pick them",
        )


def _platform_rules(spec: ClusterSpec):
    distribution = spec.kubernetes.distribution
    if distribution == "eks" and spec.platform != "aws":
        yield Violation(
            ("kubernetes", "distribution"), distribution, "eks runs only on platform 'aws'; use kubeadm or k3s"
        )
    if distribution != "eks" and spec.platform == "aws":
        yield Violation(
            ("kubernetes", "distribution"), distribution, "platform 'aws' uses 'eks'; kubeadm/k3s need onprem or hybrid"
        )
    if spec.platform in ("aws", "hybrid") and spec.aws is None:
        yield Violation(
            ("aws",), None, f"platform {spec.platform!r} needs an 'aws' section (region, availability_zones)"
        )
    if spec.platform == "onprem" and spec.aws is not None:
        yield Violation(("aws",), "<section>", "platform 'onprem' takes no 'aws' section; remove it")
    if distribution == "eks":
        if spec.kubernetes.control_plane is not None:
            yield Violation(("kubernetes", "control_plane"), "<section>", "EKS manages its control plane; remove it")
        if spec.runtime.name != "containerd":
            yield Violation(("runtime", "name"), spec.runtime.name, "EKS GPU AMIs run containerd; use 'containerd'")
        if spec.network.cni not in ("aws-vpc-cni", "cilium"):
            yield Violation(("network", "cni"), spec.network.cni, "EKS supports 'aws-vpc-cni' or 'cilium'")
    else:
        yield from _control_plane_rules(spec)
        if spec.network.cni == "aws-vpc-cni":
            yield Violation(("network", "cni"), "aws-vpc-cni", f"{distribution} uses 'calico', 'cilium' or 'flannel'")
    if spec.network.fabric == "efa":
        if spec.platform == "onprem":
            yield Violation(
                ("network", "fabric"), "efa", "EFA exists only on AWS; use 'infiniband' or 'ethernet' on-prem"
            )
        elif not any(pool.efa for pool in spec.node_pools):
            yield Violation(("network", "fabric"), "efa", "fabric 'efa' needs at least one node pool with efa: true")
    if spec.kubernetes.pod_cidr.overlaps(spec.kubernetes.service_cidr):
        yield Violation(
            ("kubernetes", "service_cidr"),
            str(spec.kubernetes.service_cidr),
            f"overlaps pod_cidr {spec.kubernetes.pod_cidr}",
        )
    if spec.network.fabric == "infiniband" and spec.platform == "aws":
        yield Violation(("network", "fabric"), "infiniband", "AWS has no InfiniBand; use 'efa' for its RDMA fabric")
    yield from _ipoib_rules(spec)
    if spec.network.fabric == "infiniband" and _minor(spec.kubernetes.version) < _minor(
        NETWORK_OPERATOR_MIN_KUBERNETES
    ):
        yield Violation(
            ("kubernetes", "version"),
            spec.kubernetes.version,
            f"fabric 'infiniband' needs the NVIDIA network operator, which needs Kubernetes"
            f" {NETWORK_OPERATOR_MIN_KUBERNETES} or newer",
        )
    if spec.ingress.load_balancer in ("alb", "nlb") and spec.platform != "aws":
        yield Violation(
            ("ingress", "load_balancer"),
            spec.ingress.load_balancer,
            "ALB/NLB exist only on platform 'aws'; use 'service'",
        )
    yield from _certificate_rules(spec)
    yield from _network_rules(spec)


def _ipoib_rules(spec: ClusterSpec):
    ipoib, path = spec.network.ipoib, ("network", "ipoib")
    if ipoib is None:
        return
    if spec.network.fabric != "infiniband":
        yield Violation(path, "<section>", f"IPoIB needs fabric 'infiniband' (it is {spec.network.fabric!r})")
        return
    for name in ("pod_cidr", "service_cidr"):
        cidr = getattr(spec.kubernetes, name)
        if ipoib.subnet.overlaps(cidr):
            yield Violation((*path, "subnet"), str(ipoib.subnet), f"overlaps kubernetes.{name} {cidr}")
    nodes = sum(len(pool.hosts) or pool.scaling.max for pool in spec.node_pools)
    if ipoib.subnet.num_addresses < ipoib.per_node_block_size * nodes:
        yield Violation(
            (*path, "subnet"),
            str(ipoib.subnet),
            f"too small for {nodes} nodes of {ipoib.per_node_block_size} addresses (per_node_block_size)",
        )


def _minor(version: str) -> int:
    return int(version.split(".")[1])


def _certificate_rules(spec: ClusterSpec):
    ingress, path = spec.ingress, ("ingress", "certificate_arn")
    if ingress.load_balancer == "alb" and ingress.certificate_arn is None:
        yield Violation(path, None, "an ALB serves HTTPS: name its ACM certificate (arn:aws:acm:<region>:...)")
    if ingress.load_balancer != "alb" and ingress.certificate_arn is not None:
        yield Violation(path, ingress.certificate_arn, "only an ALB (load_balancer 'alb') uses it; remove it")
    match = _ACM_CERTIFICATE_ARN.match(ingress.certificate_arn or "")
    if match and spec.aws is not None and match["region"] != spec.aws.region:
        message = f"an ALB takes certificates from its own region {spec.aws.region!r}, not {match['region']!r}"
        yield Violation(path, ingress.certificate_arn, message)


# kube-controller-manager's default --node-cidr-mask-size (kubeadm and k3s): each node gets a /24 for its pods.
NODE_CIDR_MASK = 24
# The largest IPv4 service range kube-apiserver takes (2^20 addresses); EKS also wants it private and /12-/24.
SERVICE_CIDR_MIN_PREFIX = 12
_PRIVATE_NETWORKS = tuple(IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
# AWS VPCs are /16 to /28, and so is each subnet.
VPC_PREFIXES = range(16, 29)


def _network_rules(spec: ClusterSpec):
    """Pod, service and VPC ranges that fit the cluster and stay apart; availability zones of the region."""
    kubernetes, k8s = spec.kubernetes, ("kubernetes",)
    pods, services = kubernetes.pod_cidr, kubernetes.service_cidr
    if services.prefixlen < SERVICE_CIDR_MIN_PREFIX:
        message = f"larger than kube-apiserver allows (at most a /{SERVICE_CIDR_MIN_PREFIX})"
        yield Violation((*k8s, "service_cidr"), str(services), message)
    elif kubernetes.distribution == "eks" and (
        services.prefixlen > NODE_CIDR_MASK or not any(services.subnet_of(n) for n in _PRIVATE_NETWORKS)
    ):
        message = "EKS takes a /12 to /24 service range inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
        yield Violation((*k8s, "service_cidr"), str(services), message)
    if kubernetes.distribution != "eks":  # EKS pods take VPC addresses; pod_cidr applies to kubeadm and k3s
        nodes, room = node_count(spec), 2 ** max(NODE_CIDR_MASK - pods.prefixlen, 0)
        if pods.prefixlen > NODE_CIDR_MASK or nodes > room:
            needed = NODE_CIDR_MASK - (nodes - 1).bit_length()
            message = (
                f"room for {room if pods.prefixlen <= NODE_CIDR_MASK else 0} node(s) at a /{NODE_CIDR_MASK} per node, "
                f"and the cluster can have {nodes}; use a /{needed} or larger"
            )
            yield Violation((*k8s, "pod_cidr"), str(pods), message)
    if spec.aws is None:
        return
    vpc, zones, region = spec.aws.vpc_cidr, spec.aws.availability_zones, spec.aws.region
    if vpc.prefixlen not in VPC_PREFIXES:
        message = f"AWS VPCs are /{VPC_PREFIXES.start} to /{VPC_PREFIXES.stop - 1}"
        yield Violation(("aws", "vpc_cidr"), str(vpc), message)
    else:
        # As gpucluster.aws.network.subnet_blocks carves it: a private subnet per zone, public ones a step smaller.
        bits = len(set(zones)).bit_length()
        if vpc.prefixlen + 2 * bits > VPC_PREFIXES.stop - 1:
            largest = VPC_PREFIXES.stop - 1 - 2 * bits
            message = (
                f"too small for a private and a public subnet in each of {len(set(zones))} zones; use a /{largest}"
            )
            yield Violation(("aws", "vpc_cidr"), str(vpc), message)
    if vpc.overlaps(services):
        yield Violation(("aws", "vpc_cidr"), str(vpc), f"overlaps kubernetes.service_cidr {services}")
    if spec.platform == "hybrid" and vpc.overlaps(pods):
        yield Violation(("aws", "vpc_cidr"), str(vpc), f"overlaps kubernetes.pod_cidr {pods}")
    zone_of_region = re.compile(rf"{re.escape(region)}[a-z]")
    for index, zone in enumerate(zones):
        if not zone_of_region.fullmatch(zone):
            message = f"not a zone of {region}: the region and one lower-case letter, such as '{region}a'"
            yield Violation(("aws", "availability_zones", index), zone, message)
        elif zone in zones[:index]:
            yield Violation(("aws", "availability_zones", index), zone, "listed twice")


def node_count(spec: ClusterSpec) -> int:
    """The most nodes the cluster can have: its machines (a control-plane host in a pool counted once) plus
    provisioned control-plane machines and each provisioned pool at its maximum."""
    control_plane = spec.kubernetes.control_plane
    hosts = {host.name for host in control_plane.hosts} if control_plane else set()
    hosts |= {host.name for pool in spec.node_pools for host in pool.hosts}
    provisioned = control_plane.count if control_plane and control_plane.instance_type else 0
    return len(hosts) + provisioned + sum(pool.scaling.max for pool in spec.node_pools if pool.instance_types)


def _host_address_rules(spec: ClusterSpec):
    """One machine per address (a control-plane host listed in a pool is the same machine), outside the pod
    and service networks, which would shadow it inside the cluster."""
    control_plane = spec.kubernetes.control_plane
    control_hosts = control_plane.hosts if control_plane else []
    machines: list[tuple[tuple, Host]] = [
        (("kubernetes", "control_plane", "hosts", i), host) for i, host in enumerate(control_hosts)
    ]
    machines += [
        (("node_pools", p, "hosts", i), host)
        for p, pool in enumerate(spec.node_pools)
        for i, host in enumerate(pool.hosts)
    ]
    first_at: dict[str, tuple[tuple, Host]] = {}
    networks = {"pod_cidr": spec.kubernetes.pod_cidr, "service_cidr": spec.kubernetes.service_cidr}
    for path, host in machines:
        key = address_key(host.address)
        if key in first_at and first_at[key][1].name != host.name:
            where, other = first_at[key]
            message = f"also the address of {other.name} ({dotted(where)}); each machine needs its own address"
            yield Violation((*path, "address"), host.address, message)
        first_at.setdefault(key, (path, host))
        ip = _ip(key)
        for field, network in networks.items():
            if ip is not None and ip.version == 4 and ip in network:
                message = f"inside kubernetes.{field} {network}; in-cluster traffic to it would never reach the machine"
                yield Violation((*path, "address"), host.address, message)


def dotted(path: tuple) -> str:
    """('node_pools', 0, 'hosts', 1) -> 'node_pools[0].hosts[1]'."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def _control_plane_rules(spec: ClusterSpec):
    control_plane = spec.kubernetes.control_plane
    path = ("kubernetes", "control_plane")
    if control_plane is None:
        yield Violation(path, None, f"{spec.kubernetes.distribution} needs a control_plane (hosts or instance_type)")
        return
    if bool(control_plane.hosts) == bool(control_plane.instance_type):
        yield Violation(path, "<section>", "give either 'hosts' (existing machines) or 'instance_type' (provisioned)")
    if control_plane.instance_type and spec.platform != "hybrid":
        yield Violation(
            (*path, "instance_type"), control_plane.instance_type, "provisioned machines need platform 'hybrid'"
        )
    machines = len(control_plane.hosts) or (control_plane.count if control_plane.instance_type else 0)
    if machines > 1 and not control_plane.endpoint:
        yield Violation((*path, "endpoint"), None, f"{machines} control-plane machines need a load-balanced endpoint")
    if machines > 1 and machines % 2 == 0:
        yield Violation(path, machines, "etcd needs an odd number of control-plane machines (1, 3, 5)")


def _pool_rules(spec: ClusterSpec, pool: NodePool, path: tuple):
    types = catalog().instance_types
    provisioned = bool(pool.instance_types)
    if provisioned == bool(pool.hosts):
        yield Violation(path, pool.name, "a pool lists either 'instance_types' (provisioned) or 'hosts' (existing)")
    if spec.platform == "aws" and pool.hosts:
        yield Violation((*path, "hosts"), "<list>", "platform 'aws' provisions machines; use 'instance_types'")
    if spec.platform == "onprem" and pool.instance_types:
        yield Violation((*path, "instance_types"), pool.instance_types, "platform 'onprem' uses 'hosts'")
    for index, name in enumerate(pool.instance_types):
        if name not in types:
            gpu_types = ", ".join(sorted(types))
            yield Violation((*path, "instance_types", index), name, f"not a GPU instance type; allowed: {gpu_types}")
        elif name in pool.instance_types[:index]:
            yield Violation((*path, "instance_types", index), name, "listed twice; list each instance type once")
    yield from _label_and_taint_rules(pool, path)
    known = [types[name] for name in pool.instance_types if name in types]
    if known:
        yield from _instance_type_rules(pool, known, path)
    elif pool.hosts and pool.gpu is None:
        for index, host in enumerate(pool.hosts):
            if not host.gpus:
                yield Violation((*path, "hosts", index, "gpus"), [], "list the host's GPUs or set the pool's 'gpu'")
    if pool.efa and pool.hosts:
        yield Violation((*path, "efa"), True, "EFA is for AWS instance types; on-prem hosts use fabric 'infiniband'")
    if pool.efa and spec.network.fabric != "efa":
        yield Violation((*path, "efa"), True, f"efa pools need network.fabric 'efa' (it is {spec.network.fabric!r})")
    if pool.efa and not pool.availability_zone:
        yield Violation(
            (*path, "availability_zone"), None, "EFA pools need one availability zone for their placement group"
        )
    if pool.availability_zone and spec.aws and pool.availability_zone not in spec.aws.availability_zones:
        yield Violation(
            (*path, "availability_zone"), pool.availability_zone, f"allowed: {', '.join(spec.aws.availability_zones)}"
        )
    scaling = pool.scaling
    if not scaling.min <= scaling.desired <= scaling.max:
        yield Violation((*path, "scaling"), scaling.model_dump(), "needs min <= desired <= max")
    if pool.capacity.on_demand_base > scaling.max:
        yield Violation(
            (*path, "capacity", "on_demand_base"),
            pool.capacity.on_demand_base,
            f"must be <= scaling.max ({scaling.max})",
        )
    if pool.capacity.type != "on-demand" and pool.hosts:
        yield Violation((*path, "capacity", "type"), pool.capacity.type, "spot/mixed capacity exists only on AWS")
    yield from _sharing_rules(pool, path)


def _label_and_taint_rules(pool: NodePool, path: tuple):
    for key in pool.labels:
        if key in GPUCLUSTER_LABELS:
            message = f"gpucluster sets this label to {GPUCLUSTER_LABELS[key]}; remove it"
            yield Violation((*path, "labels", key), key, message)
        elif not _kubelet_may_set(key):
            message = (
                "the kubelet refuses labels under kubernetes.io and k8s.io on its own node, except in "
                f"{' and '.join(ns + '/' for ns in KUBELET_LABEL_NAMESPACES)}; use your own prefix"
            )
            yield Violation((*path, "labels", key), key, message)
    seen: set[tuple[str, str]] = set()
    for index, taint in enumerate(pool.taints):
        if taint.key == GPU_TAINT_KEY:
            message = f"gpucluster taints GPU pools {GPU_TAINT_KEY}=present:NoSchedule itself; remove this taint"
            yield Violation((*path, "taints", index, "key"), taint.key, message)
        elif (taint.key, taint.effect) in seen:
            message = f"a second {taint.key}:{taint.effect} taint; a node has one taint per key and effect"
            yield Violation((*path, "taints", index), taint.model_dump(), message)
        seen.add((taint.key, taint.effect))


def _kubelet_may_set(key: str) -> bool:
    """Whether a kubelet may put this label on its own node (``--node-labels``, NodeRestriction)."""
    namespace = key.rpartition("/")[0]
    restricted = any(namespace == ns or namespace.endswith("." + ns) for ns in ("kubernetes.io", "k8s.io"))
    return not restricted or any(namespace == ns or namespace.endswith("." + ns) for ns in KUBELET_LABEL_NAMESPACES)


def _instance_type_rules(pool: NodePool, known: list, path: tuple):
    models = {t.gpu for t in known}
    if len(models) > 1:
        yield Violation(
            (*path, "instance_types"),
            pool.instance_types,
            f"mixes GPU models {sorted(models)}; a pool has one GPU model",
        )
    first = known[0]
    if pool.gpu is not None:
        if pool.gpu.model != first.gpu:
            yield Violation(
                (*path, "gpu", "model"),
                pool.gpu.model,
                f"{pool.instance_types[0]} has {first.gpu}; drop 'gpu' or fix it",
            )
        if pool.gpu.count != first.gpus:
            yield Violation(
                (*path, "gpu", "count"),
                pool.gpu.count,
                f"{pool.instance_types[0]} has {first.gpus} GPUs; drop 'gpu' or fix it",
            )
    if pool.efa:
        for index, name in enumerate(pool.instance_types):
            if name in catalog().instance_types and catalog().instance_types[name].efa_interfaces == 0:
                capable = sorted(
                    n for n, t in catalog().instance_types.items() if t.efa_interfaces and t.gpu == first.gpu
                )
                yield Violation(
                    (*path, "instance_types", index),
                    name,
                    f"does not support EFA; EFA-capable with {first.gpu}: {capable}",
                )


def _sharing_rules(pool: NodePool, path: tuple):
    sharing = pool.sharing
    spath = (*path, "sharing")
    if sharing.mode != "time-slicing" and sharing.replicas is not None:
        yield Violation((*spath, "replicas"), sharing.replicas, "replicas apply to mode 'time-slicing' only")
    if sharing.mode != "mig" and (sharing.strategy or sharing.profile or sharing.layout):
        yield Violation((*spath, "mode"), sharing.mode, "strategy/profile/layout apply to mode 'mig' only")
    if sharing.mode == "time-slicing" and (sharing.replicas is None or sharing.replicas < 2):
        yield Violation((*spath, "replicas"), sharing.replicas, "time-slicing needs replicas >= 2")
    if sharing.mode != "mig":
        return
    models = pool_gpu_models(pool)
    if len(models) > 1:
        yield Violation((*spath, "mode"), "mig", f"MIG pools need one GPU model; this pool has {', '.join(models)}")
    for model in models:
        if catalog().gpus[model].mig is None:
            capable = [name for name, gpu in catalog().gpus.items() if gpu.mig]
            yield Violation(
                (*spath, "mode"), "mig", f"{model} is not MIG-capable; MIG-capable GPUs: {', '.join(capable)}"
            )
    if sharing.strategy is None:
        yield Violation((*spath, "strategy"), None, "mig needs strategy 'single' or 'mixed'")
    if sharing.strategy == "single" and (sharing.profile is None or sharing.layout):
        yield Violation((*spath, "profile"), sharing.profile, "strategy 'single' takes one 'profile' and no 'layout'")
    if sharing.strategy == "mixed" and (not sharing.layout or sharing.profile):
        yield Violation((*spath, "layout"), sharing.layout, "strategy 'mixed' takes a 'layout' and no 'profile'")
    for model in models:
        mig = catalog().gpus[model].mig
        if mig is not None:
            field = "layout" if sharing.layout else "profile"
            yield from _mig_layout_rules(model, mig, mig_layout(pool, model), field, spath)


def _mig_layout_rules(model: str, mig, layout: dict[str, int], field: str, spath: tuple):
    unknown = [profile for profile in layout if profile not in mig.profiles]
    for profile in unknown:
        yield Violation((*spath, field), profile, f"not a {model} MIG profile; allowed: {', '.join(mig.profiles)}")
    if unknown:
        return  # the slice budget needs every profile's size
    for profile, count in layout.items():
        if not 1 <= count <= mig.profiles[profile].max_instances:
            yield Violation(
                (*spath, field), {profile: count}, f"{model} fits 1..{mig.profiles[profile].max_instances} of {profile}"
            )
    compute = sum(mig.profiles[p].compute * n for p, n in layout.items())
    memory = sum(mig.profiles[p].memory * n for p, n in layout.items())
    if compute > mig.compute_slices or memory > mig.memory_slices:
        yield Violation(
            (*spath, field),
            layout,
            f"needs {compute} compute / {memory} memory slices; {model} has {mig.compute_slices} / {mig.memory_slices}",
        )


def _uniqueness_rules(spec: ClusterSpec):
    def duplicates(names):
        return sorted(name for name, n in Counter(names).items() if n > 1)

    for name in duplicates(pool.name for pool in spec.node_pools):
        yield Violation(("node_pools",), name, "pool names must be unique")
    for index, pool in enumerate(spec.node_pools):
        if pool.name == RESERVED_POOL_NAME:
            message = "'default' names the device plugin's fallback config; pick another name"
            yield Violation(("node_pools", index, "name"), pool.name, message)
        if pool.name == SYSTEM_POOL_NAME:
            message = "'system' names the pool of CPU nodes for system pods; pick another name"
            yield Violation(("node_pools", index, "name"), pool.name, message)
    control_hosts = spec.kubernetes.control_plane.hosts if spec.kubernetes.control_plane else []
    for name in duplicates(host.name for host in control_hosts):
        yield Violation(("kubernetes", "control_plane", "hosts"), name, "host names must be unique")
    for name in duplicates(h.name for pool in spec.node_pools for h in pool.hosts):
        yield Violation(("node_pools",), name, "a host belongs to one pool; host names must be unique across pools")
    yield from _host_address_rules(spec)
    control_addresses = {host.name: host.address for host in control_hosts}
    for index, pool in enumerate(spec.node_pools):
        for host_index, host in enumerate(pool.hosts):
            if control_addresses.get(host.name, host.address) != host.address:
                yield Violation(
                    ("node_pools", index, "hosts", host_index, "address"),
                    host.address,
                    f"{host.name} is also a control-plane host, at {control_addresses[host.name]}; use one address",
                )
    for name in duplicates(tenant.ns for tenant in spec.tenants):
        yield Violation(("tenants",), name, "tenant namespaces must be unique")
    for index, tenant in enumerate(spec.tenants):
        if tenant.ns in SYSTEM_NAMESPACES:
            field = "namespace" if tenant.namespace else "name"
            message = f"a system namespace; not one of {', '.join(SYSTEM_NAMESPACES)}"
            yield Violation(("tenants", index, field), tenant.ns, message)
        if not (tenant.groups or tenant.users):
            yield Violation(
                ("tenants", index), tenant.name, "name at least one of 'groups' or 'users' to bind its Role"
            )


def _tenant_rules(spec: ClusterSpec):
    # The plan derives the advertised resource names; imported here as it builds on this module.
    from gpucluster.plan import GPU_RESOURCE, pool_gpu_resources

    if spec.tenancy.mode == "kueue" and not spec.tenants:
        yield Violation(("tenancy", "mode"), "kueue", "kueue queues tenants' jobs; add 'tenants' or use 'quota'")
    if spec.tenancy.borrowing and spec.tenancy.mode != "kueue":
        yield Violation(("tenancy", "borrowing"), True, "borrowing is Kueue's; set tenancy.mode 'kueue'")
    pools = {pool.name: pool for pool in spec.node_pools}
    for index, tenant in enumerate(spec.tenants):
        path = ("tenants", index)
        if tenant.pools is not None:
            yield from _tenant_pool_rules(spec, tenant, path)
        usable = [pools[name] for name in tenant.pools or pools if name in pools]
        advertised = sorted({name for pool in usable for name in pool_gpu_resources(pool)})
        whose = "its pools advertise" if tenant.pools is not None else "the cluster advertises"
        for name in tenant.resources:
            if name == GPU_RESOURCE:
                yield Violation((*path, "resources", name), name, "grant nvidia.com/gpu with 'gpus'")
            elif name not in advertised:
                message = f"no pool the tenant may use advertises it; {whose}: {', '.join(advertised)}"
                yield Violation((*path, "resources", name), name, message)
        if tenant.gpus and tenant.pools and GPU_RESOURCE not in advertised:
            message = f"none of its pools advertises nvidia.com/gpu ({whose}: {', '.join(advertised)})"
            yield Violation((*path, "gpus"), tenant.gpus, f"{message}; grant those through 'resources'")


def _tenant_pool_rules(spec: ClusterSpec, tenant: Tenant, path: tuple):
    from gpucluster.plan import ADMISSION_POLICY_MIN_MINOR

    names = [pool.name for pool in spec.node_pools]
    if spec.kubernetes.minor < ADMISSION_POLICY_MIN_MINOR:
        message = (
            f"needs Kubernetes 1.{ADMISSION_POLICY_MIN_MINOR}+ (ValidatingAdmissionPolicy v1 enforces it);"
            f" this cluster runs {spec.kubernetes.version}: remove 'pools' or raise kubernetes.version"
        )
        yield Violation((*path, "pools"), tenant.pools, message)
    if not tenant.pools:
        yield Violation((*path, "pools"), [], "name at least one pool, or omit 'pools' for all of them")
    listed = tenant.pools or []
    for pool_index, name in enumerate(listed):
        if name not in names:
            yield Violation((*path, "pools", pool_index), name, f"no such pool; pools: {', '.join(names)}")
        elif listed.index(name) != pool_index:
            yield Violation((*path, "pools", pool_index), name, "listed twice")


def _aws_rules(spec: ClusterSpec):
    autoscaler = spec.autoscaling.node_autoscaler
    if autoscaler != "none" and spec.platform != "aws":
        yield Violation(
            ("autoscaling", "node_autoscaler"), autoscaler, "node autoscalers resize EKS pools; use 'none' here"
        )
    if autoscaler == "karpenter" and spec.platform == "aws" and spec.system_pool is None:
        message = "Karpenter runs on the system pool's nodes (GPU pools become its NodePools); add a system_pool"
        yield Violation(("system_pool",), None, message)
    aws = spec.aws
    if aws is not None:
        yield from _hybrid_machine_rules(spec.platform, aws)
    if aws is not None and aws.endpoint_access == "private" and aws.public_access_cidrs is not None:
        yield Violation(
            ("aws", "public_access_cidrs"),
            [str(cidr) for cidr in aws.public_access_cidrs],
            "a private endpoint has no public access; remove it or set endpoint_access",
        )


def _tenant_access_rules(spec: ClusterSpec):
    """Who a tenant's RoleBinding names, and LimitRange defaults its quota can admit."""
    for index, tenant in enumerate(spec.tenants):
        path = ("tenants", index)
        for position, group in enumerate(tenant.groups):
            if group.startswith("system:"):
                message = (
                    "'system:' groups belong to Kubernetes (system:authenticated is every identity, "
                    "system:unauthenticated every anonymous request); bind the tenant's own groups"
                )
                yield Violation((*path, "groups", position), group, message)
        for position, user in enumerate(tenant.users):
            if user.startswith("system:") and not _SERVICE_ACCOUNT.match(user):
                message = (
                    "'system:' users are anonymous requests and Kubernetes components; bind people, or a service "
                    "account as system:serviceaccount:<namespace>:<name>"
                )
                yield Violation((*path, "users", position), user, message)
        for default, quota in (("default_cpu", "cpu"), ("default_memory", "memory")):
            wanted, allowed = getattr(tenant, default), getattr(tenant, quota)
            if quantity_value(wanted) > quantity_value(allowed):
                message = f"more than the tenant's {quota} quota ({allowed}), so no container without requests fits"
                yield Violation((*path, default), wanted, message)


_SERVICE_ACCOUNT = re.compile(r"^system:serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")


def _no_effect_rules(spec: ClusterSpec):
    """Fields that cannot apply where they are set: refused rather than silently ignored."""
    default_disk = NodePool.model_fields["disk_gib"].default
    for index, pool in enumerate(spec.node_pools):
        if not pool.hosts:
            continue
        path = ("node_pools", index)
        if pool.availability_zone is not None:
            message = "existing hosts are not placed in an AWS availability zone; remove it"
            yield Violation((*path, "availability_zone"), pool.availability_zone, message)
        if pool.disk_gib != default_disk:
            message = "gpucluster sizes root volumes of machines it provisions; existing hosts keep their disks"
            yield Violation((*path, "disk_gib"), pool.disk_gib, message)
        if pool.scaling != Scaling():
            message = "a pool of existing hosts has one node per host; remove 'scaling'"
            yield Violation((*path, "scaling"), pool.scaling.model_dump(), message)
    if spec.network.ib_hcas and spec.network.fabric != "infiniband":
        message = f"InfiniBand HCAs apply to fabric 'infiniband' only (it is {spec.network.fabric!r}); remove them"
        yield Violation(("network", "ib_hcas"), spec.network.ib_hcas, message)
    if spec.ingress.load_balancer != "service" and spec.ingress.controller == "none":
        message = "a load balancer fronts the ingress controller; set ingress.controller or use 'service'"
        yield Violation(("ingress", "load_balancer"), spec.ingress.load_balancer, message)


def _system_pod_rules(spec: ClusterSpec):
    """System pods (CoreDNS, controllers) need an untainted node; the system pool exists only on EKS."""
    system_pool, eks = spec.system_pool, spec.kubernetes.distribution == "eks"
    if system_pool is not None and not eks:
        message = (
            "only EKS provisions a system pool; on kubeadm/k3s system pods run on schedulable control-plane "
            "machines (kubernetes.control_plane.schedulable) or on pools with gpu_taint false"
        )
        yield Violation(("system_pool",), "<section>", message)
    if system_pool is not None:
        cpu_types = catalog().cpu_instance_types
        for index, name in enumerate(system_pool.instance_types):
            if name in catalog().instance_types:
                message = f"a GPU instance type; the system pool takes CPU types: {', '.join(cpu_types)}"
                yield Violation(("system_pool", "instance_types", index), name, message)
            elif name not in cpu_types:
                message = f"not a known CPU instance type; allowed: {', '.join(cpu_types)}"
                yield Violation(("system_pool", "instance_types", index), name, message)
        scaling = system_pool.scaling
        if not 1 <= scaling.min <= scaling.desired <= scaling.max:
            yield Violation(("system_pool", "scaling"), scaling.model_dump(), "needs 1 <= min <= desired <= max")
    if system_pool is not None or dedicated_system_nodes(spec) or any(takes_system_pods(spec)):
        return
    if eks:
        message = (
            "every GPU pool is tainted, so CoreDNS and the controllers would have no node: add a system_pool "
            "(CPU instance_types such as m6i.large, scaling) or set gpu_taint: false on a pool"
        )
        yield Violation(("system_pool",), None, message)
        return
    blocking = [(i, "gpu_taint") for i, p in enumerate(spec.node_pools) if p.gpu_taint]
    blocking += [(i, "taints") for i, p in enumerate(spec.node_pools) if any(_repels(t) for t in p.taints)]
    index, field = min(blocking)  # with no dedicated system node, only explicit taints leave none
    fix = "set gpu_taint: false on a pool (or drop its NoSchedule/NoExecute taints)"
    if not control_plane_schedulable(spec):
        fix += " or make the control plane schedulable (kubernetes.control_plane.schedulable: true)"
    message = f"every node is tainted, so CoreDNS and the controllers would have no node: {fix}"
    yield Violation(("node_pools", index, field), getattr(spec.node_pools[index], field), message)


def _monitoring_rules(spec: ClusterSpec):
    alertmanager = spec.monitoring.alertmanager
    path = ("monitoring", "alertmanager")
    names = [receiver.name for receiver in alertmanager.receivers]
    known = [NULL_RECEIVER, *names]
    for index, receiver in enumerate(alertmanager.receivers):
        if receiver.name == NULL_RECEIVER or names.count(receiver.name) > 1:
            yield Violation((*path, "receivers", index, "name"), receiver.name, "receiver names are unique, not 'null'")
        if not (receiver.slack or receiver.pagerduty or receiver.webhook or receiver.email):
            yield Violation((*path, "receivers", index), receiver.name, "give slack, pagerduty, webhook or email")
    for index, route in enumerate(alertmanager.routes):
        if route.receiver not in known:
            yield Violation((*path, "routes", index, "receiver"), route.receiver, f"allowed: {', '.join(known)}")
    if alertmanager.default_receiver not in known:
        yield Violation((*path, "default_receiver"), alertmanager.default_receiver, f"allowed: {', '.join(known)}")


# --- derived facts the rules and the renderers share -------------------------------------------------


def pool_gpu_models(pool: NodePool) -> list[str]:
    """The distinct GPU models in a pool, in first-seen order."""
    types = catalog().instance_types
    if pool.instance_types:
        return list(dict.fromkeys(types[t].gpu for t in pool.instance_types if t in types))
    models = [gpu.model for host in pool.hosts for gpu in (host.gpus or ([pool.gpu] if pool.gpu else []))]
    return list(dict.fromkeys(models))


def mig_layout(pool: NodePool, model: str) -> dict[str, int]:
    """MIG profile -> instances per GPU for one GPU model of a MIG pool."""
    sharing = pool.sharing
    if sharing.layout:
        return dict(sharing.layout)
    if sharing.profile:
        mig = catalog().gpus[model].mig
        profile = mig.profiles.get(sharing.profile) if mig else None
        if mig is None or profile is None:
            return {sharing.profile: 1}
        return {sharing.profile: min(profile.max_instances, mig.compute_slices // profile.compute)}
    return {}


def k3s_servers(spec: ClusterSpec) -> int:
    """How many k3s servers the control plane has (listed hosts or provisioned machines)."""
    control_plane = spec.kubernetes.control_plane
    if control_plane is None:
        return 0
    return len(control_plane.hosts) or (control_plane.count if control_plane.instance_type else 0)


def datastore(spec: ClusterSpec) -> str | None:
    """Where the cluster state lives: 'etcd' (kubeadm, k3s with embedded etcd), 'sqlite' (one k3s server),
    or None on EKS, which keeps (and backs up) its own etcd."""
    distribution = spec.kubernetes.distribution
    if distribution == "eks":
        return None
    if distribution == "kubeadm":
        return "etcd"
    return spec.kubernetes.datastore or ("etcd" if k3s_servers(spec) > 1 else "sqlite")


def _datastore_rules(spec: ClusterSpec):
    path = ("kubernetes", "datastore")
    chosen = spec.kubernetes.datastore
    if chosen is not None and spec.kubernetes.distribution != "k3s":
        yield Violation(path, chosen, "only k3s has a datastore choice (kubeadm runs etcd, EKS its own); remove it")
    elif chosen == "sqlite" and k3s_servers(spec) > 1:
        message = f"{k3s_servers(spec)} k3s servers share state only through embedded etcd; use 'etcd'"
        yield Violation(path, chosen, message)


def _backup_rules(spec: ClusterSpec):
    velero, etcd = spec.backups.velero, spec.backups.etcd
    vpath, epath = ("backups", "velero"), ("backups", "etcd")
    if velero.enabled:
        if velero.bucket is None:
            yield Violation((*vpath, "bucket"), None, "Velero needs the bucket its backups go to")
        if spec.kubernetes.distribution != "eks" and velero.credentials_secret is None:
            message = "outside EKS Velero reads its S3 credentials from a Secret: name it (key 'cloud')"
            yield Violation((*vpath, "credentials_secret"), None, message)
        if spec.platform == "onprem":
            if velero.s3_url is None:
                yield Violation((*vpath, "s3_url"), None, "on-prem backups need an S3-compatible endpoint (MinIO, ...)")
            if velero.region is None:
                message = "S3-compatible stores still need a region name (MinIO accepts any, e.g. 'minio')"
                yield Violation((*vpath, "region"), None, message)
    for name in sorted({t.name for t in velero.tiers if [u.name for u in velero.tiers].count(t.name) > 1}):
        yield Violation((*vpath, "tiers"), name, "tier names must be unique (each becomes a Velero Schedule)")
    for name in sorted(set(velero.included_namespaces) & set(velero.excluded_namespaces)):
        yield Violation((*vpath, "excluded_namespaces"), name, "also in included_namespaces; keep it in one list")
    if not spec.backups.etcd.enabled:
        return
    store = datastore(spec)
    if store is None:
        yield Violation((*epath, "enabled"), True, "EKS runs and backs up its own etcd; turn etcd backups off")
    elif store == "sqlite":
        message = (
            "this k3s server keeps its state in SQLite, which has no etcd to snapshot; set kubernetes.datastore "
            "'etcd' (k3s cluster-init) to take etcd snapshots"
        )
        yield Violation((*epath, "enabled"), True, message)
    if etcd.upload and not (velero.enabled and velero.bucket):
        yield Violation(
            (*epath, "upload"), True, "uploads go to the Velero bucket: enable backups.velero with a bucket"
        )


def _guardian_rules(spec: ClusterSpec):
    from gpucluster.onprem.inventory import guardian_on_hosts  # imported on use: it imports this module

    guardian = spec.monitoring.guardian
    path = ("monitoring", "guardian", "image")
    if guardian.enabled and guardian.image is None and not guardian_on_hosts(spec):  # host mode runs no image
        yield Violation(path, None, "name the guardian image you built from images/guardian/Dockerfile")
    if guardian.image and guardian.image.endswith(":latest"):
        yield Violation(path, guardian.image, "pin a version tag or digest; 'latest' drifts")


def control_plane_schedulable(spec: ClusterSpec) -> bool:
    """Whether ordinary pods may run on the kubeadm/k3s control-plane machines (never on EKS)."""
    control_plane = spec.kubernetes.control_plane
    if spec.kubernetes.distribution == "eks" or control_plane is None:
        return False
    if control_plane.schedulable is not None:
        return control_plane.schedulable
    return spec.kubernetes.distribution == "k3s"


def dedicated_system_nodes(spec: ClusterSpec) -> int:
    """Schedulable control-plane machines that are in no pool, so carry no pool taint."""
    control_plane = spec.kubernetes.control_plane
    if control_plane is None or not control_plane_schedulable(spec):
        return 0
    if control_plane.instance_type:
        return control_plane.count
    pooled = {host.name for pool in spec.node_pools for host in pool.hosts}
    return sum(host.name not in pooled for host in control_plane.hosts)


def gpu_tainted(spec: ClusterSpec) -> tuple[bool, ...]:
    """Per pool: whether it carries the GPU taint. ``gpu_taint`` decides where set; unset, AWS pools are
    tainted (the system pool takes system pods) and on-prem pools are tainted only when some node outside the
    unset pools takes system pods: a schedulable control-plane machine in no pool, or an untainted pool."""
    if spec.platform == "aws":
        return tuple(pool.gpu_taint is not False for pool in spec.node_pools)
    elsewhere = dedicated_system_nodes(spec) > 0 or any(
        pool.gpu_taint is False and not any(_repels(t) for t in pool.taints) for pool in spec.node_pools
    )
    return tuple(elsewhere if pool.gpu_taint is None else pool.gpu_taint for pool in spec.node_pools)


def takes_system_pods(spec: ClusterSpec) -> tuple[bool, ...]:
    """Per pool: no taint on its nodes keeps ordinary pods away (PreferNoSchedule does not)."""
    return tuple(
        not tainted and not any(_repels(t) for t in pool.taints)
        for pool, tainted in zip(spec.node_pools, gpu_tainted(spec), strict=True)
    )


def _repels(taint: Taint) -> bool:
    return taint.effect in ("NoSchedule", "NoExecute")


def whole_gpus_per_node(pool: NodePool) -> int:
    """GPUs in the pool's largest machine (the preferred instance type's on AWS)."""
    types = catalog().instance_types
    if pool.instance_types:
        first = types.get(pool.instance_types[0])
        return first.gpus if first else 0
    per_host = [sum(g.count for g in (host.gpus or ([pool.gpu] if pool.gpu else []))) for host in pool.hosts]
    return max(per_host, default=0)


def _autoscaling_rules(spec: ClusterSpec):
    workloads = spec.autoscaling.workloads
    tenants = {tenant.ns: tenant for tenant in spec.tenants}
    namespaces = list(tenants) or ["default"]
    pools = {pool.name: pool for pool in spec.node_pools}
    seen: set[tuple[str, str]] = set()
    for index, workload in enumerate(workloads):
        path = ("autoscaling", "workloads", index)
        if (workload.namespace, workload.name) in seen:
            yield Violation((*path, "name"), workload.name, f"a second workload of that name in {workload.namespace}")
        seen.add((workload.namespace, workload.name))
        if workload.namespace not in namespaces:
            message = f"not a workload namespace; one of {', '.join(namespaces)}"
            yield Violation((*path, "namespace"), workload.namespace, message)
        pool = pools.get(workload.pool)
        tenant = tenants.get(workload.namespace)
        if pool is None:
            yield Violation((*path, "pool"), workload.pool, f"no such pool; pools: {', '.join(pools)}")
        elif tenant is not None and tenant.pools is not None and pool.name not in tenant.pools:
            message = f"tenant {tenant.name} may use only {', '.join(tenant.pools)}"
            yield Violation((*path, "pool"), workload.pool, message)
        elif pool.sharing.mode != "none":
            message = (
                f"pool {pool.name} shares its GPUs ({pool.sharing.mode}); scale whole GPUs on a pool without sharing"
            )
            yield Violation((*path, "pool"), workload.pool, message)
        elif workload.gpus_per_replica > whole_gpus_per_node(pool):
            message = f"pool {pool.name}'s nodes have {whole_gpus_per_node(pool)} GPUs; a replica must fit on one"
            yield Violation((*path, "gpus_per_replica"), workload.gpus_per_replica, message)
        if workload.image.endswith(":latest"):
            yield Violation((*path, "image"), workload.image, "pin a version tag or digest; 'latest' drifts")
        if workload.min_replicas > workload.max_replicas:
            yield Violation(
                (*path, "min_replicas"), workload.min_replicas, f"above max_replicas {workload.max_replicas}"
            )
        if workload.ingress_host and spec.ingress.controller == "none":
            message = "no ingress controller routes it: set ingress.controller or drop ingress_host"
            yield Violation((*path, "ingress_host"), workload.ingress_host, message)
    if workloads and not spec.monitoring.enabled:
        message = "GPU autoscaling reads DCGM metrics from the monitoring stack; enable monitoring"
        yield Violation(("autoscaling", "workloads"), "<list>", message)


def _hybrid_machine_rules(platform: str, aws: AwsSpec):
    """Hybrid machines are reached over SSH with the spec's key, from the spec's admin addresses only."""
    if platform != "hybrid":
        for field, value in (("ssh_public_key", aws.ssh_public_key), ("admin_cidrs", aws.admin_cidrs)):
            if value:
                yield Violation(
                    ("aws", field), "<set>", "only hybrid stacks provision machines to log in to; remove it"
                )
        return
    if aws.ssh_public_key is None:
        yield Violation(("aws", "ssh_public_key"), None, "hybrid machines need the public key Ansible logs in with")
    if not aws.admin_cidrs:
        yield Violation(("aws", "admin_cidrs"), [], "name the addresses allowed to SSH and to reach the API")
    for index, cidr in enumerate(aws.admin_cidrs):
        if cidr.prefixlen < 8:
            message = "opens SSH and the Kubernetes API to a large part of the internet; name your own addresses"
            yield Violation(("aws", "admin_cidrs", index), str(cidr), message)
