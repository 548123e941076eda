"""Spec rules on the tenancy fields: GPU resource grants (and, below, pools, egress, the tenancy mode)."""

from __future__ import annotations

import pytest

from gpucluster.spec import ClusterSpec
from gpucluster.stackfile import SpecError, parse_spec
from stacks import spec_of


def raw_of(stack: str) -> dict:
    return spec_of(stack).model_dump(mode="json", exclude_defaults=True)


def problems(raw: dict) -> dict[tuple, str]:
    """Field path -> message of every problem parse_spec reports; empty when the spec is valid."""
    try:
        parse_spec(raw, "test.yaml")
    except SpecError as error:
        return {p.path: p.message for p in error.problems}
    return {}


def with_tenant(stack: str, index: int = 0, **fields) -> dict:
    raw = raw_of(stack)
    raw["tenants"][index].update(fields)
    return raw


def test_grants_for_advertised_gpu_resources_are_accepted():
    raw = with_tenant("eks-h100", 1, resources={"nvidia.com/mig-1g.5gb": 3})
    assert problems(raw) == {}
    assert ClusterSpec.model_validate(raw).tenants[1].resources == {"nvidia.com/mig-1g.5gb": 3}


def test_a_grant_for_a_resource_no_pool_advertises_is_refused():
    raw = with_tenant("eks-h100", 1, resources={"nvidia.com/mig-7g.40gb": 1})
    found = problems(raw)
    message = found[("tenants", 1, "resources", "nvidia.com/mig-7g.40gb")]
    assert "nvidia.com/mig-1g.5gb" in message and "nvidia.com/gpu" in message


def test_nvidia_gpu_is_granted_with_gpus_not_resources():
    found = problems(with_tenant("eks-t4", resources={"nvidia.com/gpu": 2}))
    assert "'gpus'" in found[("tenants", 0, "resources", "nvidia.com/gpu")]


def test_negative_grants_are_refused():
    found = problems(with_tenant("eks-h100", 1, resources={"nvidia.com/mig-1g.5gb": -1}))
    assert any(path[:3] == ("tenants", 1, "resources") for path in found)


@pytest.mark.parametrize(
    ("sharing", "advertised"),
    [
        ({"mode": "time-slicing", "replicas": 4, "rename_by_default": True}, "nvidia.com/gpu.shared"),
        ({"mode": "mig", "strategy": "mixed", "layout": {"3g.40gb": 2}}, "nvidia.com/mig-3g.40gb"),
    ],
)
def test_renamed_and_mig_resources_can_be_granted(sharing, advertised):
    raw = raw_of("onprem-dgx")
    raw["node_pools"][2]["sharing"] = sharing
    raw["tenants"][0]["resources"] = {advertised: 2}
    assert problems(raw) == {}


def test_pools_must_exist_once_each():
    found = problems(with_tenant("onprem-dgx", pools=["dgx-train", "dgx-gone", "dgx-train"]))
    assert "dgx-train, dgx-mig, dgx-dev" in found[("tenants", 0, "pools", 1)]
    assert "twice" in found[("tenants", 0, "pools", 2)]


def test_an_empty_pool_list_is_refused():
    assert "omit" in problems(with_tenant("onprem-dgx", pools=[]))[("tenants", 0, "pools")]


def test_pools_need_kubernetes_1_30():
    raw = with_tenant("onprem-dgx", pools=["dgx-train"])
    raw["kubernetes"]["version"] = "1.29"
    raw["network"]["fabric"] = "ethernet"  # InfiniBand's network operator needs 1.32 itself
    del raw["network"]["ib_hcas"]  # InfiniBand HCAs only with fabric infiniband
    message = problems(raw)[("tenants", 0, "pools")]
    assert "1.30" in message and "1.29" in message
    raw["tenants"][0].pop("pools")
    raw["tenants"][1].pop("pools")
    assert problems(raw) == {}


def test_grants_must_come_from_the_tenants_pools():
    raw = with_tenant("eks-h100", 1, pools=["h100-efa"], resources={"nvidia.com/mig-1g.5gb": 2})
    message = problems(raw)[("tenants", 1, "resources", "nvidia.com/mig-1g.5gb")]
    assert "its pools advertise: nvidia.com/gpu" in message


def test_gpus_need_a_pool_advertising_whole_gpus():
    raw = with_tenant("eks-h100", 1, pools=["a100-mig"], gpus=4, resources={"nvidia.com/mig-1g.5gb": 2})
    assert "resources" in problems(raw)[("tenants", 1, "gpus")]
    raw["tenants"][1]["gpus"] = 0
    assert problems(raw) == {}


@pytest.mark.parametrize("egress", ["https", "cluster-only", "internet", ["10.50.0.0/16"], []])
def test_egress_choices_are_accepted(egress):
    assert problems(with_tenant("onprem-dgx", egress=egress)) == {}


@pytest.mark.parametrize("egress", ["everywhere", ["10.50.0.0/33"], "10.50.0.0/16"])
def test_bad_egress_is_refused_at_its_path(egress):
    message = problems(with_tenant("onprem-dgx", egress=egress))[("tenants", 0, "egress")]
    assert "'10.50.0.0/16'" in message
