"""``gpucluster preflight`` and the cost estimate, against moto's AWS and botocore's Stubber.

moto answers instance type offerings (with its per-zone data) and SSM; the calls moto does not implement
(Service Quotas for EC2, spot placement scores, EKS cluster versions) are answered by botocore's Stubber,
which also checks that each call is made with the expected parameters.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from typer.testing import CliRunner

from gpucluster.aws import preflight as pf
from gpucluster.aws.cost import HOURS_PER_MONTH, PriceFileError, load_prices, on_demand_nodes, pool_costs
from gpucluster.catalog import catalog
from gpucluster.cli import app
from gpucluster.plan import make_plan
from gpucluster.render.aws_nodes import ami_parameter
from stacks import ROOT, spec_of

runner = CliRunner()


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.session.Session(region_name="us-east-1")


_Session = boto3.session.Session  # before any test replaces it


def _client(service: str):
    return _Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y").client(service)


# --- offerings (moto) -------------------------------------------------------------------------------------------


def test_offerings_pass_where_moto_offers_every_type(aws):
    findings = pf.check_offerings(make_plan(spec_of("eks-t4")), aws.client("ec2"))
    assert {f.subject for f in findings} == {
        "t4-inference: g4dn.xlarge",
        "t4-inference: g4dn.2xlarge",
        "t4-inference: g4dn.4xlarge",
    }
    assert {f.status for f in findings} == {"pass"}


def test_a_type_missing_from_some_zones_warns_and_from_all_fails(aws, load_raw):
    offered = {
        o["Location"]
        for o in aws.client("ec2").describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["g4dn.xlarge"]}]
        )["InstanceTypeOfferings"]
    }
    zones = sorted(f"us-east-1{letter}" for letter in "abcdef")
    missing = [zone for zone in zones if zone not in offered]
    assert missing, "moto's data has a us-east-1 zone without g4dn.xlarge"
    raw = load_raw("eks-t4")
    raw["aws"]["availability_zones"] = [sorted(offered)[0], missing[0]]
    raw["node_pools"][0]["instance_types"] = ["g4dn.xlarge"]
    spec = spec_of("eks-t4", aws=raw["aws"], node_pools=raw["node_pools"])
    (finding,) = pf.check_offerings(make_plan(spec), aws.client("ec2"))
    assert finding.status == "warn" and missing[0] in finding.detail
    raw["aws"]["availability_zones"] = [missing[0], sorted(offered)[0]]
    raw["node_pools"][0]["availability_zone"] = missing[0]
    spec = spec_of("eks-t4", aws=raw["aws"], node_pools=raw["node_pools"])
    (finding,) = pf.check_offerings(make_plan(spec), aws.client("ec2"))
    assert finding.status == "fail"


# --- quotas, spot placement, AMI and EKS version (Stubber) -----------------------------------------------------


def test_vcpu_needs_split_mixed_pools_into_on_demand_and_spot():
    # eks-t4: max 10 nodes, base 1 on demand, 0 % above it, sized by g4dn.4xlarge (16 vCPUs).
    assert pf.vcpu_needs(make_plan(spec_of("eks-t4"))) == {("g", "on-demand"): 16, ("g", "spot"): 9 * 16}


def test_quotas_fail_when_max_size_needs_more_vcpus_than_allowed():
    plan = make_plan(spec_of("eks-t4"))
    quotas = _client("service-quotas")
    with Stubber(quotas) as stub:
        for code, value in (("L-DB2E81BA", 64.0), ("L-3819A6DF", 100.0)):
            stub.add_response(
                "get_service_quota",
                {"Quota": {"QuotaCode": code, "Value": value}},
                {"ServiceCode": "ec2", "QuotaCode": code},
            )
        findings = {f.subject: f for f in pf.check_quotas(plan, quotas)}
        stub.assert_no_pending_responses()
    assert findings["Running On-Demand G and VT instances"].status == "pass"
    spot = findings["All G and VT Spot Instance Requests"]
    assert spot.status == "fail" and "144 vCPUs needed at max size, quota 100" in spot.detail


def test_unreadable_quota_is_a_warning_not_a_pass():
    quotas = _client("service-quotas")
    with Stubber(quotas) as stub:
        for _ in range(2):
            stub.add_client_error("get_service_quota", "AccessDeniedException", "denied")
        findings = pf.check_quotas(make_plan(spec_of("eks-t4")), quotas)
    assert {f.status for f in findings} == {"warn"}
    assert all("servicequotas:GetServiceQuota" in f.detail for f in findings)


@pytest.mark.parametrize("score,status", [(9, "pass"), (2, "warn")])
def test_spot_placement_scores(score, status):
    ec2 = _client("ec2")
    with Stubber(ec2) as stub:
        stub.add_response(
            "get_spot_placement_scores",
            {"SpotPlacementScores": [{"Region": "us-east-1", "AvailabilityZoneId": "use1-az1", "Score": score}]},
            {
                "InstanceTypes": ["g4dn.xlarge", "g4dn.2xlarge", "g4dn.4xlarge"],
                "TargetCapacity": 9,
                "TargetCapacityUnitType": "units",
                "SingleAvailabilityZone": True,
                "RegionNames": ["us-east-1"],
            },
        )
        (finding,) = pf.check_spot_placement(make_plan(spec_of("eks-t4")), ec2)
    assert finding.status == status and f"best score {score}/10 for 9 spot nodes" in finding.detail


def test_on_demand_pools_ask_for_no_spot_scores():
    ec2 = _client("ec2")
    with Stubber(ec2):  # any call would fail: nothing is stubbed
        assert pf.check_spot_placement(make_plan(spec_of("eks-h100")), ec2) == []


def test_missing_gpu_ami_fails(aws):
    (finding,) = pf.check_ami(make_plan(spec_of("eks-t4")), aws.client("ssm"))
    assert finding.status == "fail" and "no EKS GPU AMI for Kubernetes 1.33" in finding.detail


def test_present_gpu_ami_passes():
    ssm = _client("ssm")
    name = ami_parameter("1.33", "nvidia", "image_id")
    with Stubber(ssm) as stub:
        stub.add_response("get_parameter", {"Parameter": {"Name": name, "Value": "ami-0abc"}}, {"Name": name})
        (finding,) = pf.check_ami(make_plan(spec_of("eks-t4")), ssm)
    assert (finding.status, finding.detail) == ("pass", "ami-0abc")


@pytest.mark.parametrize(
    "versions,status", [([], "fail"), ([{"clusterVersion": "1.33", "versionStatus": "EXTENDED_SUPPORT"}], "warn")]
)
def test_eks_version(versions, status):
    eks = _client("eks")
    with Stubber(eks) as stub:
        stub.add_response("describe_cluster_versions", {"clusterVersions": versions}, {"clusterVersions": ["1.33"]})
        (finding,) = pf.check_eks_version(make_plan(spec_of("eks-t4")), eks)
    assert finding.status == status


# --- the command -----------------------------------------------------------------------------------------------


class _StubbedSession:
    """A boto3 session whose clients answer from Stubbers (moto lacks quotas, spot scores, EKS versions)."""

    def __init__(self, quota: float):
        self.clients = {name: _client(name) for name in ("ec2", "service-quotas", "ssm", "eks")}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        offerings = [
            {"InstanceType": t, "LocationType": "availability-zone", "Location": z}
            for t in ("g4dn.xlarge", "g4dn.2xlarge", "g4dn.4xlarge")
            for z in ("us-east-1a", "us-east-1b", "us-east-1c")
        ]
        self.stubs["ec2"].add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": offerings})
        self.stubs["ec2"].add_response("get_spot_placement_scores", {"SpotPlacementScores": []})
        for code in ("L-DB2E81BA", "L-3819A6DF"):
            response = {"Quota": {"QuotaCode": code, "Value": quota}}
            self.stubs["service-quotas"].add_response("get_service_quota", response)
        parameter = {"Parameter": {"Name": ami_parameter("1.33", "nvidia", "image_id"), "Value": "ami-0abc"}}
        self.stubs["ssm"].add_response("get_parameter", parameter)
        versions = {"clusterVersions": [{"clusterVersion": "1.33", "versionStatus": "STANDARD_SUPPORT"}]}
        self.stubs["eks"].add_response("describe_cluster_versions", versions)
        for stub in self.stubs.values():
            stub.activate()

    def client(self, name: str):
        return self.clients[name]


@pytest.mark.parametrize("quota,exit_code,failed", [(1000.0, 0, 0), (50.0, 1, 1)])
def test_preflight_command_prints_the_table_and_exits_1_on_a_failure(monkeypatch, quota, exit_code, failed):
    monkeypatch.setattr(boto3.session, "Session", lambda **kwargs: _StubbedSession(quota))
    result = runner.invoke(app, ["preflight", "--stack", str(ROOT / "stacks/Pulumi.eks-t4.yaml")])
    assert result.exit_code == exit_code, result.output
    for check in ("offering", "quota", "spot-placement", "ami", "eks-version"):
        assert check in result.output
    assert f"1 warnings, {failed} failed" in result.output  # no spot scores came back: a warning


def test_preflight_without_credentials_exits_2(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance metadata service
    result = runner.invoke(app, ["preflight", "--stack", str(ROOT / "stacks/Pulumi.eks-t4.yaml")])
    assert result.exit_code == 2
    assert "no AWS credentials" in result.output


def test_preflight_refuses_on_prem_stacks():
    result = runner.invoke(app, ["preflight", "--stack", str(ROOT / "stacks/Pulumi.onprem-dgx.yaml")])
    assert result.exit_code == 2 and "preflight checks an AWS account" in result.output


# --- cost ------------------------------------------------------------------------------------------------------


def test_mixed_pool_cost_splits_on_demand_and_spot_like_the_auto_scaling_group():
    plan = make_plan(spec_of("eks-t4"))
    pool = plan.pools[0]
    assert [on_demand_nodes(pool, n) for n in (0, 1, 2, 10)] == [0, 1, 1, 1]
    (cost,) = pool_costs(plan, spot_discount=0.5)
    on_demand = catalog().instance_types["g4dn.xlarge"].on_demand_usd_per_hour
    assert cost.sizes["desired"].hourly == pytest.approx(on_demand + on_demand * 0.5)
    assert cost.sizes["max"].monthly == pytest.approx((on_demand + 9 * on_demand * 0.5) * HOURS_PER_MONTH)


def test_price_file_overrides_catalog_prices(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("g4dn.xlarge: {on_demand: 1.0, spot: 0.1}\n")
    (cost,) = pool_costs(make_plan(spec_of("eks-t4")), prices=load_prices(prices))
    assert cost.sizes["max"].hourly == pytest.approx(1.0 + 9 * 0.1)


@pytest.mark.parametrize("text", ["- a list", "g4dn.xlarge: {spot: -1}", "g4dn.xlarge: {hourly: 2}", "g4dn.xlarge: 3"])
def test_bad_price_files_are_refused(tmp_path, text):
    prices = tmp_path / "prices.yaml"
    prices.write_text(text)
    with pytest.raises(PriceFileError):
        load_prices(prices)
