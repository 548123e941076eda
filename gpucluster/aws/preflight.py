"""Ask the AWS account, before ``pulumi up``, whether a stack can be built there.

Read-only calls with boto3: that each pool's instance types are offered in its availability zones, that the
vCPU service quotas for on-demand and spot G and P instances cover every pool at its maximum size, how
likely spot capacity is (spot placement scores), that the EKS GPU AMI's public SSM parameter exists for the
Kubernetes version, and that EKS supports that version. Each finding is pass, warn or fail; a call the
credentials may not make (AccessDenied) is a warning naming the permission, never a silent pass.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from gpucluster.aws.cost import on_demand_nodes
from gpucluster.catalog import catalog
from gpucluster.plan import Plan, PoolPlan
from gpucluster.render.aws_nodes import ami_parameter

# EC2 vCPU quotas (Service Quotas, service code "ec2") by instance family letter and purchase option.
VCPU_QUOTAS = {
    ("g", "on-demand"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("p", "on-demand"): ("L-417A185B", "Running On-Demand P instances"),
    ("g", "spot"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("p", "spot"): ("L-7212CCBC", "All P Spot Instance Requests"),
}
GOOD_SPOT_SCORE = 5  # AWS scores 1-10; below this a spot request is unlikely to be fulfilled


@dataclass(frozen=True)
class Finding:
    check: str  # "offering" | "quota" | "spot-placement" | "ami" | "eks-version"
    subject: str
    status: str  # "pass" | "warn" | "fail"
    detail: str


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _denied(error: Exception) -> bool:
    return _error_code(error) in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def _pool_zones(plan: Plan, pool: PoolPlan) -> list[str]:
    aws = plan.spec.aws
    assert aws is not None, "preflight runs on stacks with an aws section"
    return [pool.spec.availability_zone] if pool.spec.availability_zone else list(aws.availability_zones)


def check_offerings(plan: Plan, ec2: Any) -> list[Finding]:
    """Every instance type of every pool is offered in the pool's zones (all of them, for a spread pool)."""
    pools = [pool for pool in plan.pools if pool.spec.instance_types]
    types = sorted({name for pool in pools for name in pool.spec.instance_types})
    if not types:
        return []
    offered: dict[str, set[str]] = defaultdict(set)
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    pages = paginator.paginate(LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": types}])
    for page in pages:
        for offering in page["InstanceTypeOfferings"]:
            offered[offering["InstanceType"]].add(offering["Location"])
    findings = []
    for pool in pools:
        zones = _pool_zones(plan, pool)
        for name in pool.spec.instance_types:
            missing = [zone for zone in zones if zone not in offered[name]]
            subject = f"{pool.name}: {name}"
            if len(missing) == len(zones):
                findings.append(Finding("offering", subject, "fail", f"not offered in {', '.join(zones)}"))
            elif missing:
                detail = f"not offered in {', '.join(missing)}: the pool launches it only in the other zones"
                findings.append(Finding("offering", subject, "warn", detail))
            else:
                findings.append(Finding("offering", subject, "pass", f"offered in {', '.join(zones)}"))
    return findings


def vcpu_needs(plan: Plan) -> dict[tuple[str, str], int]:
    """vCPUs each quota must allow with every pool at its maximum, sized by the pool's largest instance type."""
    needs: dict[tuple[str, str], int] = defaultdict(int)
    types = catalog().instance_types
    for pool in plan.pools:
        if not pool.spec.instance_types:
            continue
        vcpus = max(types[name].vcpus for name in pool.spec.instance_types)
        family = pool.spec.instance_types[0][0]
        nodes = pool.spec.scaling.max
        on_demand = on_demand_nodes(pool, nodes)
        if on_demand:
            needs[(family, "on-demand")] += on_demand * vcpus
        if nodes - on_demand:
            needs[(family, "spot")] += (nodes - on_demand) * vcpus
    return dict(needs)


def check_quotas(plan: Plan, quotas: Any) -> list[Finding]:
    findings = []
    for key, need in sorted(vcpu_needs(plan).items()):
        if key not in VCPU_QUOTAS:
            findings.append(Finding("quota", f"{key[0].upper()} {key[1]}", "warn", "no known vCPU quota to check"))
            continue
        code, name = VCPU_QUOTAS[key]
        try:
            value = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
        except Exception as error:
            if _denied(error) or _error_code(error) == "NoSuchResourceException":
                reason = "needs servicequotas:GetServiceQuota" if _denied(error) else "not found in this region"
                detail = f"cannot read the quota ({reason}); {need} vCPUs needed at max size"
                findings.append(Finding("quota", name, "warn", detail))
                continue
            raise
        status = "pass" if need <= value else "fail"
        detail = f"{need} vCPUs needed at max size, quota {math.floor(value)}"
        if status == "fail":
            detail += " (request an increase in Service Quotas before pulumi up)"
        findings.append(Finding("quota", name, status, detail))
    return findings


def check_spot_placement(plan: Plan, ec2: Any) -> list[Finding]:
    """Spot placement scores per zone for every pool that buys spot capacity."""
    aws = plan.spec.aws
    assert aws is not None
    findings = []
    for pool in plan.pools:
        spot = pool.spec.scaling.max - on_demand_nodes(pool, pool.spec.scaling.max)
        if not pool.spec.instance_types or spot == 0:
            continue
        try:
            response = ec2.get_spot_placement_scores(
                InstanceTypes=list(pool.spec.instance_types),
                TargetCapacity=spot,
                TargetCapacityUnitType="units",
                SingleAvailabilityZone=True,
                RegionNames=[aws.region],
            )
        except Exception as error:
            if _denied(error):
                detail = "cannot read spot placement scores (needs ec2:GetSpotPlacementScores)"
                findings.append(Finding("spot-placement", pool.name, "warn", detail))
                continue
            raise
        scores = {
            score.get("AvailabilityZoneId", ""): score["Score"] for score in response.get("SpotPlacementScores", [])
        }
        best = max(scores.values(), default=0)
        detail = f"best score {best}/10 for {spot} spot nodes" + (
            f" ({', '.join(f'{z} {s}' for z, s in sorted(scores.items()))})" if scores else ""
        )
        status = "pass" if best >= GOOD_SPOT_SCORE else "warn"
        if status == "warn":
            detail += f"; below {GOOD_SPOT_SCORE} spot requests often go unfilled: add instance types or on-demand base"
        findings.append(Finding("spot-placement", pool.name, status, detail))
    return findings


def check_ami(plan: Plan, ssm: Any) -> list[Finding]:
    version = plan.spec.kubernetes.version
    name = ami_parameter(version, "nvidia", "image_id")  # the parameter the node groups read
    try:
        image = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except Exception as error:
        if _error_code(error) == "ParameterNotFound":
            return [Finding("ami", name, "fail", f"no EKS GPU AMI for Kubernetes {version} in this region")]
        if _denied(error):
            return [Finding("ami", name, "warn", "cannot read the parameter (needs ssm:GetParameter)")]
        raise
    return [Finding("ami", name, "pass", image)]


def check_eks_version(plan: Plan, eks: Any) -> list[Finding]:
    version = plan.spec.kubernetes.version
    subject = f"Kubernetes {version}"
    try:
        versions = eks.describe_cluster_versions(clusterVersions=[version])["clusterVersions"]
    except Exception as error:
        if _denied(error):
            return [Finding("eks-version", subject, "warn", "cannot list versions (needs eks:DescribeClusterVersions)")]
        raise
    if not versions:
        return [Finding("eks-version", subject, "fail", "EKS does not offer this version in this region")]
    status = versions[0].get("versionStatus") or versions[0].get("status", "")
    if str(status).upper().startswith("EXTENDED"):
        detail = "in extended support: the control plane costs six times as much; plan an upgrade"
        return [Finding("eks-version", subject, "warn", detail)]
    return [Finding("eks-version", subject, "pass", str(status).lower() or "offered")]


def preflight(plan: Plan, session: Any) -> list[Finding]:
    """Run every check that applies to the stack's platform with a boto3 session for its region."""
    ec2 = session.client("ec2")
    findings = check_offerings(plan, ec2)
    findings += check_quotas(plan, session.client("service-quotas"))
    findings += check_spot_placement(plan, ec2)
    if plan.spec.kubernetes.distribution == "eks":
        findings += check_ami(plan, session.client("ssm"))
        findings += check_eks_version(plan, session.client("eks"))
    return findings
