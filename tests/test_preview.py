"""`gpucluster preview`: the offline resource tree and the pools' cost, and its bad-input exits."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gpucluster.aws.cost import pool_costs
from gpucluster.cli import app
from gpucluster.plan import make_plan
from stacks import ROOT, spec_of

runner = CliRunner()
STACKS = ["--stacks-dir", str(ROOT / "stacks")]


def preview(*args: str):
    return runner.invoke(app, ["preview", *STACKS, *args], env={"COLUMNS": "400"})


def test_eks_h100_tree_shows_what_pulumi_up_creates():
    result = preview("--stack", "eks-h100")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    efa = next(line for line in lines if "LaunchTemplate training-h100-efa" in line)
    assert "EFA interfaces: 32" in efa and "placement group: training-h100-efa" in efa
    assert "tokens required, hops 2" in efa and "1024 GiB gp3 encrypted=true" in efa
    system = next(line for line in lines if "── NodeGroup training-system" in line)
    assert "taints: none" in system
    assert any(
        "Role training-cluster-autoscaler" in line and "kube-system:cluster-autoscaler" in line for line in lines
    )
    assert any("Release gpu-operator" in line for line in lines)


def test_cost_per_pool_at_min_desired_and_max():
    result = preview("--stack", "eks-t4")
    assert result.exit_code == 0, result.output
    (cost,) = pool_costs(make_plan(spec_of("eks-t4")))
    row = next(line for line in result.output.splitlines() if line.startswith("│ t4-inference"))
    for size in ("min", "desired", "max"):
        assert f"{cost.sizes[size].hourly:,.2f} ({cost.sizes[size].nodes})" in row
        assert f"{cost.sizes[size].monthly:,.0f}" in row
    assert "spot assumed at 40% of on-demand" in result.output


def test_a_price_file_and_a_spot_discount_change_the_estimate(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("g4dn.xlarge: {on_demand: 1.0, spot: 0.25}\n")
    result = preview("--stack", "eks-t4", "--prices", str(prices))
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ t4-inference"))
    # mixed: base 1 on demand, 0 % above it: min 1 node = 1.00, desired 2 = 1.25, max 10 = 1 + 9 * 0.25
    assert "1.00 (1)" in row and "1.25 (2)" in row and "3.25 (10)" in row
    cheap = preview("--stack", "eks-t4", "--spot-discount", "0.9")
    expensive = preview("--stack", "eks-t4", "--spot-discount", "0")
    assert "spot assumed at 10% of on-demand" in cheap.output
    assert "spot assumed at 100% of on-demand" in expensive.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stack", "eks-t4", "--spot-discount", "1.5"], "--spot-discount 1.5"),
        (["--stack", "eks-t4", "--prices", "/nonexistent/prices.yaml"], "cannot read prices"),
        (["--stack", "no-such-stack"], "no such stack file"),
    ],
)
def test_bad_input_exits_2(args, message):
    result = preview(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_a_bad_spec_exits_2_before_evaluating(tmp_path):
    text = (ROOT / "stacks" / "Pulumi.eks-h100.yaml").read_text().replace("availability_zone: us-west-2b", "")
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text(text)
    result = runner.invoke(app, ["preview", "--stack", str(bad)])
    assert result.exit_code == 2
    assert "availability_zone" in result.output
