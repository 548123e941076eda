"""The Pulumi program: read the stack's ``gpucluster:cluster`` config, validate it, export the plan.

A bad spec stops ``pulumi preview``/``up`` before any resource is registered. Cloud and bare-metal
resources are added per platform by their own modules: ``gpucluster.aws`` for platform aws.
"""

from __future__ import annotations

import pulumi

from gpucluster.plan import Plan, make_plan
from gpucluster.stackfile import SpecError, check_provider_region, parse_spec


def run() -> Plan:
    raw = pulumi.Config("gpucluster").require_object("cluster")
    source = f"stack {pulumi.get_stack()} (gpucluster:cluster)"
    try:
        spec = parse_spec(raw, source)
        check_provider_region(spec, pulumi.Config("aws").get("region"), source)
    except SpecError as error:
        pulumi.log.error(error.describe())
        raise pulumi.RunError("invalid cluster spec; nothing was changed") from None
    plan = make_plan(spec)
    pulumi.export("cluster", spec.name)
    pulumi.export("platform", spec.platform)
    pools = {
        pool.name: {"gpu_models": list(pool.gpu_models), "labels": pool.labels, "max_gpus": pool.max_gpus}
        for pool in plan.pools
    }
    pulumi.export("node_pools", pools)
    if spec.platform == "aws":
        from gpucluster.aws.program import build

        build(plan)
    if spec.platform in ("onprem", "hybrid"):
        from gpucluster.onprem.convergence import Convergence

        addresses, connection = None, None
        if spec.platform == "hybrid":
            from gpucluster.aws.hybrid import build_machines

            addresses, connection = build_machines(plan)
            pulumi.export("machine_addresses", addresses)
        convergence = Convergence(plan, addresses, connection)
        pulumi.export("converged", convergence.run.recap)
    return plan
