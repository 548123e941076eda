"""Taints and system pods: GPU pools are tainted only where system pods keep an untainted home, EKS gets a
system pool of CPU nodes, and a spec that would leave CoreDNS and the controllers no node is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpucluster.plan import GPU_TAINT, POOL_LABEL, make_plan
from gpucluster.render import gpu, nccl
from gpucluster.spec import ClusterSpec
from gpucluster.stackfile import SpecError, parse_spec
from stacks import spec_of

CONTROL_PLANE_TOLERATION = {
    "key": "node-role.kubernetes.io/control-plane",
    "operator": "Equal",
    "value": "",
    "effect": "NoSchedule",
}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def raw_of(stack: str) -> dict:
    return spec_of(stack).model_dump(mode="json", exclude_none=True)


def problems(raw: dict) -> list[tuple[str, str]]:
    """(field path, message) of every problem the spec reports."""
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test.yaml")
    return [(".".join(map(str, p.path)), p.message) for p in caught.value.problems]


def tainted(spec: ClusterSpec) -> dict[str, bool]:
    return {pool.name: GPU_TAINT in pool.taints for pool in make_plan(spec).pools}


def test_single_k3s_box_keeps_its_only_node_open_to_system_pods():
    """Seed 001: the k3s server is the GPU node. Tainted, CoreDNS and the controllers would never schedule."""
    plan = make_plan(spec_of("onprem-k3s"))
    assert [pool.taints for pool in plan.pools] == [()]
    assert plan.system_pool is None
    values = gpu.operator_values(plan)
    assert values["daemonsets"]["tolerations"] == []
    # The chart writes tolerations only when the list is non-empty ({{- if .Values.daemonsets.tolerations }}).
    assert "tolerations" not in gpu.cluster_policy(values, "v26.7.0")["spec"]["daemonsets"]
    assert values["node-feature-discovery"]["worker"]["tolerations"] == [CONTROL_PLANE_TOLERATION]
    for job in nccl.nccl_test_example(plan):
        pod = job["spec"]["template"]["spec"] if job["kind"] == "Job" else {}
        assert not pod.get("tolerations")


def test_eks_gpu_pools_are_tainted_and_system_pods_go_to_the_system_pool():
    plan = make_plan(spec_of("eks-t4"))
    assert all(GPU_TAINT in pool.taints for pool in plan.pools)
    assert plan.system_pool is not None
    assert plan.system_pool.labels == {POOL_LABEL: "system"}
    assert plan.system_pool.spec.instance_types[0] == "m6i.large"
    assert plan.system_pool.max_on_demand_usd_per_hour == pytest.approx(0.096 * 4)


def test_eks_with_only_tainted_gpu_pools_needs_a_system_pool():
    raw = raw_of("eks-t4")
    del raw["system_pool"]
    [(path, message)] = problems(raw)
    assert path == "system_pool"
    assert "no node" in message and "add a system_pool" in message and "gpu_taint: false" in message


def test_eks_without_system_pool_may_leave_a_gpu_pool_untainted():
    raw = raw_of("eks-t4")
    del raw["system_pool"]
    raw["node_pools"][0]["gpu_taint"] = False
    assert tainted(ClusterSpec.model_validate(raw)) == {"t4-inference": False}


def test_system_pool_takes_cpu_types_only():
    raw = raw_of("eks-t4")
    raw["system_pool"]["instance_types"] = ["g4dn.xlarge", "m6i.large", "x9z.huge"]
    found = dict(problems(raw))
    assert "a GPU instance type" in found["system_pool.instance_types.0"]
    assert "not a known CPU instance type" in found["system_pool.instance_types.2"]
    assert "system_pool.instance_types.1" not in found


def test_system_pool_is_refused_off_eks():
    raw = raw_of("onprem-kubeadm")
    raw["system_pool"] = {"instance_types": ["m6i.large"]}
    [(path, message)] = problems(raw)
    assert path == "system_pool" and "only EKS" in message


def test_kubeadm_control_plane_takes_no_pods_so_the_gpu_pool_stays_open():
    """Seed 002: jw1 is a kubeadm control plane (tainted by kubeadm); jw2/jw3 are the only workers."""
    assert tainted(spec_of("onprem-kubeadm")) == {"a30": False}


def test_schedulable_control_plane_lets_gpu_pools_be_tainted():
    raw = raw_of("onprem-kubeadm")
    raw["kubernetes"]["control_plane"]["schedulable"] = True
    spec = ClusterSpec.model_validate(raw)
    assert tainted(spec) == {"a30": True}
    assert make_plan(spec).control_plane_schedulable
    tolerations = gpu.operator_values(make_plan(spec))["node-feature-discovery"]["worker"]["tolerations"]
    assert tolerations == [CONTROL_PLANE_TOLERATION, GPU_TOLERATION]


def test_k3s_server_outside_the_pools_takes_the_system_pods():
    raw = raw_of("onprem-k3s")
    raw["kubernetes"]["control_plane"]["hosts"] = [{"name": "k3s-server", "address": "192.168.10.10"}]
    assert tainted(ClusterSpec.model_validate(raw)) == {"workstation": True}


def test_an_untainted_pool_lets_the_others_be_tainted():
    raw = raw_of("onprem-dgx")
    raw["node_pools"][2]["gpu_taint"] = False
    assert tainted(ClusterSpec.model_validate(raw)) == {"dgx-train": True, "dgx-mig": True, "dgx-dev": False}


def test_forcing_every_pool_tainted_without_a_home_is_refused_with_the_fix():
    raw = raw_of("onprem-kubeadm")
    raw["node_pools"][0]["gpu_taint"] = True
    [(path, message)] = problems(raw)
    assert path == "node_pools.0.gpu_taint"
    assert "gpu_taint: false" in message and "kubernetes.control_plane.schedulable: true" in message
    raw["kubernetes"]["control_plane"]["schedulable"] = True
    assert tainted(ClusterSpec.model_validate(raw)) == {"a30": True}


def test_a_user_taint_that_repels_pods_leaves_no_home_either():
    raw = raw_of("onprem-k3s")
    raw["node_pools"][0]["taints"] = [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]
    [(path, message)] = problems(raw)
    assert path == "node_pools.0.taints" and "no node" in message
    raw["node_pools"][0]["taints"][0]["effect"] = "PreferNoSchedule"
    assert tainted(ClusterSpec.model_validate(raw)) == {"workstation": False}


def test_operator_and_nfd_tolerate_every_pool_taint():
    """NFD's worker must run on every tainted pool, like the operator's DaemonSets (else no GPU labels)."""
    raw = raw_of("eks-t4")
    raw["node_pools"][0]["taints"] = [{"key": "dedicated", "value": "infer", "effect": "NoExecute"}]
    values = gpu.operator_values(make_plan(ClusterSpec.model_validate(raw)))
    dedicated = {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}
    assert values["daemonsets"]["tolerations"] == [GPU_TOLERATION, dedicated]
    assert values["node-feature-discovery"]["worker"]["tolerations"] == [
        CONTROL_PLANE_TOLERATION,
        GPU_TOLERATION,
        dedicated,
    ]


def test_system_is_a_reserved_pool_name():
    raw = raw_of("eks-t4")
    raw["node_pools"][0]["name"] = "system"
    assert ("node_pools.0.name", "'system' names the pool of CPU nodes for system pods; pick another name") in problems(
        raw
    )


def test_readme_names_the_node_side_settings_the_back_ends_apply():
    """Each named fact of gpucluster.plan that a back end must apply is spelled out in the README."""
    from gpucluster import plan

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("What the back ends must apply")
    section = readme[start : readme.index("\n\n", readme.index("\n- ", start))]  # its list
    for name, values in (
        ("ADMISSION_PLUGINS", plan.ADMISSION_PLUGINS),
        ("CONTAINER_TOOLKIT_SETTINGS", plan.CONTAINER_TOOLKIT_SETTINGS),
    ):
        assert f"`{name}`" in section
        for value in values:
            assert value in section, value
    assert plan.ADMISSION_PLUGINS == ("ExtendedResourceToleration",)
    assert plan.CONTAINER_TOOLKIT_SETTINGS["accept-nvidia-visible-devices-envvar-when-unprivileged"] is False
