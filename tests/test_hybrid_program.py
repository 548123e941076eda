"""The hybrid program (seed 003) under offline mocks: EC2 machines, then the roles converge them."""

from __future__ import annotations

import pytest
from test_aws_program import Program, evaluated

INSTANCE = "aws:ec2/instance:Instance"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DYNAMIC = "pulumi-python:dynamic:Resource"


@pytest.fixture(scope="module")
def hybrid() -> Program:
    return evaluated("hybrid-crio")


def test_machines_named_like_the_inventory_with_secure_defaults(hybrid):
    instances = {r.name: r.inputs for r in hybrid.of_type(INSTANCE)}
    assert set(instances) == {"crio-lab-control-plane-1", "crio-lab-l4-workers-1", "crio-lab-l4-workers-2"}
    for inputs in instances.values():
        assert inputs["metadataOptions"]["httpTokens"] == "required"
        assert inputs["rootBlockDevice"]["encrypted"] is True
        assert inputs["rootBlockDevice"]["volumeType"] == "gp3"
        assert inputs["associatePublicIpAddress"] is True
    assert instances["crio-lab-l4-workers-1"]["instanceType"] == "g6.2xlarge"
    assert instances["crio-lab-control-plane-1"]["instanceType"] == "m6i.xlarge"


def test_only_admin_addresses_reach_ssh_and_the_api(hybrid):
    group = hybrid.named(SECURITY_GROUP, "crio-lab-machines").inputs
    open_rules = [rule for rule in group["ingress"] if rule.get("cidrBlocks")]
    assert {(r["fromPort"], tuple(r["cidrBlocks"])) for r in open_rules} == {
        (22, ("198.51.100.0/24",)),
        (6443, ("198.51.100.0/24",)),
    }
    assert [r for r in group["ingress"] if r.get("self")] == [
        {"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True, "description": "between machines"}
    ]


def test_ansible_converges_the_created_machines_at_their_addresses(hybrid):
    (run,) = hybrid.of_type(DYNAMIC)
    inventory = run.inputs["inventory"]["all"]
    addresses = {name: host.get("ansible_host") for name, host in inventory["hosts"].items()}
    assert set(addresses) == {"control-plane-1", "l4-workers-1", "l4-workers-2"}
    assert all(address and address.startswith("203.0.113.") for address in addresses.values())
    assert inventory["vars"]["ansible_user"] == "ubuntu"


@pytest.mark.parametrize(
    "change,path",
    [
        (lambda raw: raw["aws"].pop("ssh_public_key"), "aws.ssh_public_key"),
        (lambda raw: raw["aws"].update(admin_cidrs=["0.0.0.0/0"]), "aws.admin_cidrs[0]"),
        (lambda raw: raw["aws"].update(admin_cidrs=[]), "aws.admin_cidrs"),
    ],
)
def test_hybrid_machines_need_a_key_and_narrow_admin_addresses(load_raw, change, path):
    from gpucluster.stackfile import SpecError, format_path, parse_spec

    raw = load_raw("hybrid-crio")
    change(raw)
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test")
    assert f"gpucluster:cluster.{path}" in {format_path(p.path) for p in caught.value.problems}


def test_ssh_settings_are_refused_where_nothing_is_provisioned_to_log_in_to(load_raw):
    from gpucluster.stackfile import SpecError, format_path, parse_spec

    raw = load_raw("eks-t4")
    raw["aws"]["admin_cidrs"] = ["198.51.100.0/24"]
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test")
    assert "gpucluster:cluster.aws.admin_cidrs" in {format_path(p.path) for p in caught.value.problems}
