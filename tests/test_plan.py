"""The plan: per-pool facts every back end shares (labels, taints, GPU counts, cost bound)."""

from __future__ import annotations

import pytest

from gpucluster.catalog import catalog
from gpucluster.plan import (
    DEVICE_PLUGIN_CONFIG_LABEL,
    MIG_CONFIG_LABEL,
    POOL_LABEL,
    make_plan,
)
from gpucluster.spec import ClusterSpec
from stacks import spec_of


def plan_of(stack: str):
    return make_plan(spec_of(stack))


def test_pool_labels_select_pool_device_plugin_and_mig_configs():
    pools = {pool.name: pool for pool in plan_of("onprem-dgx").pools}
    assert pools["dgx-mig"].labels[MIG_CONFIG_LABEL] == "dgx-mig"
    assert MIG_CONFIG_LABEL not in pools["dgx-train"].labels
    for name, pool in pools.items():
        assert pool.labels[POOL_LABEL] == name
        assert pool.labels[DEVICE_PLUGIN_CONFIG_LABEL] == name
        assert pool.labels["workload"] == pool.spec.labels["workload"]


def test_a_tainted_gpu_pool_carries_the_gpu_taint_first():
    """The GPU taint comes first, then the pool's own (the spec refuses a pool taint on nvidia.com/gpu)."""
    raw = plan_of("eks-t4").spec.model_dump(mode="json")
    raw["node_pools"][0]["taints"] = [{"key": "dedicated", "value": "inference", "effect": "NoExecute"}]
    [pool] = make_plan(ClusterSpec.model_validate(raw)).pools
    assert [(t.key, t.effect) for t in pool.taints] == [("nvidia.com/gpu", "NoSchedule"), ("dedicated", "NoExecute")]


@pytest.mark.parametrize(
    ("stack", "pool", "gpus_per_node", "max_gpus"),
    [
        ("eks-t4", "t4-inference", 1, 10),
        ("eks-h100", "h100-efa", 8, 128),
        ("onprem-dgx", "dgx-train", 8, 32),
        ("onprem-k3s", "workstation", 2, 2),
    ],
)
def test_gpu_counts_come_from_the_catalog_or_the_hosts(stack, pool, gpus_per_node, max_gpus):
    [found] = [p for p in plan_of(stack).pools if p.name == pool]
    assert (found.gpus_per_node, found.max_gpus) == (gpus_per_node, max_gpus)


def test_cost_bound_is_every_node_at_the_preferred_on_demand_price():
    [pool] = plan_of("eks-t4").pools
    price = catalog().instance_types["g4dn.xlarge"].on_demand_usd_per_hour
    assert pool.max_on_demand_usd_per_hour == pytest.approx(price * pool.spec.scaling.max)
    assert all(p.max_on_demand_usd_per_hour is None for p in plan_of("onprem-dgx").pools)


def test_efa_interfaces_only_on_efa_pools():
    pools = {pool.name: pool for pool in plan_of("eks-h100").pools}
    assert pools["h100-efa"].efa_interfaces == catalog().instance_types["p5.48xlarge"].efa_interfaces
    assert pools["a100-mig"].efa_interfaces == 0


def test_workloads_run_in_tenant_namespaces_or_default():
    assert plan_of("eks-h100").workload_namespaces == ("llm-training", "research")
    raw = plan_of("eks-t4").spec.model_dump(mode="json")
    raw["tenants"] = []
    raw["autoscaling"]["workloads"] = []  # its workload names the tenant's namespace
    assert make_plan(ClusterSpec.model_validate(raw)).workload_namespaces == ("default",)
