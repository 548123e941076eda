"""The Pulumi program under pulumi.runtime mocks: a valid stack config loads, a bad one stops the run."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest
import yaml

from gpucluster.program.stack import run

ROOT = Path(__file__).resolve().parents[1]


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args.typ)
        return [f"{args.name}-id", args.inputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def stack_config(stack: str) -> dict:
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return document["config"]


def use_config(stack: str, config: dict) -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="gpucluster", stack=stack, preview=False)
    pulumi.runtime.set_all_config(
        {key: json.dumps(value) if not isinstance(value, str) else value for key, value in config.items()}
    )
    return mocks


@pytest.mark.parametrize("stack", ["eks-t4", "onprem-dgx"])
def test_program_reads_the_stack_spec(stack):
    config = stack_config(stack)
    use_config(stack, config)
    plan = run()
    raw = config["gpucluster:cluster"]
    assert plan.spec.name == raw["name"]
    assert [pool.name for pool in plan.pools] == [pool["name"] for pool in raw["node_pools"]]


def test_bad_spec_stops_the_program_before_any_resource():
    config = stack_config("eks-t4")
    config["gpucluster:cluster"]["node_pools"][0]["instance_types"] = ["g4dn.xlarge", "g5.xlarge"]
    mocks = use_config("eks-t4", config)
    with pytest.raises(pulumi.RunError, match="invalid cluster spec"):
        run()
    assert mocks.resources == []


def test_missing_spec_is_a_config_error():
    use_config("empty", {"aws:region": "us-east-1"})
    with pytest.raises(pulumi.ConfigMissingError):
        run()


def test_provider_region_must_match_the_spec():
    config = stack_config("eks-t4")
    config["aws:region"] = "eu-west-1"
    use_config("eks-t4", config)
    with pytest.raises(pulumi.RunError):
        run()
