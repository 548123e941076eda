"""Hypothesis strategies for raw cluster specs: the dicts a stack file holds under ``gpucluster:cluster``.

- ``valid_specs()`` draws specs that ``ClusterSpec`` must accept, across the whole space: every platform
  and distribution, pools of catalog instance types (spot/mixed, EFA) or of hosts with catalog GPUs, every
  sharing mode (MIG profiles and layouts drawn from the catalog so that they fit the GPU), labels, taints,
  tenants and ingress. Every rule of ``gpucluster.spec`` is satisfied by construction, not by filtering.
- ``broken_specs(mutation)`` takes a valid spec (drawn, or a reference stack) and applies one ``Mutation``
  of ``MUTATIONS``, each of which breaks one rule and knows the field path the error must name.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from gpucluster.catalog import catalog
from gpucluster.spec import (
    GPU_TAINT_KEY,
    GPUCLUSTER_LABELS,
    KUBELET_LABEL_NAMESPACES,
    NODE_CIDR_MASK,
    SUPPORTED_KUBERNETES_VERSIONS,
    SYSTEM_NAMESPACES,
    address_key,
    quantity_value,
)

STACKS_DIR = Path(__file__).resolve().parents[1] / "stacks"

GPUS = catalog().gpus
INSTANCE_TYPES = catalog().instance_types
MIG_MODELS = sorted(name for name, gpu in GPUS.items() if gpu.mig)
NON_MIG_MODELS = sorted(name for name, gpu in GPUS.items() if not gpu.mig)
TYPES_BY_GPU = {model: sorted(n for n, t in INSTANCE_TYPES.items() if t.gpu == model) for model in GPUS}
EFA_TYPES_BY_GPU = {
    model: [n for n in names if INSTANCE_TYPES[n].efa_interfaces] for model, names in TYPES_BY_GPU.items()
}
NON_EFA_TYPES = sorted(n for n, t in INSTANCE_TYPES.items() if not t.efa_interfaces)

PLATFORMS = ("aws", "onprem", "hybrid")
HYBRID_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1pNq0JYyJxwzG0bdxlQzXW0tI6rQx1a3m9m4rN3Tq7 test@example"
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "us-gov-west-1")
CONTROL_PLANE_TYPES = ("m6i.xlarge", "m7i.2xlarge", "c6i.4xlarge")
FABRICS = {
    "aws": ("ethernet", "efa"),
    "onprem": ("ethernet", "infiniband"),
    "hybrid": ("ethernet", "infiniband", "efa"),
}
CNIS = {
    "eks": ("aws-vpc-cni", "cilium"),
    "kubeadm": ("calico", "cilium", "flannel"),
    "k3s": ("calico", "cilium", "flannel"),
}
POD_CIDRS = ("10.244.0.0/16", "10.42.0.0/16", "192.168.0.0/16", "100.64.0.0/12", "10.0.0.0/9")
SERVICE_CIDRS = ("10.96.0.0/12", "10.43.0.0/16", "172.20.0.0/16", "10.128.0.0/12")
VPC_CIDRS = ("10.0.0.0/16", "10.20.0.0/16", "172.31.0.0/16", "192.168.64.0/20", "10.50.0.0/24")
DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, DEFAULT_VPC_CIDR = "10.244.0.0/16", "10.96.0.0/12", "10.0.0.0/16"
TENANT_NAMES = ("team-a", "ml-platform", "research", "inference", "default")

# --- scalars --------------------------------------------------------------------------------------------

_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"


def dns_labels() -> st.SearchStrategy[str]:
    """DNS-1123 labels, up to 63 characters."""
    return st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


@st.composite
def dns_subdomains(draw) -> str:
    """DNS subdomains of up to 253 characters (label keys' prefixes): dot-joined DNS labels."""
    text = ".".join(draw(st.lists(dns_labels(), min_size=1, max_size=6)))
    return text[:253].rstrip("-.")


def _kubelet_may_set(key: str) -> bool:
    namespace = key.rpartition("/")[0]
    restricted = any(namespace == d or namespace.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))
    allowed = any(namespace == d or namespace.endswith("." + d) for d in KUBELET_LABEL_NAMESPACES)
    return allowed or not restricted


def label_keys() -> st.SearchStrategy[str]:
    """Kubernetes label/taint keys: an optional DNS-subdomain prefix of up to 253 characters and a name of up to
    63, without the ones gpucluster sets or the kubelet may not set on its node."""
    names = st.from_regex(_LABEL_NAME, fullmatch=True)
    return st.one_of(
        names,
        st.builds(lambda prefix, name: f"{prefix}/{name}", dns_subdomains(), names),
        st.sampled_from(
            [
                "workload",
                "example.com/team",
                "node.kubernetes.io/role",
                "nvidia.com/gpu.deploy.driver",
                "a" * 63,
                f"{'p' * 63}.{'q' * 63}.{'r' * 63}.{'s' * 61}/{'n' * 63}",  # prefix of exactly 253
            ]
        ),
    ).filter(lambda key: key not in GPUCLUSTER_LABELS and key != GPU_TAINT_KEY and _kubelet_may_set(key))


def label_values() -> st.SearchStrategy[str]:
    return st.from_regex(rf"({_LABEL_NAME})?", fullmatch=True)


def _versions_for(fabric: str) -> list[str]:
    """Kubernetes versions a fabric allows: InfiniBand's network operator needs 1.32 or newer."""
    if fabric != "infiniband":
        return list(SUPPORTED_KUBERNETES_VERSIONS)
    return [v for v in SUPPORTED_KUBERNETES_VERSIONS if int(v.split(".")[1]) >= 32]


def exact_versions() -> st.SearchStrategy[str]:
    return st.from_regex(r"v?[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[a-z0-9]{1,8})?", fullmatch=True)


def quantities(suffixes: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Kubernetes quantities such as '64', '1.5', '500m', '256Gi'."""
    fraction = st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,3}", fullmatch=True))
    return st.builds(
        lambda whole, frac, suffix: f"{whole}{frac}{suffix}",
        st.integers(0, 100_000),
        fraction,
        st.sampled_from(suffixes),
    )


def _usable(ip: IPv4Address | IPv6Address) -> bool:
    return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local or ip.is_reserved)


def addresses() -> st.SearchStrategy[str]:
    """Machine addresses: any usable IPv4/IPv6 address, ones in the usual pod, service and LAN ranges (which
    may collide with the cluster's networks), and DNS names in either case."""
    return st.one_of(
        st.ip_addresses(v=4).filter(_usable).map(str),
        st.ip_addresses(v=6).filter(_usable).map(str),
        st.builds(
            lambda network, host: str(IPv4Network(network)[host]),
            st.sampled_from([*POD_CIDRS, *SERVICE_CIDRS, "192.168.1.0/24", "10.0.0.0/24"]),
            st.integers(1, 254),
        ),
        st.from_regex(r"[A-Za-z][a-z0-9]{0,8}\.example\.com", fullmatch=True),
    )


def _maybe(draw, target: dict, key: str, strategy: st.SearchStrategy) -> None:
    """Set ``target[key]`` to a drawn value, or leave the key out (so its default applies)."""
    if draw(st.booleans()):
        target[key] = draw(strategy)


# --- sections -------------------------------------------------------------------------------------------


@st.composite
def aws_sections(draw) -> dict:
    region = draw(st.sampled_from(REGIONS))
    letters = draw(st.lists(st.sampled_from("abcdef"), min_size=2, max_size=3, unique=True))
    section = {"region": region, "availability_zones": [f"{region}{letter}" for letter in letters]}
    _maybe(draw, section, "vpc_cidr", st.sampled_from(VPC_CIDRS))
    _maybe(draw, section, "nat_gateways", st.sampled_from(["single", "per-az"]))
    _maybe(draw, section, "endpoint_access", st.sampled_from(["public", "public-and-private"]))
    _maybe(draw, section, "admins", st.just(["arn:aws:iam::123456789012:role/platform-admins"]))
    _maybe(draw, section, "owner", st.sampled_from(["ml-platform", "team@example.com"]))
    return section


@st.composite
def scalings(draw, most: int = 1000) -> dict:
    high = draw(st.integers(1, most))
    low = draw(st.integers(0, high))
    return {"min": low, "max": high, "desired": draw(st.integers(low, high))}


@st.composite
def taints(draw) -> dict:
    taint = {"key": draw(label_keys())}
    _maybe(draw, taint, "value", label_values())
    _maybe(draw, taint, "effect", st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"]))
    return taint


def _taint_identity(taint: dict) -> tuple[str, str]:
    """A node has one taint per key and effect."""
    return taint["key"], taint.get("effect", "NoSchedule")


@st.composite
def mig_layouts(draw, model: str) -> dict[str, int]:
    """A mixed-strategy layout that fits one GPU: within max_instances and the compute/memory slices."""
    mig = GPUS[model].mig
    layout: dict[str, int] = {}
    compute = memory = 0
    for name in draw(st.permutations(sorted(mig.profiles))):
        profile = mig.profiles[name]
        fits = min(
            profile.max_instances,
            (mig.compute_slices - compute) // profile.compute,
            (mig.memory_slices - memory) // profile.memory,
        )
        if fits < 1:
            continue
        count = draw(st.integers(0 if layout else 1, fits))  # every profile fits an empty GPU
        if count:
            layout[name] = count
            compute += profile.compute * count
            memory += profile.memory * count
    return layout


@st.composite
def sharings(draw, mode: str, model: str) -> dict:
    """A sharing section for ``mode`` in a pool of ``model`` (its only GPU model when mode is 'mig')."""
    if mode == "none":
        return draw(st.sampled_from([{}, {"mode": "none"}]))
    if mode == "time-slicing":
        sharing = {"mode": mode, "replicas": draw(st.integers(2, 16))}
        _maybe(draw, sharing, "rename_by_default", st.booleans())
        _maybe(draw, sharing, "fail_requests_greater_than_one", st.booleans())
        return sharing
    if draw(st.booleans()):
        return {"mode": "mig", "strategy": "single", "profile": draw(st.sampled_from(sorted(GPUS[model].mig.profiles)))}
    return {"mode": "mig", "strategy": "mixed", "layout": draw(mig_layouts(model))}


@st.composite
def _pool_common(draw, pool: dict) -> dict:
    """Labels, taints and disk size, which any pool may carry."""
    _maybe(draw, pool, "labels", st.dictionaries(label_keys(), label_values(), max_size=3))
    _maybe(draw, pool, "taints", st.lists(taints(), max_size=3, unique_by=_taint_identity))
    return pool


@st.composite
def instance_pools(draw, name: str, efa: bool, zones: list[str], most: int = 1000) -> dict:
    """A pool of catalog instance types, all with one GPU model (EFA-capable ones when ``efa``), of at most
    ``most`` nodes."""
    mode = draw(st.sampled_from(["none", "time-slicing", "mig"]))
    models = [m for m in GPUS if (EFA_TYPES_BY_GPU if efa else TYPES_BY_GPU)[m] and (mode != "mig" or GPUS[m].mig)]
    model = draw(st.sampled_from(sorted(models)))
    offered = EFA_TYPES_BY_GPU[model] if efa else TYPES_BY_GPU[model]
    types = draw(st.lists(st.sampled_from(offered), min_size=1, max_size=3, unique=True))
    pool: dict[str, Any] = {"name": name, "instance_types": types}
    if draw(st.booleans()):
        pool["gpu"] = {"model": model, "count": INSTANCE_TYPES[types[0]].gpus}
    scaling = draw(scalings(most))
    pool["scaling"] = scaling
    capacity = {"type": draw(st.sampled_from(["on-demand", "spot", "mixed"]))}
    _maybe(draw, capacity, "on_demand_base", st.integers(0, scaling["max"]))
    _maybe(draw, capacity, "on_demand_percentage", st.integers(0, 100))
    pool["capacity"] = capacity
    if efa:
        pool["efa"] = True
        pool["availability_zone"] = draw(st.sampled_from(zones))
    else:
        _maybe(draw, pool, "availability_zone", st.sampled_from(zones))
    pool["sharing"] = draw(sharings(mode, model))
    _maybe(draw, pool, "disk_gib", st.integers(20, 16384))  # root volumes of provisioned machines only
    return draw(_pool_common(pool))


@st.composite
def host_pools(draw, name: str, hosts: list[dict]) -> dict:
    """A pool of existing machines; each host's GPUs come from its own ``gpus`` or the pool's ``gpu``."""
    mode = draw(st.sampled_from(["none", "time-slicing", "mig"]))
    if mode == "mig":
        models = [draw(st.sampled_from(MIG_MODELS))]
    else:
        models = draw(st.lists(st.sampled_from(sorted(GPUS)), min_size=1, max_size=2, unique=True))
    gpu_sets = st.fixed_dictionaries({"model": st.sampled_from(models), "count": st.integers(1, 16)})
    pool: dict[str, Any] = {"name": name}
    pool_gpu = draw(st.one_of(st.none(), gpu_sets))
    if pool_gpu is not None:
        pool["gpu"] = pool_gpu
    pool["hosts"] = []
    for host in hosts:
        gpus = draw(st.lists(gpu_sets, min_size=0 if pool_gpu else 1, max_size=2))
        pool["hosts"].append({**host, "gpus": gpus} if gpus or draw(st.booleans()) else dict(host))
    _maybe(draw, pool, "capacity", st.fixed_dictionaries({"type": st.just("on-demand")}))
    pool["sharing"] = draw(sharings(mode, models[0]))
    return draw(_pool_common(pool))


@st.composite
def tenants(draw) -> list[dict]:
    """0-3 tenants with distinct namespaces, quotas, and at least one group or user each."""
    names = st.one_of(st.sampled_from(TENANT_NAMES), dns_labels()).filter(lambda n: n not in SYSTEM_NAMESPACES)
    count = draw(st.integers(0, 3))
    namespaces = draw(st.lists(names, min_size=count, max_size=count, unique=True))
    subjects = st.one_of(
        st.from_regex(r"[a-z][-a-z0-9.@_:]{0,20}", fullmatch=True).filter(lambda name: not name.startswith("system:")),
        st.sampled_from(["Data Scientists", "oidc:ml@example.com"]),
    )
    user_names = st.one_of(subjects, st.just("system:serviceaccount:ci:deployer"))
    result = []
    for namespace in namespaces:
        tenant: dict[str, Any] = {"name": namespace}
        if draw(st.booleans()):
            tenant = {"name": draw(dns_labels()), "namespace": namespace}
        tenant["gpus"] = draw(st.integers(0, 1024))
        tenant["cpu"] = draw(quantities(("", "m", "k")))
        tenant["memory"] = draw(quantities(("", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti")))
        _maybe(draw, tenant, "default_cpu", quantities(("", "m")))
        _maybe(draw, tenant, "default_memory", quantities(("Mi", "Gi")))
        for default, quota, implied in (("default_cpu", "cpu", "1"), ("default_memory", "memory", "4Gi")):
            if quantity_value(tenant.get(default, implied)) > quantity_value(tenant[quota]):
                tenant[default] = tenant[quota]  # a container default must fit in the quota
        groups, users = draw(st.lists(subjects, max_size=2)), draw(st.lists(user_names, max_size=2))
        if not groups and not users:
            groups = [draw(subjects)]
        if groups or draw(st.booleans()):
            tenant["groups"] = groups
        if users or draw(st.booleans()):
            tenant["users"] = users
        result.append(tenant)
    return result


@st.composite
def control_planes(draw, platform: str, hosts: list[dict]) -> dict:
    """1 or 3 existing hosts (3 behind an endpoint), or on hybrid 1/3/5 provisioned instances."""
    if platform == "hybrid" and not hosts:
        control_plane = {"instance_type": draw(st.sampled_from(CONTROL_PLANE_TYPES))}
        count = draw(st.sampled_from([1, 3, 5]))
        if count > 1 or draw(st.booleans()):
            control_plane["count"] = count
    else:
        control_plane, count = {"hosts": hosts}, len(hosts)
    if count > 1 or draw(st.booleans()):
        control_plane["endpoint"] = draw(st.sampled_from(["api.example.com:6443", "10.0.0.10:6443"]))
    return control_plane


# --- whole specs ----------------------------------------------------------------------------------------


@st.composite
def valid_specs(draw, platforms: tuple[str, ...] = PLATFORMS) -> dict:
    """A raw spec on one of ``platforms`` that satisfies every rule of ``gpucluster.spec``."""
    platform = draw(st.sampled_from(platforms))
    distribution = "eks" if platform == "aws" else draw(st.sampled_from(["kubeadm", "k3s"]))
    fabric = draw(st.sampled_from(FABRICS[platform]))
    raw: dict[str, Any] = {"name": draw(dns_labels()), "platform": platform}
    zones: list[str] = []
    if platform != "onprem":
        raw["aws"] = draw(aws_sections())
        zones = raw["aws"]["availability_zones"]
    if platform == "hybrid":  # machines Ansible logs in to, from the admins' addresses only
        raw["aws"]["ssh_public_key"] = HYBRID_SSH_KEY
        raw["aws"]["admin_cidrs"] = [draw(st.sampled_from(["198.51.100.0/24", "203.0.113.7/32"]))]
        raw["aws"]["machine_image"] = draw(st.sampled_from(["ubuntu-24.04", "debian-12"]))

    # Pool kinds first: fabric efa needs an EFA pool, which must be made of instance types.
    pool_count = draw(st.integers(1, 3))
    if platform == "hybrid":
        kinds = [draw(st.sampled_from(["instances", "hosts"])) for _ in range(pool_count)]
    else:
        kinds = [{"aws": "instances", "onprem": "hosts"}[platform]] * pool_count
    if fabric == "efa":
        kinds[0] = "instances"
    host_counts = [draw(st.integers(1, 3)) if kind == "hosts" else 0 for kind in kinds]
    control_plane_hosts = 0
    if distribution != "eks" and (platform == "onprem" or draw(st.booleans())):
        control_plane_hosts = draw(st.sampled_from([1, 3]))
    names = iter(
        draw(
            st.lists(
                dns_labels(),
                min_size=control_plane_hosts + sum(host_counts),
                max_size=control_plane_hosts + sum(host_counts),
                unique=True,
            )
        )
    )

    # Networks before machines: pod and service ranges apart from each other and from the VPC, hosts outside
    # both, and the pod range with a /24 for every node it can have.
    vpc = IPv4Network(raw["aws"].get("vpc_cidr", DEFAULT_VPC_CIDR)) if "aws" in raw else None
    pod, service = DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR
    explicit = draw(st.booleans())
    if explicit:
        pods = [c for c in POD_CIDRS if platform != "hybrid" or not vpc or not _overlap(c, str(vpc))]
        pod = draw(st.sampled_from(pods))
        services = [c for c in SERVICE_CIDRS if not _overlap(c, pod) and not (vpc and _overlap(c, str(vpc)))]
        service = draw(st.sampled_from(services))
    networks = [IPv4Network(pod), IPv4Network(service)]
    outside = addresses().filter(lambda address: not _inside(address, networks))
    count = control_plane_hosts + sum(host_counts)
    unique = draw(st.lists(outside, min_size=count, max_size=count, unique_by=address_key))
    cp_hosts = [{"name": next(names), "address": unique.pop()} for _ in range(control_plane_hosts)]
    pool_hosts = [[{"name": next(names), "address": unique.pop()} for _ in range(n)] for n in host_counts]
    room = 2 ** (NODE_CIDR_MASK - IPv4Network(pod).prefixlen) - count - 5  # 5: the most provisioned servers
    per_instance_pool = max(1, room // max(1, kinds.count("instances"))) if distribution != "eks" else 1000
    if cp_hosts and any(host_counts) and draw(st.booleans()):
        first = next(i for i, n in enumerate(host_counts) if n)
        pool_hosts[first][0] = dict(cp_hosts[0])  # the control-plane machine also runs workloads

    kubernetes: dict[str, Any] = {
        "distribution": distribution,
        "version": draw(st.sampled_from(_versions_for(fabric))),
    }
    if explicit:
        kubernetes.update(pod_cidr=pod, service_cidr=service)
    if distribution != "eks":
        kubernetes["control_plane"] = draw(control_planes(platform, cp_hosts))
    raw["kubernetes"] = kubernetes

    network: dict[str, Any] = {"cni": draw(st.sampled_from(CNIS[distribution]))}
    if fabric != "ethernet" or draw(st.booleans()):
        network["fabric"] = fabric
    _maybe(draw, network, "socket_ifname", st.sampled_from(["eth0", "ens5", "ib0", "eth0,eth1"]))
    if fabric == "infiniband":
        _maybe(
            draw,
            network,
            "ib_hcas",
            st.lists(st.sampled_from(["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3:1"]), max_size=4, unique=True),
        )
        _maybe(draw, network, "rdma_resource", st.sampled_from(["rdma/ib", "rdma/shared_hca"]))
    raw["network"] = network

    runtimes = ["containerd"] if distribution == "eks" else ["containerd", "cri-o"]
    _maybe(draw, raw, "runtime", st.fixed_dictionaries({"name": st.sampled_from(runtimes), "cdi": st.booleans()}))
    _maybe(
        draw,
        raw,
        "gpu_stack",
        st.fixed_dictionaries(
            {"driver": st.sampled_from(["host", "operator"]), "toolkit": st.sampled_from(["host", "operator"])},
            optional={"driver_version": exact_versions()},
        ),
    )
    _maybe(
        draw,
        raw,
        "components",
        st.fixed_dictionaries(
            {},
            optional={
                "gpu_operator": exact_versions(),
                "device_plugin": exact_versions(),
                "dcgm_exporter": exact_versions(),
            },
        ),
    )

    pool_names = draw(
        st.lists(dns_labels().filter(lambda n: n != "default"), min_size=pool_count, max_size=pool_count, unique=True)
    )
    raw["node_pools"] = []
    for index, (name, kind) in enumerate(zip(pool_names, kinds, strict=False)):
        if kind == "instances":
            efa = fabric == "efa" and (index == 0 or draw(st.booleans()))
            raw["node_pools"].append(draw(instance_pools(name, efa, zones, min(per_instance_pool, 1000))))
        else:
            raw["node_pools"].append(draw(host_pools(name, pool_hosts[index])))

    if platform == "aws":
        # GPU pools are tainted on EKS: system pods need the system pool, or a pool left untainted.
        if draw(st.booleans()):
            cpu_types = st.lists(st.sampled_from(sorted(catalog().cpu_instance_types)), min_size=1, max_size=2)
            raw["system_pool"] = {"instance_types": draw(cpu_types)}
            if draw(st.booleans()):
                high = draw(st.integers(1, 20))
                low = draw(st.integers(1, high))
                raw["system_pool"]["scaling"] = {"min": low, "max": high, "desired": draw(st.integers(low, high))}
        else:
            raw["node_pools"][0]["gpu_taint"] = False
    if "system_pool" not in raw:
        # System pods need the pool left open to them; only PreferNoSchedule taints keep it so.
        first = raw["node_pools"][0]
        for taint in first.get("taints", []):
            taint["effect"] = "PreferNoSchedule"
        if "taints" in first:  # one taint per key and effect
            first["taints"] = list({taint["key"]: taint for taint in first["taints"]}.values())
    raw["tenants"] = draw(tenants())
    controller = draw(st.sampled_from(["nginx", "none"]))
    balancers = ["alb", "nlb", "service"] if platform == "aws" and controller != "none" else ["service"]
    raw["ingress"] = {"controller": controller, "load_balancer": draw(st.sampled_from(balancers))}
    if raw["ingress"]["load_balancer"] == "alb":
        partition = "aws-us-gov" if "-gov-" in raw["aws"]["region"] else "aws"
        certificate = f"arn:{partition}:acm:{raw['aws']['region']}:123456789012:certificate/{draw(st.uuids())}"
        raw["ingress"]["certificate_arn"] = certificate
    _maybe(
        draw,
        raw,
        "monitoring",
        st.fixed_dictionaries(
            {"enabled": st.booleans()},
            optional={
                "alerts": st.fixed_dictionaries(
                    {},
                    optional={
                        "gpu_temperature_celsius": st.integers(40, 110),
                        "fb_memory_used_percent": st.integers(50, 100),
                        "low_utilization_percent": st.integers(1, 100),
                        "low_utilization_for": st.sampled_from(["5m", "15m", "1h30m"]),
                    },
                ),
                "retention": st.sampled_from(["7d", "15d", "90d"]),
            },
        ),
    )
    _maybe(
        draw,
        raw,
        "autoscaling",
        st.fixed_dictionaries(
            {"node_autoscaler": st.sampled_from(_node_autoscalers(platform, "system_pool" in raw))},
            optional={"gpu_utilization_target": st.integers(1, 100)},
        ),
    )
    _maybe(
        draw,
        raw,
        "backups",
        st.fixed_dictionaries(
            {},
            optional={
                "etcd": st.fixed_dictionaries(
                    {"enabled": st.just(False)},
                    optional={"schedule": st.sampled_from(["30 3 * * 0", "@daily", "*/15 * * * *"])},
                )
            },
        ),
    )
    return raw


def _node_autoscalers(platform: str, system_pool: bool) -> list[str]:
    """Node autoscalers resize EKS pools only; Karpenter runs on the system pool."""
    if platform != "aws":
        return ["none"]
    return ["none", "cluster-autoscaler", "karpenter"] if system_pool else ["none", "cluster-autoscaler"]


def _inside(address: str, networks: list[IPv4Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False  # a DNS name
    return any(ip in network for network in networks)


def _overlap(a: str, b: str) -> bool:
    return IPv4Network(a).overlaps(IPv4Network(b))


def reference_specs(platforms: tuple[str, ...] = PLATFORMS) -> st.SearchStrategy[dict]:
    """The ``gpucluster:cluster`` dict of each reference stack in ``stacks/`` on one of ``platforms``."""
    raws = [
        yaml.safe_load(path.read_text(encoding="utf-8"))["config"]["gpucluster:cluster"]
        for path in sorted(STACKS_DIR.glob("Pulumi.*.yaml"))
    ]
    return st.sampled_from([raw for raw in raws if raw["platform"] in platforms])


# --- mutations: one broken rule each, with the path its error must name ----------------------------------

Draw = Callable[[st.SearchStrategy], Any]
WITH_AWS = ("aws", "hybrid")


@dataclass(frozen=True)
class Mutation:
    """One way to break a valid spec. ``apply(raw, draw)`` breaks ``raw`` in place and returns the path of
    the problem as ``gpucluster.stackfile.format_path`` writes it, without the ``gpucluster:cluster.`` prefix."""

    name: str
    apply: Callable[[dict, Draw], str]
    platforms: tuple[str, ...] = PLATFORMS  # the platforms of the specs it applies to

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class BrokenSpec:
    raw: dict
    path: str  # where the problem must be reported


def _pool(raw: dict, draw: Draw) -> tuple[int, dict]:
    index = draw(st.integers(0, len(raw["node_pools"]) - 1))
    return index, raw["node_pools"][index]


def _provision(pool: dict, instance_types: list[str], *, efa: bool = False) -> None:
    """Turn ``pool`` into a plain pool of ``instance_types`` (its GPU, EFA and sharing settings dropped)."""
    for key in ("hosts", "gpu", "efa", "availability_zone", "sharing"):
        pool.pop(key, None)
    pool["instance_types"] = instance_types
    if efa:
        pool["efa"] = True


def _give_gpu(pool: dict, model: str, draw: Draw) -> None:
    """Make ``model`` the pool's only GPU model, keeping the pool's kind (instance types or hosts)."""
    if "instance_types" in pool:
        offered = EFA_TYPES_BY_GPU[model] if pool.get("efa") else TYPES_BY_GPU[model]
        efa, zone = pool.get("efa"), pool.get("availability_zone")
        _provision(pool, [draw(st.sampled_from(offered))], efa=bool(efa))
        if zone:
            pool["availability_zone"] = zone
    else:
        pool["gpu"] = {"model": model, "count": 8}
        for host in pool["hosts"]:
            host.pop("gpus", None)


def _gpu_choices(pool: dict, models: list[str]) -> list[str]:
    """The models of ``models`` that ``_give_gpu`` can put into ``pool``."""
    if "instance_types" not in pool:
        return models
    return [m for m in models if (EFA_TYPES_BY_GPU if pool.get("efa") else TYPES_BY_GPU)[m]]


def _time_slicing_replicas_one(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    pool["sharing"] = {"mode": "time-slicing", "replicas": draw(st.sampled_from([1, 0, -3]))}
    return f"node_pools[{index}].sharing.replicas"


_MAPPINGS = {"labels", "layout"}  # free-form mappings, where any key is allowed


def _models(node: dict, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every spec model in a raw spec, as (path, dict): the spec itself, its sections, list items."""
    yield path, node
    for key, value in node.items():
        if key in _MAPPINGS:
            continue
        child = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            yield from _models(value, child)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    yield from _models(item, f"{child}[{index}]")


def _unknown_key(raw: dict, draw: Draw) -> str:
    path, node = draw(st.sampled_from(list(_models(raw))))
    key = draw(st.sampled_from(["replica", "nodepools", "colour", "gpu_count", "extra"]))
    node[key] = draw(st.sampled_from([1, "x", True, None, []]))
    return f"{path}.{key}" if path else key


def _mig_on_non_mig_gpu(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    _give_gpu(pool, draw(st.sampled_from(_gpu_choices(pool, NON_MIG_MODELS))), draw)
    profile = draw(st.sampled_from(sorted(GPUS["A100-80GB"].mig.profiles)))
    pool["sharing"] = {"mode": "mig", "strategy": "single", "profile": profile}
    return f"node_pools[{index}].sharing.mode"


def _mig_profile_of_another_gpu(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    model = draw(st.sampled_from(_gpu_choices(pool, MIG_MODELS)))
    _give_gpu(pool, model, draw)
    foreign = sorted({p for m in MIG_MODELS for p in GPUS[m].mig.profiles} - set(GPUS[model].mig.profiles))
    profile = draw(st.sampled_from(foreign))
    if draw(st.booleans()):
        pool["sharing"] = {"mode": "mig", "strategy": "single", "profile": profile}
        return f"node_pools[{index}].sharing.profile"
    pool["sharing"] = {"mode": "mig", "strategy": "mixed", "layout": {profile: 1}}
    return f"node_pools[{index}].sharing.layout"


def _efa_pool(raw: dict, draw: Draw, instance_type: str) -> tuple[int, dict]:
    index, pool = _pool(raw, draw)
    _provision(pool, [instance_type], efa=True)
    raw["network"]["fabric"] = "efa"
    return index, pool


def _efa_on_type_without_efa(raw: dict, draw: Draw) -> str:
    index, pool = _efa_pool(raw, draw, draw(st.sampled_from(NON_EFA_TYPES)))
    pool["availability_zone"] = raw["aws"]["availability_zones"][0]
    return f"node_pools[{index}].instance_types[0]"


def _efa_without_zone(raw: dict, draw: Draw) -> str:
    efa_types = sorted(n for names in EFA_TYPES_BY_GPU.values() for n in names)
    index, _ = _efa_pool(raw, draw, draw(st.sampled_from(efa_types)))
    return f"node_pools[{index}].availability_zone"


def _distribution(value: str) -> Callable[[dict, Draw], str]:
    def mutate(raw: dict, draw: Draw) -> str:
        raw["kubernetes"]["distribution"] = value
        return "kubernetes.distribution"

    return mutate


def _spot_with_two_gpu_models(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    first, second = draw(
        st.lists(st.sampled_from(sorted(m for m in GPUS if TYPES_BY_GPU[m])), min_size=2, max_size=2, unique=True)
    )
    _provision(pool, [draw(st.sampled_from(TYPES_BY_GPU[first])), draw(st.sampled_from(TYPES_BY_GPU[second]))])
    pool["capacity"] = {"type": draw(st.sampled_from(["spot", "mixed"]))}
    return f"node_pools[{index}].instance_types"


def _on_demand_base_above_max(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    maximum = pool.get("scaling", {}).get("max", 1)
    pool.setdefault("capacity", {})["on_demand_base"] = maximum + draw(st.integers(1, 10))
    return f"node_pools[{index}].capacity.on_demand_base"


def _duplicate_pool_name(raw: dict, draw: Draw) -> str:
    pools = raw["node_pools"]
    if len(pools) > 1:
        first, second = draw(st.lists(st.integers(0, len(pools) - 1), min_size=2, max_size=2, unique=True))
        pools[second]["name"] = pools[first]["name"]
    else:
        twin = copy.deepcopy(pools[0])
        for host in twin.get("hosts", []):
            host["name"] = host["name"][:58] + "-twin"
        pools.append(twin)
    return "node_pools"


def _tenant(raw: dict, draw: Draw) -> tuple[int, dict]:
    """A tenant of ``raw`` to break (one is added when there is none)."""
    tenants = raw.setdefault("tenants", [])
    if not tenants:
        tenants.append({"name": "team-a", "gpus": 1, "cpu": "8", "memory": "32Gi", "groups": ["team-a"]})
    index = draw(st.integers(0, len(tenants) - 1))
    return index, tenants[index]


def _duplicate_tenant_namespace(raw: dict, draw: Draw) -> str:
    _, tenant = _tenant(raw, draw)
    namespace = tenant.get("namespace") or tenant["name"]
    raw["tenants"].append({**tenant, "name": tenant["name"][:58] + "-twin", "namespace": namespace})
    return "tenants"


def _unknown_instance_type(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    if "instance_types" not in pool:
        _provision(pool, [draw(st.sampled_from(TYPES_BY_GPU["T4"]))])
    position = draw(st.integers(0, len(pool["instance_types"]) - 1))
    pool["instance_types"][position] = draw(st.sampled_from(["g9.huge", "m6i.xlarge", "p5.96xlarge", "G4DN.XLARGE"]))
    return f"node_pools[{index}].instance_types[{position}]"


def _unknown_gpu_model(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    unknown = {"model": draw(st.sampled_from(["RTX-4090", "A31", "H100", "t4", "B200"])), "count": 1}
    if pool.get("hosts") and draw(st.booleans()):
        host = draw(st.integers(0, len(pool["hosts"]) - 1))
        pool["hosts"][host]["gpus"] = [unknown]
        return f"node_pools[{index}].hosts[{host}].gpus[0].model"
    pool["gpu"] = unknown
    return f"node_pools[{index}].gpu.model"


def _floating_component_version(raw: dict, draw: Draw) -> str:
    section, key = draw(
        st.sampled_from(
            [
                ("components", "gpu_operator"),
                ("components", "device_plugin"),
                ("components", "dcgm_exporter"),
                ("gpu_stack", "driver_version"),
            ]
        )
    )
    raw.setdefault(section, {})[key] = draw(st.sampled_from(["latest", "stable", ">=0.17", "v0.17", "0.17.x"]))
    return f"{section}.{key}"


def _unsupported_kubernetes_version(raw: dict, draw: Draw) -> str:
    raw["kubernetes"]["version"] = draw(st.sampled_from(["1.20", "1.27", "1.38", "1.33.0", "latest", 1.33]))
    return "kubernetes.version"


def _pool_named_default(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    pool["name"] = "default"
    return f"node_pools[{index}].name"


def _even_control_plane(raw: dict, draw: Draw) -> str:
    control_plane = raw["kubernetes"]["control_plane"]
    if control_plane.get("instance_type"):
        control_plane["count"] = draw(st.sampled_from([2, 4, 6]))
    else:
        control_plane["hosts"] = [{"name": f"cp-even-{n}", "address": f"10.9.9.{n}"} for n in (1, 2)]
    control_plane["endpoint"] = "api.example.com:6443"
    return "kubernetes.control_plane"


def _tenant_without_subjects(raw: dict, draw: Draw) -> str:
    index, tenant = _tenant(raw, draw)
    for key in ("groups", "users"):
        if draw(st.booleans()):
            tenant[key] = []
        else:
            tenant.pop(key, None)
    return f"tenants[{index}]"


def _overlapping_cidrs(raw: dict, draw: Draw) -> str:
    pod, service = draw(
        st.sampled_from(
            [
                ("10.244.0.0/16", "10.244.128.0/17"),
                ("10.0.0.0/8", "10.96.0.0/12"),
                ("10.96.0.0/12", "10.96.0.0/12"),
                ("10.96.0.0/16", "10.96.0.0/12"),
            ]
        )
    )
    raw["kubernetes"].update(pod_cidr=pod, service_cidr=service)
    return "kubernetes.service_cidr"


def _label_gpucluster_sets(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    key = draw(st.sampled_from(sorted(GPUCLUSTER_LABELS)))
    pool.setdefault("labels", {})[key] = "mine"
    return f"node_pools[{index}].labels.{key}"


def _label_the_kubelet_may_not_set(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    key = draw(st.sampled_from(["node-role.kubernetes.io/worker", "kubernetes.io/role", "team.k8s.io/x"]))
    pool.setdefault("labels", {})[key] = ""
    return f"node_pools[{index}].labels.{key}"


def _label_key_too_long(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    key = draw(
        st.sampled_from(["n" * 64, "example.com/" + "n" * 64, f"{'p' * 63}.{'q' * 63}.{'r' * 63}.{'s' * 62}/name"])
    )
    pool.setdefault("labels", {})[key] = "x"
    return f"node_pools[{index}].labels.{key}"


def _gpu_taint_in_pool(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    taints = pool.setdefault("taints", [])
    taints.append({"key": GPU_TAINT_KEY, "effect": draw(st.sampled_from(["NoSchedule", "NoExecute"]))})
    return f"node_pools[{index}].taints[{len(taints) - 1}].key"


def _duplicate_taint(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    taints = pool.setdefault("taints", [])
    taint = copy.deepcopy(taints[0]) if taints else {"key": "dedicated", "effect": "NoSchedule"}
    if not taints:
        taints.append(copy.deepcopy(taint))
    taints.append({**taint, "value": "other"})
    return f"node_pools[{index}].taints[{len(taints) - 1}]"


def _system_group_subject(raw: dict, draw: Draw) -> str:
    index, tenant = _tenant(raw, draw)
    groups = tenant.setdefault("groups", [])
    groups.append(draw(st.sampled_from(["system:authenticated", "system:unauthenticated", "system:masters"])))
    return f"tenants[{index}].groups[{len(groups) - 1}]"


def _system_user_subject(raw: dict, draw: Draw) -> str:
    index, tenant = _tenant(raw, draw)
    users = tenant.setdefault("users", [])
    users.append(draw(st.sampled_from(["system:anonymous", "system:kube-scheduler", "system:node:gpu1", ""])))
    return f"tenants[{index}].users[{len(users) - 1}]"


def _tenant_in_reserved_namespace(raw: dict, draw: Draw) -> str:
    index, tenant = _tenant(raw, draw)
    tenant["namespace"] = draw(st.sampled_from(SYSTEM_NAMESPACES))
    for position, other in enumerate(raw["tenants"]):
        if position != index:  # keep the other tenants clear of that namespace
            other.pop("namespace", None)
            other["name"] = f"{other['name'][:58]}-t{position}"
    return f"tenants[{index}].namespace"


def _container_default_above_quota(raw: dict, draw: Draw) -> str:
    index, tenant = _tenant(raw, draw)
    if draw(st.booleans()):
        tenant.update(cpu="2", default_cpu=draw(st.sampled_from(["2001m", "3", "2.5"])))
        return f"tenants[{index}].default_cpu"
    tenant.update(memory="8Gi", default_memory=draw(st.sampled_from(["9Gi", "8590M", "8193Mi"])))
    return f"tenants[{index}].default_memory"


def _unknown_mig_profiles(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    _give_gpu(pool, draw(st.sampled_from(_gpu_choices(pool, MIG_MODELS))), draw)
    pool["sharing"] = {"mode": "mig", "strategy": "mixed", "layout": {"9g.1gb": 1, "8g.3gb": 2}}
    return f"node_pools[{index}].sharing.layout"


def _duplicate_instance_type(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    if "instance_types" not in pool:
        _provision(pool, [draw(st.sampled_from(TYPES_BY_GPU["T4"]))])
    pool["instance_types"].append(draw(st.sampled_from(pool["instance_types"])))
    return f"node_pools[{index}].instance_types[{len(pool['instance_types']) - 1}]"


def _machine_field_on_hosts_pool(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    field, value = draw(
        st.sampled_from(
            [
                ("availability_zone", "us-east-1a"),
                ("disk_gib", 500),
                ("scaling", {"min": 1, "max": 4, "desired": 2}),
            ]
        )
    )
    pool[field] = value
    return f"node_pools[{index}].{field}"


def _ib_hcas_without_infiniband(raw: dict, draw: Draw) -> str:
    network = raw["network"]
    if network.get("fabric") == "infiniband":
        network["fabric"] = "ethernet"
    network["ib_hcas"] = ["mlx5_0"]
    return "network.ib_hcas"


def _load_balancer_without_controller(raw: dict, draw: Draw) -> str:
    raw["ingress"] = {"controller": "none", "load_balancer": draw(st.sampled_from(["alb", "nlb"]))}
    return "ingress.load_balancer"


def _node_autoscaling_off_aws(raw: dict, draw: Draw) -> str:
    raw.setdefault("autoscaling", {})["node_autoscaler"] = draw(st.sampled_from(["cluster-autoscaler", "karpenter"]))
    return "autoscaling.node_autoscaler"


def _machine(raw: dict, draw: Draw) -> tuple[str, dict]:
    """A host of the control plane or of a pool, with its path."""
    control = raw["kubernetes"].get("control_plane", {}).get("hosts", [])
    hosts = [(f"kubernetes.control_plane.hosts[{i}]", h) for i, h in enumerate(control)]
    hosts += [
        (f"node_pools[{p}].hosts[{i}]", h)
        for p, pool in enumerate(raw["node_pools"])
        for i, h in enumerate(pool.get("hosts", []))
    ]
    return draw(st.sampled_from(hosts))


def _unusable_host_address(raw: dict, draw: Draw) -> str:
    path, host = _machine(raw, draw)
    host["address"] = draw(st.sampled_from(["127.0.0.1", "0.0.0.0", "224.0.0.1", "169.254.1.1", "::1", "localhost"]))
    return f"{path}.address"


def _host_address_twice(raw: dict, draw: Draw) -> str:
    index, pool = _pool(raw, draw)
    first = raw["kubernetes"]["control_plane"]["hosts"][0]  # the first machine listed
    pool["hosts"].append({**copy.deepcopy(pool["hosts"][0]), "name": "twin-machine", "address": first["address"]})
    return f"node_pools[{index}].hosts[{len(pool['hosts']) - 1}].address"


def _host_inside_cluster_network(raw: dict, draw: Draw) -> str:
    path, host = _machine(raw, draw)
    field = draw(st.sampled_from(["pod_cidr", "service_cidr"]))
    default = {"pod_cidr": DEFAULT_POD_CIDR, "service_cidr": DEFAULT_SERVICE_CIDR}[field]
    network = IPv4Network(raw["kubernetes"].get(field, default))
    host["address"] = str(network[draw(st.integers(1, 200))])
    return f"{path}.address"


def _pod_cidr_too_small(raw: dict, draw: Draw) -> str:
    raw["kubernetes"].update(
        pod_cidr=draw(st.sampled_from(["10.244.0.0/25", "10.244.0.0/30"])), service_cidr="10.96.0.0/12"
    )
    return "kubernetes.pod_cidr"


def _service_cidr_too_large(raw: dict, draw: Draw) -> str:
    raw["kubernetes"]["service_cidr"] = draw(st.sampled_from(["10.96.0.0/11", "172.0.0.0/8"]))
    return "kubernetes.service_cidr"


def _vpc_cidr_out_of_range(raw: dict, draw: Draw) -> str:
    raw["aws"]["vpc_cidr"] = draw(st.sampled_from(["10.0.0.0/8", "10.20.0.0/15", "10.20.0.0/29", "10.20.0.0/25"]))
    return "aws.vpc_cidr"


def _vpc_overlaps_services(raw: dict, draw: Draw) -> str:
    services = IPv4Network(raw["kubernetes"].get("service_cidr", DEFAULT_SERVICE_CIDR))
    raw["aws"]["vpc_cidr"] = str(next(services.subnets(new_prefix=max(16, services.prefixlen))))
    return "aws.vpc_cidr"


def _zone_outside_region(raw: dict, draw: Draw) -> str:
    zones, region = raw["aws"]["availability_zones"], raw["aws"]["region"]
    index = draw(st.integers(0, len(zones) - 1))
    zones[index] = draw(st.sampled_from([f"{region}0a", f"{region}-lax-1a", f"{region}", f"{region}A", "mars-1a"]))
    return f"aws.availability_zones[{index}]"


def _zone_twice(raw: dict, draw: Draw) -> str:
    zones = raw["aws"]["availability_zones"]
    zones.append(draw(st.sampled_from(zones)))
    return f"aws.availability_zones[{len(zones) - 1}]"


def _bad_endpoint(raw: dict, draw: Draw) -> str:
    raw["kubernetes"]["control_plane"]["endpoint"] = draw(
        st.sampled_from(
            ["lb.example.com", "lb.example.com:0", "lb.example.com:70000", "fd00::1:6443", "127.0.0.1:6443"]
        )
    )
    return "kubernetes.control_plane.endpoint"


# Required fields of each model, by the field name that leads to it ("" is the spec itself).
_REQUIRED = {
    "": ("name", "platform", "kubernetes", "network", "node_pools"),
    "kubernetes": ("distribution", "version"),
    "network": ("cni",),
    "aws": ("region", "availability_zones"),
    "node_pools": ("name",),
    "hosts": ("name", "address"),
    "gpu": ("model", "count"),
    "gpus": ("model", "count"),
    "taints": ("key",),
    "tenants": ("name", "gpus", "cpu", "memory"),
}


def _required_field_deleted(raw: dict, draw: Draw) -> str:
    candidates = [
        (path, node, key)
        for path, node in _models(raw)
        for key in _REQUIRED.get(re.sub(r"\[\d+\]$", "", path).rpartition(".")[2], ())
        if key in node
    ]
    path, node, key = draw(st.sampled_from(candidates))
    del node[key]
    return f"{path}.{key}" if path else key


MUTATIONS = (
    Mutation("time-slicing replicas below 2", _time_slicing_replicas_one),
    Mutation("unknown key in a model", _unknown_key),
    Mutation("MIG on a GPU without MIG", _mig_on_non_mig_gpu),
    Mutation("MIG profile of another GPU", _mig_profile_of_another_gpu),
    Mutation("EFA on an instance type without EFA", _efa_on_type_without_efa, WITH_AWS),
    Mutation("EFA pool without availability zone", _efa_without_zone, WITH_AWS),
    Mutation("eks off platform aws", _distribution("eks"), ("onprem", "hybrid")),
    Mutation("k3s on platform aws", _distribution("k3s"), ("aws",)),
    Mutation("kubeadm on platform aws", _distribution("kubeadm"), ("aws",)),
    Mutation("spot pool with two GPU models", _spot_with_two_gpu_models, WITH_AWS),
    Mutation("on_demand_base above scaling.max", _on_demand_base_above_max),
    Mutation("duplicate pool name", _duplicate_pool_name),
    Mutation("duplicate tenant namespace", _duplicate_tenant_namespace),
    Mutation("unknown instance type", _unknown_instance_type, WITH_AWS),
    Mutation("unknown GPU model", _unknown_gpu_model),
    Mutation("floating component version", _floating_component_version),
    Mutation("unsupported Kubernetes version", _unsupported_kubernetes_version),
    Mutation("pool named 'default'", _pool_named_default),
    Mutation("even control-plane count", _even_control_plane, ("onprem", "hybrid")),
    Mutation("tenant without groups or users", _tenant_without_subjects),
    Mutation("pod_cidr overlaps service_cidr", _overlapping_cidrs),
    Mutation("required field deleted", _required_field_deleted),
    Mutation("unusable host address", _unusable_host_address, ("onprem",)),
    Mutation("host address twice", _host_address_twice, ("onprem",)),
    Mutation("host inside the pod or service network", _host_inside_cluster_network, ("onprem",)),
    Mutation("pod_cidr too small for the nodes", _pod_cidr_too_small, ("onprem", "hybrid")),
    Mutation("service_cidr too large", _service_cidr_too_large),
    Mutation("vpc_cidr out of range", _vpc_cidr_out_of_range, WITH_AWS),
    Mutation("vpc_cidr overlaps service_cidr", _vpc_overlaps_services, WITH_AWS),
    Mutation("zone outside the region", _zone_outside_region, WITH_AWS),
    Mutation("zone listed twice", _zone_twice, WITH_AWS),
    Mutation("bad control-plane endpoint", _bad_endpoint, ("onprem", "hybrid")),
    Mutation("label gpucluster sets", _label_gpucluster_sets),
    Mutation("label the kubelet may not set", _label_the_kubelet_may_not_set),
    Mutation("label key too long", _label_key_too_long),
    Mutation("nvidia.com/gpu taint in a pool", _gpu_taint_in_pool),
    Mutation("taint key and effect twice", _duplicate_taint),
    Mutation("system: group bound", _system_group_subject),
    Mutation("system: or empty user bound", _system_user_subject),
    Mutation("tenant in a reserved namespace", _tenant_in_reserved_namespace),
    Mutation("container default above quota", _container_default_above_quota),
    Mutation("several unknown MIG profiles", _unknown_mig_profiles),
    Mutation("instance type listed twice", _duplicate_instance_type, WITH_AWS),
    Mutation("machine field on a pool of hosts", _machine_field_on_hosts_pool, ("onprem",)),
    Mutation("ib_hcas without InfiniBand", _ib_hcas_without_infiniband),
    Mutation("load balancer without controller", _load_balancer_without_controller, ("aws",)),
    Mutation("node autoscaling off AWS", _node_autoscaling_off_aws, ("onprem", "hybrid")),
)


@st.composite
def broken_specs(draw, mutation: Mutation) -> BrokenSpec:
    """A valid spec (drawn, or a reference stack) broken by ``mutation``."""
    platforms = mutation.platforms
    raw = copy.deepcopy(draw(st.one_of(valid_specs(platforms), reference_specs(platforms))))
    return BrokenSpec(raw, mutation.apply(raw, draw))
