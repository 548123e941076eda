"""The GPU resource names each pool advertises, as the plan derives them for quotas and admission."""

from __future__ import annotations

import pytest

from gpucluster.plan import make_plan, pool_gpu_resources
from gpucluster.spec import ClusterSpec
from stacks import spec_of


def dgx_with_dev_sharing(sharing: dict) -> ClusterSpec:
    raw = spec_of("onprem-dgx").model_dump(mode="json")
    raw["node_pools"][2]["sharing"] = sharing
    return ClusterSpec.model_validate(raw)


@pytest.mark.parametrize(
    ("sharing", "per_gpu"),
    [
        ({"mode": "none"}, {"nvidia.com/gpu": 1}),
        ({"mode": "time-slicing", "replicas": 4}, {"nvidia.com/gpu": 4}),
        ({"mode": "time-slicing", "replicas": 3, "rename_by_default": True}, {"nvidia.com/gpu.shared": 3}),
        ({"mode": "mig", "strategy": "single", "profile": "2g.20gb"}, {"nvidia.com/gpu": 3}),
        (
            {"mode": "mig", "strategy": "mixed", "layout": {"3g.40gb": 1, "1g.10gb": 2}},
            {"nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-1g.10gb": 2},
        ),
    ],
)
def test_each_sharing_mode_advertises_its_resource_names(sharing, per_gpu):
    spec = dgx_with_dev_sharing(sharing)
    assert pool_gpu_resources(spec.node_pools[2]) == per_gpu
    dev = make_plan(spec).pools[2]
    assert dev.gpu_resources == {name: count * dev.max_gpus for name, count in per_gpu.items()}


def test_cluster_resources_list_nvidia_gpu_first_then_the_rest_sorted():
    plan = make_plan(spec_of("eks-h100"))
    assert plan.gpu_resources == (
        "nvidia.com/gpu",
        "nvidia.com/mig-1g.5gb",
        "nvidia.com/mig-2g.10gb",
        "nvidia.com/mig-3g.20gb",
    )
    assert make_plan(spec_of("eks-t4")).gpu_resources == ("nvidia.com/gpu",)


def h100_with_research_mig_grants() -> ClusterSpec:
    tenants = spec_of("eks-h100").model_dump()["tenants"]
    tenants[1]["resources"] = {"nvidia.com/mig-3g.20gb": 4, "nvidia.com/mig-2g.10gb": 4, "nvidia.com/mig-1g.5gb": 8}
    return spec_of("eks-h100", tenants=tenants)


def test_tenant_grants_quote_every_resource_zero_unless_granted():
    plan = make_plan(h100_with_research_mig_grants())
    training, research = plan.spec.tenants
    assert plan.tenant_grants(training) == {
        "nvidia.com/gpu": 128,
        "nvidia.com/mig-1g.5gb": 0,
        "nvidia.com/mig-2g.10gb": 0,
        "nvidia.com/mig-3g.20gb": 0,
    }
    assert plan.tenant_grants(research) == {
        "nvidia.com/gpu": 32,
        "nvidia.com/mig-1g.5gb": 8,
        "nvidia.com/mig-2g.10gb": 4,
        "nvidia.com/mig-3g.20gb": 4,
    }
