"""Behaviour of the cluster spec: the reference stacks load, every rule refuses what it should (and only
that), and every way a stack can be wrong ends in a ``SpecError`` that names the field, the value found
and what is allowed.

Each rule case starts from a reference stack (``load_raw``), optionally adjusts it into a valid variant,
checks that this variant passes, then applies one breaking change and checks the exact field path of the
problem and that its message tells the user what is allowed or how to fix it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gpucluster.spec import ClusterSpec, Violation
from gpucluster.stackfile import (
    SpecError,
    format_path,
    list_stacks,
    load_stack,
    parse_spec,
    spec_warnings,
    stack_name,
)

STACKS_DIR = Path(__file__).resolve().parents[1] / "stacks"
STACK_NAMES = [stack_name(path) for path in list_stacks(STACKS_DIR)]


# --- helpers: edit a raw spec by path, collect its problems ------------------------------------------


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()  # as a value in a change set: remove the key (or list item) at that path


def apply(raw: dict, changes: dict[tuple, Any]) -> dict:
    """A copy of ``raw`` with each ``path: value`` change applied in order (missing dicts are created)."""
    raw = copy.deepcopy(raw)
    for path, value in changes.items():
        *parents, last = path
        node = raw
        for key in parents:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)
    return raw


def problems_of(raw: Any) -> list[Violation]:
    """Every problem ``parse_spec`` reports for ``raw``; empty when it parses."""
    try:
        spec = parse_spec(raw, "test.yaml")
    except SpecError as error:
        assert error.problems, "a SpecError must carry at least one problem"
        return error.problems
    assert isinstance(spec, ClusterSpec)
    return []


def describe(problems: list[Violation]) -> str:
    return "\n".join(f"  {p.path}: {p.message} (found: {p.value!r})" for p in problems) or "  (none)"


def find_problem(problems: list[Violation], path: tuple, fragments: tuple[str, ...] = ()) -> Violation:
    """The problem reported at exactly ``path`` whose message contains every fragment."""
    at_path = [p for p in problems if p.path == path]
    assert at_path, f"no problem at {path}; problems:\n{describe(problems)}"
    matching = [p for p in at_path if all(fragment in p.message for fragment in fragments)]
    assert matching, f"no problem at {path} mentions all of {fragments}; problems:\n{describe(problems)}"
    return matching[0]


def assert_valid(raw: dict) -> ClusterSpec:
    try:
        return parse_spec(raw, "test.yaml")
    except SpecError as error:
        pytest.fail(f"expected a valid spec, got:\n{error.describe()}")


def write_stack(directory: Path, name: str, raw: dict) -> Path:
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": {"gpucluster:cluster": raw}}, sort_keys=False), encoding="utf-8")
    return path


def leaf_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to every scalar (and empty container) inside a raw spec."""
    if isinstance(node, dict) and node:
        return [p for key, child in node.items() for p in leaf_paths(child, (*prefix, key))]
    if isinstance(node, list) and node:
        return [p for index, child in enumerate(node) for p in leaf_paths(child, (*prefix, index))]
    return [prefix]


# --- the reference stacks -----------------------------------------------------------------------------


def test_reference_stacks_are_found():
    assert {"eks-t4", "eks-h100", "onprem-dgx", "onprem-k3s", "onprem-kubeadm", "hybrid-crio"} <= set(STACK_NAMES)


@pytest.mark.parametrize("name", STACK_NAMES)
def test_reference_stack_loads_cleanly(name, load_raw):
    stack = load_stack(name, STACKS_DIR)
    assert stack.name == name
    assert stack.path == STACKS_DIR / f"Pulumi.{name}.yaml"
    assert stack.spec.name == load_raw(name)["name"]
    assert stack.warnings == [], describe(stack.warnings)


@pytest.mark.parametrize("capacity", ["spot", "mixed"])
def test_spot_with_one_instance_type_warns_about_instance_types(tmp_path, load_raw, capacity):
    raw = apply(
        load_raw("eks-t4"),
        {("node_pools", 0, "instance_types"): ["g4dn.xlarge"], ("node_pools", 0, "capacity"): {"type": capacity}},
    )
    stack = load_stack(str(write_stack(tmp_path, "eks-t4-spot", raw)))

    assert [w.path for w in stack.warnings] == [("node_pools", 0, "instance_types")]
    assert "instance_types" in format_path(stack.warnings[0].path)
    assert stack.warnings[0].value == ["g4dn.xlarge"]
    assert capacity in stack.warnings[0].message


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(
            {
                ("node_pools", 0, "instance_types"): ["g4dn.xlarge", "g4dn.2xlarge"],
                ("node_pools", 0, "capacity"): {"type": "spot"},
            },
            id="spot-two-types",
        ),
        pytest.param(
            {
                ("node_pools", 0, "instance_types"): ["g4dn.xlarge"],
                ("node_pools", 0, "capacity"): {"type": "on-demand"},
            },
            id="on-demand-one-type",
        ),
    ],
)
def test_no_warning_when_capacity_is_not_fragile(load_raw, changes):
    assert spec_warnings(assert_valid(apply(load_raw("eks-t4"), changes))) == []


# --- one case per rule: the valid variant passes, the breaking change fails at its exact path ---------


@dataclass(frozen=True)
class Rule:
    stack: str
    breaking: dict[tuple, Any]  # applied on top of the valid variant
    path: tuple  # where the problem must be reported
    fragments: tuple[str, ...]  # what the message must name: allowed values or the fix
    valid: dict[tuple, Any] = field(default_factory=dict)  # turns the reference stack into the valid variant
    value: Any = field(default_factory=lambda: ANY)  # the value the problem must report as found


P0, P1, P2 = ("node_pools", 0), ("node_pools", 1), ("node_pools", 2)
CP = ("kubernetes", "control_plane")
MIG_SINGLE_1G5 = {"mode": "mig", "strategy": "single", "profile": "1g.5gb"}
EFA_ON = {
    (*P0, "efa"): True,
    (*P0, "availability_zone"): "us-east-1a",
    ("network", "fabric"): "efa",
    (*P0, "capacity"): DELETE,
}
AWS_SECTION = {"region": "us-east-1", "availability_zones": ["us-east-1a", "us-east-1b"]}

RULES = [
    # MIG
    pytest.param(
        Rule(
            "eks-t4",
            valid={
                (*P0, "sharing"): MIG_SINGLE_1G5,
                (*P0, "instance_types"): ["p4d.24xlarge"],
                ("autoscaling", "workloads"): [],  # whole-GPU workloads do not scale on MIG slices
            },
            breaking={(*P0, "instance_types"): ["g4dn.xlarge"]},
            path=(*P0, "sharing", "mode"),
            fragments=("T4", "A100-40GB", "H100-80GB"),
            value="mig",
        ),
        id="mig-only-on-mig-capable-gpu",
    ),
    pytest.param(
        Rule(
            "eks-h100",
            valid={(*P1, "sharing"): MIG_SINGLE_1G5},
            breaking={(*P1, "sharing", "profile"): "3g.40gb"},  # an A100-80GB profile
            path=(*P1, "sharing", "profile"),
            fragments=("1g.5gb", "3g.20gb", "7g.40gb"),
            value="3g.40gb",
        ),
        id="mig-profile-of-that-gpu",
    ),
    pytest.param(
        Rule(
            "onprem-kubeadm",
            valid={(*P0, "sharing"): {"mode": "mig", "strategy": "single", "profile": "1g.6gb"}},
            breaking={(*P0, "sharing", "profile"): "1g.10gb"},  # exists on A100/H100, not on A30
            path=(*P0, "sharing", "profile"),
            fragments=("1g.6gb", "2g.12gb", "4g.24gb"),
            value="1g.10gb",
        ),
        id="mig-profile-of-that-gpu-a30",
    ),
    pytest.param(
        Rule(
            "eks-h100",  # the reference layout fills all 7 compute / 8 memory slices exactly
            breaking={(*P1, "sharing", "layout"): {"3g.20gb": 2, "1g.5gb": 2}},
            path=(*P1, "sharing", "layout"),
            fragments=("A100-40GB", "slices"),
            value={"3g.20gb": 2, "1g.5gb": 2},
        ),
        id="mig-layout-exceeds-slices",
    ),
    pytest.param(
        Rule(
            "eks-h100",
            breaking={(*P1, "sharing", "layout"): {"2g.10gb": 4, "1g.5gb": 1}},  # at most 3 x 2g.10gb
            path=(*P1, "sharing", "layout"),
            fragments=("2g.10gb", "3"),
        ),
        id="mig-layout-exceeds-max-instances",
    ),
    pytest.param(
        Rule(
            "eks-h100",
            breaking={(*P1, "sharing"): {"mode": "mig", "strategy": "mixed", "profile": "1g.5gb"}},
            path=(*P1, "sharing", "layout"),
            fragments=("layout",),
        ),
        id="mig-mixed-needs-layout",
    ),
    pytest.param(
        Rule(
            "eks-h100",
            valid={(*P1, "sharing"): MIG_SINGLE_1G5},
            breaking={(*P1, "sharing", "profile"): DELETE, (*P1, "sharing", "layout"): {"1g.5gb": 7}},
            path=(*P1, "sharing", "profile"),
            fragments=("profile",),
        ),
        id="mig-single-needs-profile",
    ),
    pytest.param(
        Rule(
            "eks-h100",
            breaking={(*P1, "sharing", "strategy"): DELETE},
            path=(*P1, "sharing", "strategy"),
            fragments=("single", "mixed"),
        ),
        id="mig-needs-strategy",
    ),
    # EFA
    pytest.param(
        Rule(
            "eks-t4",
            valid={**EFA_ON, (*P0, "instance_types"): ["p5.48xlarge"]},
            breaking={(*P0, "instance_types"): ["g4dn.xlarge"]},
            path=(*P0, "instance_types", 0),
            fragments=("EFA", "g4dn.8xlarge", "g4dn.metal"),
            value="g4dn.xlarge",
        ),
        id="efa-only-on-efa-capable-type",
    ),
    pytest.param(
        Rule(
            "eks-h100",
            breaking={(*P0, "availability_zone"): DELETE},
            path=(*P0, "availability_zone"),
            fragments=("availability zone",),
        ),
        id="efa-pool-needs-availability-zone",
    ),
    pytest.param(
        Rule(
            "eks-h100",
            breaking={(*P0, "availability_zone"): "us-west-2d"},
            path=(*P0, "availability_zone"),
            fragments=("us-west-2a", "us-west-2b", "us-west-2c"),
            value="us-west-2d",
        ),
        id="pool-zone-in-aws-zones",
    ),
    pytest.param(
        Rule(
            "eks-h100",
            breaking={(*P0, "efa"): False},
            path=("network", "fabric"),
            fragments=("efa: true",),
            value="efa",
        ),
        id="efa-fabric-needs-efa-pool",
    ),
    pytest.param(
        Rule("eks-h100", breaking={("network", "fabric"): "ethernet"}, path=(*P0, "efa"), fragments=("efa",)),
        id="efa-pool-needs-efa-fabric",
    ),
    # time-slicing
    pytest.param(
        Rule(
            "onprem-dgx",
            valid={(*P2, "sharing", "replicas"): 2},
            breaking={(*P2, "sharing", "replicas"): 1},
            path=(*P2, "sharing", "replicas"),
            fragments=(">= 2",),
            value=1,
        ),
        id="time-slicing-replicas-1",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            valid={(*P2, "sharing", "replicas"): 2},
            breaking={(*P2, "sharing", "replicas"): DELETE},
            path=(*P2, "sharing", "replicas"),
            fragments=(">= 2",),
            value=None,
        ),
        id="time-slicing-replicas-missing",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={(*P0, "sharing"): {"replicas": 4}},
            path=(*P0, "sharing", "replicas"),
            fragments=("time-slicing",),
            value=4,
        ),
        id="replicas-only-with-time-slicing",
    ),
    # capacity and scaling
    pytest.param(
        Rule(
            "eks-t4",
            valid={(*P0, "capacity"): {"type": "spot"}, (*P0, "instance_types"): ["g4dn.xlarge", "g4dn.2xlarge"]},
            breaking={(*P0, "instance_types"): ["g4dn.xlarge", "g5.xlarge"]},
            path=(*P0, "instance_types"),
            fragments=("T4", "A10G"),
            value=["g4dn.xlarge", "g5.xlarge"],
        ),
        id="spot-types-share-one-gpu-model",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            valid={(*P0, "capacity", "on_demand_base"): 10},
            breaking={(*P0, "capacity", "on_demand_base"): 11},
            path=(*P0, "capacity", "on_demand_base"),
            fragments=("scaling.max", "10"),
            value=11,
        ),
        id="on-demand-base-within-max",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={(*P0, "capacity"): {"type": "spot"}},
            path=(*P0, "capacity", "type"),
            fragments=("AWS",),
            value="spot",
        ),
        id="spot-only-on-aws",
    ),
    *[
        pytest.param(
            Rule(
                "eks-t4",
                valid={(*P0, "scaling"): {"min": 2, "max": 2, "desired": 2}},
                breaking={(*P0, "scaling"): scaling},
                path=(*P0, "scaling"),
                fragments=("min <= desired <= max",),
            ),
            id=f"scaling-{label}",
        )
        for label, scaling in [
            ("min-above-desired", {"min": 3, "max": 10, "desired": 2}),
            ("desired-above-max", {"min": 1, "max": 10, "desired": 11}),
            ("min-above-max", {"min": 5, "max": 3, "desired": 4}),
        ]
    ],
    # platform and distribution
    pytest.param(
        Rule(
            "onprem-kubeadm",
            breaking={("kubernetes", "distribution"): "eks"},
            path=("kubernetes", "distribution"),
            fragments=("aws", "kubeadm"),
            value="eks",
        ),
        id="eks-not-onprem",
    ),
    pytest.param(
        Rule(
            "hybrid-crio",
            breaking={("kubernetes", "distribution"): "eks"},
            path=("kubernetes", "distribution"),
            fragments=("aws",),
            value="eks",
        ),
        id="eks-not-hybrid",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            breaking={("kubernetes", "distribution"): "k3s"},
            path=("kubernetes", "distribution"),
            fragments=("onprem", "hybrid"),
            value="k3s",
        ),
        id="k3s-not-on-aws",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            breaking={("kubernetes", "distribution"): "kubeadm"},
            path=("kubernetes", "distribution"),
            fragments=("onprem", "hybrid", "eks"),
            value="kubeadm",
        ),
        id="kubeadm-not-on-aws",
    ),
    pytest.param(
        Rule("onprem-kubeadm", breaking={("aws",): AWS_SECTION}, path=("aws",), fragments=("remove",)),
        id="onprem-takes-no-aws-section",
    ),
    pytest.param(
        Rule(
            "eks-t4", breaking={("aws",): DELETE}, path=("aws",), fragments=("region", "availability_zones"), value=None
        ),
        id="aws-needs-aws-section",
    ),
    pytest.param(
        Rule(
            "hybrid-crio",
            breaking={("aws",): DELETE},
            path=("aws",),
            fragments=("region", "availability_zones"),
            value=None,
        ),
        id="hybrid-needs-aws-section",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            breaking={("aws", "availability_zones", 1): "us-west-2b"},
            path=("aws", "availability_zones", 1),
            fragments=("us-east-1",),
            value="us-west-2b",
        ),
        id="zones-in-region",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            breaking={("network", "fabric"): "infiniband"},
            path=("network", "fabric"),
            fragments=("efa",),
            value="infiniband",
        ),
        id="no-infiniband-on-aws",
    ),
    pytest.param(
        Rule(
            "onprem-kubeadm",
            breaking={("ingress",): {"controller": "nginx", "load_balancer": "alb"}},
            path=("ingress", "load_balancer"),
            fragments=("service",),
            value="alb",
        ),
        id="alb-only-on-aws",
    ),
    pytest.param(
        Rule(
            "eks-t4", breaking={CP: {"hosts": [{"name": "cp1", "address": "10.0.0.1"}]}}, path=CP, fragments=("remove",)
        ),
        id="eks-takes-no-control-plane",
    ),
    # control plane
    pytest.param(
        Rule("onprem-dgx", breaking={(*CP, "endpoint"): DELETE}, path=(*CP, "endpoint"), fragments=("endpoint",)),
        id="ha-control-plane-needs-endpoint",
    ),
    pytest.param(
        Rule("onprem-dgx", breaking={(*CP, "hosts", 2): DELETE}, path=CP, fragments=("odd", "3"), value=2),
        id="control-plane-odd-count",
    ),
    pytest.param(
        Rule(
            "hybrid-crio",
            valid={(*CP, "count"): 3, (*CP, "endpoint"): "api.example.com:6443"},
            breaking={(*CP, "count"): 2},
            path=CP,
            fragments=("odd",),
            value=2,
        ),
        id="provisioned-control-plane-odd-count",
    ),
    pytest.param(
        Rule("onprem-kubeadm", breaking={CP: DELETE}, path=CP, fragments=("hosts", "instance_type")),
        id="kubeadm-needs-control-plane",
    ),
    # GPU of AWS pools comes from the instance type
    pytest.param(
        Rule(
            "eks-t4",
            valid={(*P0, "gpu"): {"model": "T4", "count": 1}},
            breaking={(*P0, "gpu", "model"): "A10G"},
            path=(*P0, "gpu", "model"),
            fragments=("T4",),
            value="A10G",
        ),
        id="aws-gpu-model-matches-instance-type",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            valid={(*P0, "gpu"): {"model": "T4", "count": 1}},
            breaking={(*P0, "gpu", "count"): 4},
            path=(*P0, "gpu", "count"),
            fragments=("g4dn.xlarge", "1"),
            value=4,
        ),
        id="aws-gpu-count-matches-instance-type",
    ),
    pytest.param(
        Rule("onprem-kubeadm", breaking={(*P0, "gpu"): DELETE}, path=(*P0, "hosts", 0, "gpus"), fragments=("gpu",)),
        id="onprem-hosts-need-gpus",
    ),
    # uniqueness
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={(*P2, "name"): "dgx-train"},
            path=("node_pools",),
            fragments=("unique",),
            value="dgx-train",
        ),
        id="unique-pool-names",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={(*P1, "hosts", 0, "name"): "dgx01"},
            path=("node_pools",),
            fragments=("unique",),
            value="dgx01",
        ),
        id="unique-host-names-across-pools",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={(*P0, "hosts", 1, "name"): "dgx01"},
            path=("node_pools",),
            fragments=("unique",),
            value="dgx01",
        ),
        id="unique-host-names-within-pool",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={(*CP, "hosts", 1, "name"): "master1"},
            path=(*CP, "hosts"),
            fragments=("unique",),
            value="master1",
        ),
        id="unique-control-plane-hosts",
    ),
    pytest.param(
        Rule(
            "onprem-k3s",  # the reference runs workloads on its control-plane host, same address
            breaking={(*P0, "hosts", 0, "address"): "192.168.10.99"},
            path=(*P0, "hosts", 0, "address"),
            fragments=("192.168.10.20",),
            value="192.168.10.99",
        ),
        id="control-plane-host-in-pool-same-address",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            valid={("tenants", 1, "namespace"): "inference"},
            breaking={("tenants", 1, "namespace"): "ai-training"},
            path=("tenants",),
            fragments=("unique",),
            value="ai-training",
        ),
        id="unique-tenant-namespaces",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            valid={("tenants", 0, "groups"): DELETE, ("tenants", 0, "users"): ["alice"]},
            breaking={("tenants", 0, "users"): DELETE},
            path=("tenants", 0),
            fragments=("groups", "users"),
            value="ai-training",
        ),
        id="tenant-needs-groups-or-users",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            valid={(*P0, "name"): "default-gpu"},
            breaking={(*P0, "name"): "default"},
            path=(*P0, "name"),
            fragments=("another name",),
            value="default",
        ),
        id="pool-not-named-default",
    ),
    # catalog keys and field-level checks
    pytest.param(
        Rule(
            "eks-t4",
            breaking={(*P0, "instance_types", 1): "g4dn.huge"},
            path=(*P0, "instance_types", 1),
            fragments=("g4dn.xlarge", "p5.48xlarge"),
            value="g4dn.huge",
        ),
        id="unknown-instance-type",
    ),
    pytest.param(
        Rule(
            "hybrid-crio",
            breaking={(*P0, "instance_types"): ["m6i.xlarge"]},
            path=(*P0, "instance_types", 0),
            fragments=("g6.2xlarge",),
            value="m6i.xlarge",
        ),
        id="instance-type-without-gpu",
    ),
    pytest.param(
        Rule(
            "onprem-kubeadm",
            breaking={(*P0, "gpu", "model"): "A31"},
            path=(*P0, "gpu", "model"),
            fragments=("A30", "H100-80GB", "RTX-5090"),
            value="A31",
        ),
        id="unknown-gpu-model",
    ),
    pytest.param(
        Rule(
            "onprem-k3s",
            breaking={(*P0, "hosts", 0, "gpus", 0, "model"): "RTX-4090"},
            path=(*P0, "hosts", 0, "gpus", 0, "model"),
            fragments=("RTX-5090",),
            value="RTX-4090",
        ),
        id="unknown-host-gpu-model",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={(*P2, "sharing", "replica"): 4},
            path=(*P2, "sharing", "replica"),
            fragments=("unknown field",),
            value=4,
        ),
        id="unknown-pool-field",
    ),
    pytest.param(
        Rule("eks-t4", breaking={("nodepools",): []}, path=("nodepools",), fragments=("unknown field",)),
        id="unknown-top-level-field",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            valid={("kubernetes", "version"): "1.30"},
            breaking={("kubernetes", "version"): "1.20"},
            path=("kubernetes", "version"),
            fragments=("1.28", "1.33"),
            value="1.20",
        ),
        id="kubernetes-version-supported",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            valid={("components", "gpu_operator"): "v26.3.0"},
            breaking={("components", "gpu_operator"): "latest"},
            path=("components", "gpu_operator"),
            fragments=("exact release", "pin"),
            value="latest",
        ),
        id="component-version-pinned",
    ),
    pytest.param(
        Rule(
            "onprem-k3s",
            breaking={("gpu_stack", "driver_version"): "latest"},
            path=("gpu_stack", "driver_version"),
            fragments=("exact release", "pin"),
            value="latest",
        ),
        id="driver-version-pinned",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={(*P2, "sharing", "mode"): "mps"},
            path=(*P2, "sharing", "mode"),
            fragments=("time-slicing", "mig"),
            value="mps",
        ),
        id="sharing-mode-allowed-values",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={("tenants", 0, "cpu"): "lots"},
            path=("tenants", 0, "cpu"),
            value="lots",
            fragments=(),
        ),
        id="tenant-cpu-quantity",
    ),
    pytest.param(
        Rule(
            "onprem-kubeadm",
            breaking={("kubernetes", "pod_cidr"): "10.244.0.0/33"},
            path=("kubernetes", "pod_cidr"),
            fragments=(),
            value="10.244.0.0/33",
        ),
        id="pod-cidr-network",
    ),
    pytest.param(
        Rule("eks-t4", breaking={("name",): DELETE}, path=("name",), fragments=("required",), value="<missing>"),
        id="name-required",
    ),
    # labels and taints gpucluster sets, and what the kubelet may set
    *[
        pytest.param(
            Rule(
                "eks-t4",
                breaking={(*P0, "labels", key): "mine"},
                path=(*P0, "labels", key),
                fragments=("gpucluster sets this label",),
                value=key,
            ),
            id=f"label-{key}-is-gpuclusters",
        )
        for key in ("gpucluster.io/pool", "nvidia.com/device-plugin.config", "nvidia.com/mig.config")
    ],
    pytest.param(
        Rule(
            "onprem-dgx",
            valid={(*P0, "labels", "node.kubernetes.io/role"): "training"},
            breaking={(*P0, "labels", "node-role.kubernetes.io/worker"): ""},
            path=(*P0, "labels", "node-role.kubernetes.io/worker"),
            fragments=("kubelet", "node.kubernetes.io/"),
        ),
        id="label-kubelet-may-not-set",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            breaking={(*P0, "taints"): [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoExecute"}]},
            path=(*P0, "taints", 0, "key"),
            fragments=("gpucluster taints GPU pools",),
            value="nvidia.com/gpu",
        ),
        id="taint-nvidia-gpu-is-gpuclusters",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            valid={(*P0, "taints"): [{"key": "team", "value": "a"}, {"key": "team", "effect": "NoExecute"}]},
            breaking={(*P0, "taints", 1, "effect"): "NoSchedule"},
            path=(*P0, "taints", 1),
            fragments=("team:NoSchedule", "one taint per key and effect"),
        ),
        id="taint-key-effect-unique",
    ),
    # RoleBinding subjects
    pytest.param(
        Rule(
            "eks-t4",
            breaking={("tenants", 0, "groups", 0): ""},
            path=("tenants", 0, "groups", 0),
            fragments=("not empty",),
        ),
        id="subject-not-empty",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            breaking={("tenants", 0, "users"): [" ops "]},
            path=("tenants", 0, "users", 0),
            fragments=("spaces",),
        ),
        id="subject-no-surrounding-spaces",
    ),
    *[
        pytest.param(
            Rule(
                "eks-t4",
                breaking={("tenants", 0, "groups", 0): group},
                path=("tenants", 0, "groups", 0),
                fragments=("'system:' groups belong to Kubernetes",),
                value=group,
            ),
            id=f"subject-group-{group}",
        )
        for group in ("system:authenticated", "system:unauthenticated", "system:masters", "system:serviceaccounts")
    ],
    pytest.param(
        Rule(
            "onprem-k3s",
            valid={("tenants", 0, "users"): ["ml-engineer", "system:serviceaccount:ci:deployer"]},
            breaking={("tenants", 0, "users", 1): "system:anonymous"},
            path=("tenants", 0, "users", 1),
            fragments=("'system:' users", "system:serviceaccount:<namespace>:<name>"),
            value="system:anonymous",
        ),
        id="subject-user-system-anonymous",
    ),
    # LimitRange defaults inside the quota, compared as quantities
    pytest.param(
        Rule(
            "eks-t4",
            valid={("tenants", 0, "memory"): "1Gi", ("tenants", 0, "default_memory"): "1000M"},  # 1e9 < 2^30
            breaking={("tenants", 0, "default_memory"): "1100M"},
            path=("tenants", 0, "default_memory"),
            fragments=("memory quota (1Gi)",),
            value="1100M",
        ),
        id="default-memory-within-quota",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            valid={("tenants", 0, "cpu"): "1500m", ("tenants", 0, "default_cpu"): "1.5"},
            breaking={("tenants", 0, "default_cpu"): "1501m"},
            path=("tenants", 0, "default_cpu"),
            fragments=("cpu quota (1500m)",),
            value="1501m",
        ),
        id="default-cpu-within-quota",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            breaking={(*P0, "instance_types"): ["g4dn.xlarge", "g4dn.2xlarge", "g4dn.xlarge"]},
            path=(*P0, "instance_types", 2),
            fragments=("listed twice",),
            value="g4dn.xlarge",
        ),
        id="instance-types-unique",
    ),
    # fields that cannot apply where they are set
    pytest.param(
        Rule(
            "hybrid-crio",
            valid={(*P0, "availability_zone"): "eu-west-1a"},
            breaking={
                (*P0, "instance_types"): DELETE,
                (*P0, "scaling"): DELETE,
                (*P0, "hosts"): [{"name": "gpu1", "address": "10.40.1.10"}],
                (*P0, "gpu"): {"model": "L4", "count": 1},
            },
            path=(*P0, "availability_zone"),
            fragments=("existing hosts",),
            value="eu-west-1a",
        ),
        id="hosts-pool-availability-zone",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            valid={(*P0, "disk_gib"): 200},
            breaking={(*P0, "disk_gib"): 1024},
            path=(*P0, "disk_gib"),
            fragments=("existing hosts keep their disks",),
            value=1024,
        ),
        id="hosts-pool-disk-gib",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={(*P0, "scaling"): {"min": 0, "max": 8, "desired": 4}},
            path=(*P0, "scaling"),
            fragments=("one node per host",),
        ),
        id="hosts-pool-scaling",
    ),
    pytest.param(
        Rule(
            "onprem-dgx",
            breaking={("network", "fabric"): "ethernet"},
            path=("network", "ib_hcas"),
            fragments=("fabric 'infiniband' only",),
            value=["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"],
        ),
        id="ib-hcas-only-on-infiniband",
    ),
    pytest.param(
        Rule(
            "eks-t4",
            valid={
                ("ingress", "controller"): "none",
                ("ingress", "load_balancer"): "service",
                ("ingress", "certificate_arn"): DELETE,
                ("autoscaling", "workloads"): [],  # its workload has an ingress host
            },
            breaking={("ingress", "load_balancer"): "nlb"},
            path=("ingress", "load_balancer"),
            fragments=("ingress.controller",),
            value="nlb",
        ),
        id="load-balancer-needs-a-controller",
    ),
]


@pytest.mark.parametrize("rule", RULES)
def test_rule(load_raw, rule: Rule):
    valid = apply(load_raw(rule.stack), rule.valid)
    assert_valid(valid)

    problem = find_problem(problems_of(apply(valid, rule.breaking)), rule.path, rule.fragments)
    assert problem.value == rule.value


def test_single_entry_mixed_layout_is_reported_at_layout(load_raw):
    raw = apply(load_raw("eks-h100"), {(*P1, "sharing", "layout"): {"7g.40gb": 2}})  # A100-40GB fits one
    problems = problems_of(raw)
    assert problems
    assert {p.path for p in problems} == {(*P1, "sharing", "layout")}, describe(problems)


@pytest.mark.parametrize("value", [5, True], ids=["int", "bool"])
def test_cidr_must_be_written_as_a_network(load_raw, value):
    raw = apply(load_raw("onprem-kubeadm"), {("kubernetes", "pod_cidr"): value})
    find_problem(problems_of(raw), ("kubernetes", "pod_cidr"), ["CIDR string"])


def test_pod_and_service_networks_must_not_overlap(load_raw):
    raw = apply(load_raw("onprem-kubeadm"), {("kubernetes", "service_cidr"): "10.244.128.0/17"})
    find_problem(problems_of(raw), ("kubernetes", "service_cidr"), ["overlaps pod_cidr"])


def test_unquoted_kubernetes_version_asks_for_quotes(load_raw):
    raw = apply(load_raw("onprem-kubeadm"), {("kubernetes", "version"): 1.3})
    find_problem(problems_of(raw), ("kubernetes", "version"), ["quote", "1.33"])


def test_floating_component_version_says_to_pin(load_raw):
    raw = apply(load_raw("eks-t4"), {("components", "dcgm_exporter"): "latest"})
    find_problem(problems_of(raw), ("components", "dcgm_exporter"), ["exact release"])


def test_mig_single_profile_fills_the_gpu(load_raw):
    """A single-strategy profile is valid for every profile of the GPU: the implied count must fit."""
    from gpucluster.catalog import catalog

    for profile in catalog().gpus["A100-40GB"].mig.profiles:
        raw = apply(load_raw("eks-h100"), {(*P1, "sharing"): {"mode": "mig", "strategy": "single", "profile": profile}})
        assert problems_of(raw) == [], f"{profile}:\n{describe(problems_of(raw))}"


# --- the shape of errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "changes", "path_text", "found"),
    [
        ("onprem-dgx", {(*P2, "sharing", "replicas"): 1}, "gpucluster:cluster.node_pools[2].sharing.replicas", "1"),
        (
            "eks-t4",
            {(*P0, "instance_types", 1): "g9.weird"},
            "gpucluster:cluster.node_pools[0].instance_types[1]",
            "'g9.weird'",
        ),
        ("eks-t4", {("kubernetes", "version"): "1.20"}, "gpucluster:cluster.kubernetes.version", "'1.20'"),
    ],
)
def test_error_describes_source_path_and_value(load_raw, stack, changes, path_text, found):
    with pytest.raises(SpecError) as caught:
        parse_spec(apply(load_raw(stack), changes), "x.yaml")
    error = caught.value
    text = error.describe()

    assert error.source == "x.yaml"
    assert text.startswith("x.yaml")
    lines = [line for line in text.splitlines() if path_text in line]
    assert lines, text
    assert found in lines[0]
    assert str(error) == text


def test_all_rule_violations_are_reported_together(load_raw):
    raw = apply(
        load_raw("onprem-dgx"),
        {
            (*P2, "sharing", "replicas"): 1,
            (*P1, "name"): "default",
            ("tenants", 0, "groups"): DELETE,
            (*CP, "endpoint"): DELETE,
        },
    )
    paths = {p.path for p in problems_of(raw)}
    assert {(*P2, "sharing", "replicas"), (*P1, "name"), ("tenants", 0), (*CP, "endpoint")} <= paths


def test_all_field_errors_are_reported_together(load_raw):
    raw = apply(
        load_raw("eks-t4"),
        {
            ("kubernetes", "version"): "1.20",
            ("tenants", 0, "gpus"): -1,
            (*P0, "disk_gib"): 5,
            ("monitoring", "colour"): "blue",
        },
    )
    paths = {p.path for p in problems_of(raw)}
    assert {("kubernetes", "version"), ("tenants", 0, "gpus"), (*P0, "disk_gib"), ("monitoring", "colour")} <= paths


@pytest.mark.parametrize("raw", [None, [], "cluster", 42], ids=["none", "list", "string", "int"])
def test_non_mapping_spec_is_a_spec_error(raw):
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "x.yaml")
    assert caught.value.problems


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), "gpucluster:cluster"),
        (("node_pools", 0, "sharing", "replicas"), "gpucluster:cluster.node_pools[0].sharing.replicas"),
        (("aws", "availability_zones", 1), "gpucluster:cluster.aws.availability_zones[1]"),
        (("node_pools", 1, "sharing", "layout", "1g.5gb"), "gpucluster:cluster.node_pools[1].sharing.layout.1g.5gb"),
    ],
)
def test_format_path(path, text):
    assert format_path(path) == text


# --- load_stack: every broken file is a SpecError ------------------------------------------------------


def test_missing_stack_lists_known_stacks():
    with pytest.raises(SpecError) as caught:
        load_stack("no-such-env", STACKS_DIR)
    text = caught.value.describe()
    assert "Pulumi.no-such-env.yaml" in caught.value.source
    for name in STACK_NAMES:
        assert name in text


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("config:\n  gpucluster:cluster:\n    name: demo: extra\n    platform: aws\n", 3),
        ("config:\n  gpucluster:cluster:\n    name: demo\n\tplatform: aws\n", 4),
        ("config:\n  gpucluster:cluster:\n    name: demo\n    platform: [aws\n    other: 1\n", 5),
    ],
    ids=["mapping-value", "tab", "unclosed-list"],
)
def test_invalid_yaml_names_the_line(tmp_path, text, line):
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_stack(str(path))
    assert caught.value.source == str(path)
    assert f"line {line}" in caught.value.describe()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- a\n- b\n",
        "just a string\n",
        "encryptionsalt: abc\n",
        "config: 5\n",
        "config:\n  aws:region: us-east-1\n",
        "config:\n  gpucluster:clusters:\n    name: typo\n",
    ],
    ids=["empty", "list", "scalar", "no-config", "config-scalar", "no-cluster-key", "misspelt-key"],
)
def test_file_without_cluster_config(tmp_path, text):
    path = tmp_path / "Pulumi.empty.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_stack(str(path))
    assert "gpucluster:cluster" in caught.value.describe()


@pytest.mark.parametrize(
    "text",
    ["config:\n  gpucluster:cluster:\n", "config:\n  gpucluster:cluster: [1, 2]\n"],
    ids=["null", "list"],
)
def test_cluster_config_not_a_mapping(tmp_path, text):
    path = tmp_path / "Pulumi.odd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_stack(str(path))
    assert caught.value.problems


def test_unreadable_path_is_a_spec_error(tmp_path):
    directory = tmp_path / "Pulumi.dir.yaml"
    directory.mkdir()
    with pytest.raises(SpecError):
        load_stack(str(directory))


def test_non_utf8_file_is_a_spec_error(tmp_path):
    path = tmp_path / "Pulumi.latin1.yaml"
    path.write_bytes("config:\n  gpucluster:cluster:\n    name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(SpecError):
        load_stack(str(path))


def test_stack_file_round_trip(tmp_path, load_raw):
    """A spec written to a stack file by name loads back to the same spec."""
    write_stack(tmp_path, "copy", load_raw("onprem-dgx"))
    stack = load_stack("copy", tmp_path)
    assert stack.name == "copy"
    assert stack.spec == assert_valid(load_raw("onprem-dgx"))


# --- property: garbage anywhere is a SpecError, never a crash ------------------------------------------

GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "default",
            "mig",
            "mixed",
            "single",
            "time-slicing",
            "spot",
            "efa",
            "1.33",
            "1.20",
            "g4dn.xlarge",
            "p5.48xlarge",
            "A100-80GB",
            "T4",
            "1g.5gb",
            "7g.80gb",
            "us-east-1a",
            "10.0.0.0/8",
            "192.168.1.11",
            "master1",
            "dgx01",
            "latest",
            "64Gi",
            DELETE,
        ]
    ),
    st.lists(st.one_of(st.none(), st.integers(-3, 20), st.text(max_size=8)), max_size=3),
    st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(-3, 20), st.text(max_size=8)), max_size=3),
)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_garbage_at_any_leaf_is_a_spec_error_or_valid(load_raw, data):
    raw = load_raw(data.draw(st.sampled_from(STACK_NAMES), label="stack"))
    paths = data.draw(st.lists(st.sampled_from(leaf_paths(raw)), min_size=1, max_size=3, unique=True), label="paths")
    for path in paths:
        try:
            raw = apply(raw, {path: data.draw(GARBAGE, label=f"value at {path}")})
        except (KeyError, IndexError, TypeError):
            continue  # an earlier substitution replaced or removed this path's parent

    try:
        spec = parse_spec(raw, "fuzz.yaml")
    except SpecError as error:
        assert error.problems
        assert all(isinstance(p.path, tuple) for p in error.problems)
        assert error.describe().startswith("fuzz.yaml")
    else:
        spec_warnings(spec)


def test_unknown_field_suggests_the_nearest_and_lists_allowed(load_raw):
    raw = apply(load_raw("onprem-dgx"), {("network", "fabrik"): "infiniband"})
    problem = find_problem(problems_of(raw), ("network", "fabrik"), ("did you mean 'fabric'?", "socket_ifname"))
    assert problem.value == "infiniband"


def test_stack_aws_region_must_match_the_spec(tmp_path, load_raw):
    path = tmp_path / "Pulumi.region.yaml"
    path.write_text(yaml.safe_dump({"config": {"aws:region": "eu-west-1", "gpucluster:cluster": load_raw("eks-t4")}}))
    with pytest.raises(SpecError) as caught:
        load_stack(str(path))
    assert caught.value.problems[0].path == ("aws", "region")
    assert "eu-west-1" in caught.value.problems[0].message


@pytest.mark.parametrize("address", ["10.0.0.300", "host name", "-bad.example.com"])
def test_host_address_must_be_an_ip_or_dns_name(load_raw, address):
    raw = apply(load_raw("onprem-kubeadm"), {("node_pools", 0, "hosts", 0, "address"): address})
    find_problem(problems_of(raw), ("node_pools", 0, "hosts", 0, "address"), ("neither an IP address nor a DNS name",))


def test_flannel_on_kubeadm_with_tenants_warns_that_policies_are_not_enforced(load_raw):
    raw = apply(load_raw("onprem-kubeadm"), {("network", "cni"): "flannel"})
    [warning] = spec_warnings(parse_spec(raw, "test.yaml"))
    assert warning.path == ("network", "cni") and "NetworkPolicies" in warning.message
    k3s = apply(load_raw("onprem-k3s"), {("network", "cni"): "flannel"})
    assert spec_warnings(parse_spec(k3s, "test.yaml")) == []


# --- messages describe the rule, never a regular expression ---------------------------------------------


@pytest.mark.parametrize(
    ("stack", "path", "value", "rule"),
    [
        ("eks-t4", ("name",), "Orchestrator", "a DNS-1123 label: lower-case letters, digits and '-'"),
        ("eks-t4", ("name",), "a" * 64, "at most 63 characters"),
        ("eks-t4", ("tenants", 0, "cpu"), "40 cores", "a Kubernetes quantity"),
        ("eks-t4", ("aws", "region"), "us-east-1a", "an AWS region such as 'us-east-1'"),
        ("eks-t4", ("aws", "region"), "US-EAST-1", "an AWS region"),
        ("hybrid-crio", (*CP, "instance_type"), "M6I.XLARGE", "an EC2 instance type"),
        ("eks-t4", (*P0, "labels", "workload"), "a" * 64, "a label value: empty, or at most 63"),
        ("eks-t4", (*P0, "labels", "workload"), "-x-", "starting and ending with a letter or digit"),
        ("eks-t4", (*P0, "taints"), [{"key": "Example.com/team"}], "a label key: an optional prefix"),
    ],
)
def test_format_errors_describe_the_rule(load_raw, stack, path, value, rule):
    raw = apply(load_raw(stack), {path: value})
    at = (*path, 0, "key") if path[-1] == "taints" else path
    problem = find_problem(problems_of(raw), at, (rule,))
    assert "pattern" not in problem.message and "^" not in problem.message


@pytest.mark.parametrize(
    "key",
    [
        "a" * 64,  # name over 63
        "example.com/" + "a" * 64,
        "a" * 254 + "/name",  # prefix over 253
        "Example.com/name",  # upper-case prefix
        "example..com/name",
        "example.com/",
        "/name",
        "a/b/c",
        "name-",
    ],
)
def test_label_keys_are_checked_like_kubernetes(load_raw, key):
    raw = apply(load_raw("eks-t4"), {(*P0, "labels"): {key: "x"}})
    problem = find_problem(problems_of(raw), (*P0, "labels", key), ("the key must be a label key",))
    assert problem.value == key


@pytest.mark.parametrize(
    "key", ["a" * 63, "example.com/" + "a" * 63, ("a" * 62 + ".") * 4 + "a/name", "team_1.x-y", "x", "1"]
)
def test_long_and_prefixed_label_keys_are_accepted(load_raw, key):
    assert len(key.rpartition("/")[0]) <= 253
    assert_valid(apply(load_raw("eks-t4"), {(*P0, "labels"): {key: "x"}, (*P0, "taints"): [{"key": key}]}))


def test_pattern_errors_of_fields_without_a_rule_show_the_description_not_the_regex():
    from pydantic import BaseModel, Field, ValidationError

    from gpucluster.stackfile import _violations

    class Probe(BaseModel):
        tag: str = Field(pattern=r"^[a-z]+$", max_length=3, description="A short lower-case tag.")

    for value, fragment in [("ABC", "does not match"), ("abcd", "longer than 3 characters")]:
        with pytest.raises(ValidationError) as caught:
            Probe(tag=value)
        [problem] = _violations(caught.value)
        assert fragment in problem.message and "^[a-z]" not in problem.message


# --- file-level problems say what is wrong with the file ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "the file holds a list"),
        ("just a string\n", "the file holds the scalar 'just a string'"),
        ("encryptionsalt: abc\n", "no 'config:' section (top-level keys: encryptionsalt)"),
        ("config: 5\n", "'config:' holds the scalar 5"),
        ("config:\n  gpucluster:clusters:\n    name: typo\n", "did you mean 'gpucluster:clusters'?"),
        ("config:\n  name: demo: extra\n", "not valid YAML at line 2"),
    ],
)
def test_file_level_problems_say_what_is_wrong_with_the_file(tmp_path, text, fragment):
    path = tmp_path / "Pulumi.odd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_stack(str(path))
    described = caught.value.describe()
    assert described.startswith(f"{path}: ") and fragment in described
    assert "found:" not in described and "<yaml>" not in described


def test_missing_stack_file_is_a_file_level_problem(tmp_path):
    described = SpecError.in_file("x.yaml", "no such stack file").describe()
    assert described == "x.yaml: no such stack file"
    with pytest.raises(SpecError) as caught:
        load_stack("absent", tmp_path)
    assert "found:" not in caught.value.describe()


def test_every_unknown_mig_profile_is_named(load_raw):
    raw = apply(load_raw("eks-h100"), {(*P1, "sharing", "layout"): {"9g.1gb": 1, "3g.20gb": 1, "8g.2gb": 1}})
    problems = problems_of(raw)
    assert {p.value for p in problems if p.path == (*P1, "sharing", "layout")} == {"9g.1gb", "8g.2gb"}, describe(
        problems
    )


# --- addresses, networks and zones ----------------------------------------------------------------------

HOST0 = (*P0, "hosts", 0)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("0.0.0.0", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("224.0.0.5", "multicast"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("255.255.255.255", "reserved"),
        ("localhost", "local machine"),
        ("gpu.localhost", "local machine"),
    ],
)
def test_host_address_must_reach_the_machine(load_raw, address, kind):
    raw = apply(load_raw("onprem-kubeadm"), {(*HOST0, "address"): address})
    find_problem(problems_of(raw), (*HOST0, "address"), (kind,))


def test_host_addresses_are_unique_across_the_cluster(load_raw):
    raw = load_raw("onprem-kubeadm")  # control plane jw1 at .251, workers jw2 .252 and jw3 .253
    problem = find_problem(
        problems_of(apply(raw, {(*P0, "hosts", 1, "address"): "129.254.202.251"})),
        (*P0, "hosts", 1, "address"),
        ("also the address of jw1 (kubernetes.control_plane.hosts[0])",),
    )
    assert problem.value == "129.254.202.251"
    find_problem(
        problems_of(
            apply(
                raw, {(*P0, "hosts", 0, "address"): "GPU.example.com", (*P0, "hosts", 1, "address"): "gpu.example.com"}
            )
        ),
        (*P0, "hosts", 1, "address"),
        ("also the address of jw2",),
    )


def test_a_control_plane_host_in_a_pool_is_one_machine(load_raw):
    assert_valid(load_raw("onprem-k3s"))  # gpu-server is server and worker, at one address


@pytest.mark.parametrize("field", ["pod_cidr", "service_cidr"])
def test_host_addresses_lie_outside_pod_and_service_networks(load_raw, field):
    network = {"pod_cidr": "129.254.0.0/16", "service_cidr": "129.254.202.0/24"}[field]
    raw = apply(load_raw("onprem-kubeadm"), {("kubernetes", field): network})
    for path in [(*CP, "hosts", 0, "address"), (*P0, "hosts", 0, "address"), (*P0, "hosts", 1, "address")]:
        find_problem(problems_of(raw), path, (f"inside kubernetes.{field} {network}",))


@pytest.mark.parametrize(
    ("stack", "changes", "pod_cidr", "fragments"),
    [
        ("onprem-kubeadm", {}, "10.244.0.0/23", ("room for 2 node(s)", "can have 3", "/22")),
        ("onprem-k3s", {}, "10.42.0.0/25", ("room for 0 node(s)", "can have 1", "/24")),
        (
            "hybrid-crio",
            {(*P0, "scaling"): {"min": 2, "max": 300, "desired": 2}},
            "10.244.0.0/16",
            ("can have 301", "/15"),
        ),
    ],
    ids=["3-hosts-in-2", "one-node-in-a-25", "hybrid-scaling-max"],
)
def test_pod_network_has_a_node_cidr_for_every_node(load_raw, stack, changes, pod_cidr, fragments):
    raw = apply(load_raw(stack), {**changes, ("kubernetes", "pod_cidr"): pod_cidr})
    find_problem(problems_of(raw), ("kubernetes", "pod_cidr"), fragments)


def test_pod_network_sized_exactly_for_the_nodes_is_accepted(load_raw):
    assert_valid(apply(load_raw("onprem-kubeadm"), {("kubernetes", "pod_cidr"): "10.244.0.0/22"}))
    assert_valid(apply(load_raw("onprem-k3s"), {("kubernetes", "pod_cidr"): "10.42.0.0/24"}))


@pytest.mark.parametrize(
    ("stack", "service_cidr", "fragment"),
    [
        ("onprem-kubeadm", "10.96.0.0/11", "at most a /12"),
        ("eks-t4", "100.64.0.0/16", "EKS takes a /12 to /24 service range"),
        ("eks-t4", "10.100.0.0/25", "EKS takes a /12 to /24"),
    ],
)
def test_service_network_size_and_range(load_raw, stack, service_cidr, fragment):
    raw = apply(load_raw(stack), {("kubernetes", "service_cidr"): service_cidr})
    find_problem(problems_of(raw), ("kubernetes", "service_cidr"), (fragment,))


@pytest.mark.parametrize(
    ("stack", "changes", "fragment"),
    [
        ("eks-t4", {("aws", "vpc_cidr"): "10.0.0.0/8"}, "AWS VPCs are /16 to /28"),
        ("eks-t4", {("aws", "vpc_cidr"): "10.0.0.0/29"}, "AWS VPCs are /16 to /28"),
        (
            "eks-t4",
            {("aws", "vpc_cidr"): "10.20.0.0/25"},
            "too small for a private and a public subnet in each of 3 zones",
        ),
        ("eks-t4", {("aws", "vpc_cidr"): "10.96.0.0/16"}, "overlaps kubernetes.service_cidr 10.96.0.0/12"),
        ("hybrid-crio", {("aws", "vpc_cidr"): "10.244.0.0/16"}, "overlaps kubernetes.pod_cidr 10.244.0.0/16"),
    ],
    ids=["too-large", "too-small", "no-room-for-subnets", "service-overlap", "hybrid-pod-overlap"],
)
def test_vpc_cidr_size_and_overlaps(load_raw, stack, changes, fragment):
    find_problem(problems_of(apply(load_raw(stack), changes)), ("aws", "vpc_cidr"), (fragment,))


def test_vpc_cidr_large_enough_for_the_zones_is_accepted(load_raw):
    assert_valid(apply(load_raw("eks-t4"), {("aws", "vpc_cidr"): "10.20.0.0/24"}))  # /28 public subnets


@pytest.mark.parametrize(
    ("zones", "index", "fragment"),
    [
        (["us-east-1a", "us-east-10a"], 1, "not a zone of us-east-1"),  # a prefix match took it
        (["us-east-1a", "us-east-1"], 1, "one lower-case letter"),
        (["us-east-1a", "us-east-1ab"], 1, "not a zone"),
        (["us-east-1a", "us-east-1-bos-1a"], 1, "not a zone"),
        (["us-east-1a", "us-east-1A"], 1, "not a zone"),
        (["us-east-1a", "us-east-1b", "us-east-1a"], 2, "listed twice"),
    ],
)
def test_availability_zones_are_unique_and_in_the_region(load_raw, zones, index, fragment):
    raw = apply(load_raw("eks-t4"), {("aws", "availability_zones"): zones})
    find_problem(problems_of(raw), ("aws", "availability_zones", index), (fragment,))


@pytest.mark.parametrize(
    "endpoint",
    [
        "gpu-cluster-lb.example.com",
        "lb.example.com:0",
        "lb.example.com:65536",
        "lb.example.com:https",
        ":6443",
        "lb_1.example.com:6443",
        "fd00::10:6443",
        "127.0.0.1:6443",
        "lb.example.com:6443/x",
    ],
)
def test_control_plane_endpoint_is_host_and_port(load_raw, endpoint):
    raw = apply(load_raw("onprem-dgx"), {(*CP, "endpoint"): endpoint})
    find_problem(problems_of(raw), (*CP, "endpoint"))


@pytest.mark.parametrize("endpoint", ["10.0.0.10:6443", "[fd00::10]:6443", "API.example.com:443", "lb:1"])
def test_control_plane_endpoint_accepts_ips_names_and_ports(load_raw, endpoint):
    assert_valid(apply(load_raw("onprem-dgx"), {(*CP, "endpoint"): endpoint}))


def test_reserved_namespaces_cover_cni_and_platform_add_ons():
    from gpucluster.spec import SYSTEM_NAMESPACES

    assert len(set(SYSTEM_NAMESPACES)) == len(SYSTEM_NAMESPACES)
    for namespace in ("calico-system", "tigera-operator", "kube-flannel", "cilium", "cert-manager", "ingress-nginx"):
        assert namespace in SYSTEM_NAMESPACES
