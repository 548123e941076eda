"""Run the Pulumi program without a cloud account: pulumi.runtime mocks record every resource it registers.

Tests, ``gpucluster preview`` and the benchmarks evaluate a stack here. The mocks echo each resource's
inputs back as its state and add the few outputs the program reads from the cloud (the cluster's
endpoint and OIDC issuer, a node group's Auto Scaling group), with values that are plainly fake;
data-source calls (SSM parameters, add-on versions) answer with placeholders naming what would be
resolved at deploy time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

FAKE_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Registered:
    """One resource the program registered: its URN, its parent's URN, type token, name and inputs."""

    urn: str
    parent: str
    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]


def _cloud_outputs(type_: str, name: str, inputs: dict) -> dict:
    """What the cloud would add to a resource's state that the program reads back."""
    arn = f"arn:aws:mock:{FAKE_ACCOUNT}:{name}"
    if type_ == "aws:eks/cluster:Cluster":
        issuer = f"https://oidc.eks.mock.amazonaws.com/id/{name.upper()}"
        return {
            "arn": arn,
            "endpoint": f"https://{name}.eks.mock.amazonaws.com",
            "certificateAuthority": {"data": "TU9DSy1DQQ=="},
            "identities": [{"oidcs": [{"issuer": issuer}]}],
            "vpcConfig": {**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": f"sg-{name}-cluster"},
        }
    if type_ == "aws:eks/nodeGroup:NodeGroup":
        return {
            "arn": arn,
            "nodeGroupName": f"{name}-mock",
            "resources": [{"autoscalingGroups": [{"name": f"eks-{name}-asg"}]}],
        }
    if type_ == "aws:ec2/launchTemplate:LaunchTemplate":
        return {"arn": arn, "latestVersion": 1}
    if type_ == "aws:ec2/instance:Instance":  # an address from the documentation range
        return {"arn": arn, "publicIp": f"203.0.113.{sum(map(ord, name)) % 250 + 1}", "privateIp": "10.0.0.10"}
    if type_ == "aws:sqs/queue:Queue":
        return {"arn": arn, "url": f"https://sqs.mock.amazonaws.com/{FAKE_ACCOUNT}/{name}"}
    return {"arn": arn} if type_.startswith("aws:") else {}


class OfflineMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        return [f"{args.name}-id", {**args.inputs, **_cloud_outputs(args.typ, args.name, args.inputs)}]

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:ssm/getParameter:getParameter":
            return {"name": args.args["name"], "value": f"<resolved at deploy: {args.args['name']}>", "type": "String"}
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": "<resolved at deploy: newest matching AMI>", "imageId": "<resolved at deploy>"}
        if args.token == "aws:eks/getAddonVersion:getAddonVersion":
            return {"addonName": args.args["addonName"], "version": "<latest for the Kubernetes version>"}
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also keeping each registration's parent and inputs in registration order."""

    def __init__(self, mocks: OfflineMocks):
        super().__init__(mocks)
        self.registered: list[Registered] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            entry = Registered(response.urn, request.parent, request.type, request.name, request.custom, inputs)
            with self._lock:
                self.registered.append(entry)
        return response


def evaluate(
    stack: str, config: dict[str, Any], program: Callable[[], Any], monitor: RecordingMonitor | None = None
) -> list[Registered]:
    """Run ``program`` as stack ``stack`` with ``config`` (stack-file keys and values) under mocks.

    Returns every resource registered (``monitor.registered`` also holds them when the program fails).
    Exceptions from the program (an invalid spec) propagate.
    """
    monitor = monitor or RecordingMonitor(OfflineMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project="gpucluster", stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(
        {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}
    )
    _sync_await(run_pulumi_func(program))
    return list(monitor.registered)
