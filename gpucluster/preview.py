"""``gpucluster preview``: what ``pulumi up`` would create, from an offline evaluation of the program.

The resources are shown as a tree (components and their children) with the properties that matter per
type; values AWS only knows at deploy time (AMI release, add-on versions) are shown as placeholders.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from gpucluster.program.offline import Registered

MAX_LIST = 4


def _short(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():  # the mocks hand numbers back as floats
        return str(int(value))
    if isinstance(value, list):
        items = [_short(v) for v in value[:MAX_LIST]]
        more = f", +{len(value) - MAX_LIST}" if len(value) > MAX_LIST else ""
        return f"[{', '.join(items)}{more}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + "}"
    return str(value)


def _range(low: float, high: float, desired: float) -> str:
    return f"{_short(low)}..{_short(high)} (desired {_short(desired)})"


def _trusted(policy: str) -> str:
    """Who may assume a role: a service, or the one service account of an IRSA trust policy."""
    statement = json.loads(policy)["Statement"][0]
    if "Service" in statement["Principal"]:
        return f"service {statement['Principal']['Service']}"
    condition = statement["Condition"]["StringEquals"]
    return next(
        f"service account {v.removeprefix('system:serviceaccount:')}"
        for k, v in condition.items()
        if k.endswith(":sub")
    )


def _launch_template(inputs: dict) -> dict:
    volume = inputs["blockDeviceMappings"][0]["ebs"]
    metadata = inputs["metadataOptions"]
    facts: dict[str, Any] = {
        "IMDS": f"tokens {metadata['httpTokens']}, hops {_short(metadata['httpPutResponseHopLimit'])}",
        "root": f"{_short(volume['volumeSize'])} GiB {volume['volumeType']} encrypted={volume['encrypted']}",
    }
    if "networkInterfaces" in inputs:
        facts["EFA interfaces"] = len(inputs["networkInterfaces"])
    if "placement" in inputs:
        facts["placement group"] = inputs["placement"]["groupName"]
    if "imageId" in inputs:
        facts["AMI"] = inputs["imageId"]
    return facts


def _node_group(inputs: dict) -> dict:
    scaling = inputs["scalingConfig"]
    facts = {
        "capacity": inputs["capacityType"],
        "types": inputs["instanceTypes"],
        "nodes": _range(scaling["minSize"], scaling["maxSize"], scaling["desiredSize"]),
        "AMI": f"{inputs['amiType']} {inputs.get('releaseVersion', '')}".strip(),
        "labels": inputs.get("labels", {}),
    }
    facts["taints"] = [f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in inputs.get("taints", [])] or "none"
    return facts


def _auto_scaling_group(inputs: dict) -> dict:
    policy = inputs["mixedInstancesPolicy"]
    distribution = policy["instancesDistribution"]
    return {
        "nodes": _range(inputs["minSize"], inputs["maxSize"], inputs["desiredCapacity"]),
        "on-demand": f"base {_short(distribution['onDemandBaseCapacity'])}, "
        f"{_short(distribution['onDemandPercentageAboveBaseCapacity'])}% above",
        "spot": distribution["spotAllocationStrategy"],
        "types": [o["instanceType"] for o in policy["launchTemplate"]["overrides"]],
        "capacity rebalance": inputs["capacityRebalance"],
    }


SUMMARIES = {
    "aws:ec2/vpc:Vpc": lambda i: {"cidr": i["cidrBlock"]},
    "aws:ec2/subnet:Subnet": lambda i: {"cidr": i["cidrBlock"], "zone": i["availabilityZone"]},
    "aws:ec2/placementGroup:PlacementGroup": lambda i: {"strategy": i["strategy"]},
    "aws:ec2/securityGroup:SecurityGroup": lambda i: {"description": i.get("description", "")},
    "aws:ec2/securityGroupRule:SecurityGroupRule": lambda i: {"type": i["type"], "self": i.get("self", False)},
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:eks/cluster:Cluster": lambda i: {
        "version": i["version"],
        "logs": i["enabledClusterLogTypes"],
        "private endpoint": i["vpcConfig"]["endpointPrivateAccess"],
        "public endpoint": i["vpcConfig"]["endpointPublicAccess"],
        "secrets": "KMS-encrypted",
    },
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:autoscaling/group:Group": _auto_scaling_group,
    "aws:autoscaling/tag:Tag": lambda i: {"value": i["tag"]["value"]},
    "aws:eks/addon:Addon": lambda i: {"addon": i["addonName"], "version": i["addonVersion"]},
    "aws:eks/accessEntry:AccessEntry": lambda i: {"principal": i["principalArn"], "type": i.get("type", "STANDARD")},
    "aws:iam/role:Role": lambda i: {"trusts": _trusted(i["assumeRolePolicy"])},
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": lambda i: {"policy": i["policyArn"].rsplit("/", 1)[-1]},
    "aws:kms/key:Key": lambda i: {"rotation": i.get("enableKeyRotation", False)},
    "aws:sqs/queue:Queue": lambda i: {"name": i["name"]},
    "aws:cloudwatch/eventRule:EventRule": lambda i: {"events": json.loads(i["eventPattern"])["detail-type"]},
    "kubernetes:helm.sh/v3:Release": lambda i: {
        "chart": f"{i['chart']} {i['version']}",
        "namespace": i["namespace"],
    },
    "kubernetes:yaml/v2:ConfigGroup": lambda i: {"objects": len(i.get("objs", []))},
}


def describe(resource: Registered) -> str:
    """One line: the resource's type (short), its name and its key properties."""
    kind = resource.type.rsplit(":", 1)[-1]
    label = f"[bold]{escape(kind)}[/] {escape(resource.name)}"
    summary = SUMMARIES.get(resource.type)
    if summary is None:
        return label
    facts = summary(resource.inputs)
    details = "  ".join(f"{key}: {_short(value)}" for key, value in facts.items())
    return f"{label}  [dim]{escape(details)}[/]"


def resource_tree(title: str, resources: list[Registered]) -> Tree:
    """Components with their children, in a stable order (by type, then name)."""
    children: dict[str, list[Registered]] = defaultdict(list)
    known = {r.urn for r in resources}
    for resource in resources:
        children[resource.parent if resource.parent in known else ""].append(resource)

    def add(node: Tree, parent: str) -> None:
        for resource in sorted(children.get(parent, []), key=lambda r: (r.custom, r.type, r.name)):
            add(node.add(describe(resource)), resource.urn)

    tree = Tree(title)
    add(tree, "")
    return tree
