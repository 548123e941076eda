"""Spec fields of the AWS back end: node autoscaler, NAT, endpoint access, admins, owner and tags."""

from __future__ import annotations

import pytest

from gpucluster.stackfile import SpecError, parse_spec


def problems(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test")
    return [f"{'.'.join(map(str, p.path))}: {p.message}" for p in caught.value.problems]


def test_aws_defaults(load_raw):
    spec = parse_spec(load_raw("eks-h100"), "test")
    assert spec.aws is not None
    assert (spec.aws.nat_gateways, spec.aws.endpoint_access, spec.aws.public_access_cidrs) == (
        "per-az",
        "public-and-private",
        None,
    )
    assert spec.autoscaling.node_autoscaler == "cluster-autoscaler"


def test_node_autoscalers_only_on_eks(load_raw):
    raw = load_raw("onprem-kubeadm")
    raw["autoscaling"] = {"node_autoscaler": "karpenter"}
    (problem,) = problems(raw)
    assert problem.startswith("autoscaling.node_autoscaler: node autoscalers resize EKS pools")


def test_the_old_boolean_is_gone(load_raw):
    raw = load_raw("eks-t4")
    raw["autoscaling"] = {"cluster_autoscaler": True}
    (problem,) = problems(raw)
    assert problem.startswith("autoscaling.cluster_autoscaler: unknown field")


def test_a_private_endpoint_takes_no_public_cidrs(load_raw):
    raw = load_raw("eks-t4")
    raw["aws"].update(endpoint_access="private", public_access_cidrs=["203.0.113.0/24"])
    (problem,) = problems(raw)
    assert problem.startswith("aws.public_access_cidrs: a private endpoint has no public access")


@pytest.mark.parametrize(
    "arn", ["arn:aws:iam::123:role/admins", "arn:aws:sts::123456789012:assumed-role/x/y", "platform-admins"]
)
def test_admins_are_iam_role_or_user_arns(load_raw, arn):
    raw = load_raw("eks-t4")
    raw["aws"]["admins"] = [arn]
    (problem,) = problems(raw)
    assert problem.startswith("aws.admins.0:")


def test_admins_accept_roles_and_users(load_raw):
    raw = load_raw("eks-t4")
    admins = ["arn:aws:iam::123456789012:role/platform/admins", "arn:aws-us-gov:iam::123456789012:user/ops"]
    raw["aws"]["admins"] = admins
    spec = parse_spec(raw, "test")
    assert spec.aws is not None and spec.aws.admins == admins


def test_karpenter_needs_the_system_pool_to_run_on(load_raw):
    raw = load_raw("eks-t4")
    del raw["system_pool"]
    raw["node_pools"][0]["gpu_taint"] = False
    raw["autoscaling"]["node_autoscaler"] = "karpenter"
    (problem,) = problems(raw)
    assert problem.startswith("system_pool: Karpenter runs on the system pool's nodes")
