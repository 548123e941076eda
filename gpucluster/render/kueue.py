"""Kueue in front of the tenants' quotas (``tenancy.mode: kueue``): the release, and its queues.

- one ResourceFlavor per GPU pool (``pool-<name>``): its node label and tolerations for its taints, which
  Kueue adds to the pods it admits there, plus ``cpu-memory`` (no node constraint) for CPU and memory;
- one ClusterQueue per tenant: its GPU grants as nominal quota per pool flavor and GPU resource, its CPU
  and memory in the ``cpu-memory`` flavor; with ``borrowing`` the queues share one cohort and may borrow
  each other's idle GPUs (owners reclaim them by preemption), never CPU or memory;
- a LocalQueue ``default`` in each tenant namespace (jobs name it with ``kueue.x-k8s.io/queue-name``).

A grant of a GPU resource is split over the tenant's pools in the order of its ``pools`` (all pools in
spec order by default), each pool taking what its nodes can hold, so the flavors add up to the grant.
Jobs without a queue name are not queued; the ResourceQuota still holds them to the grant.
"""

from __future__ import annotations

from gpucluster.plan import POOL_LABEL, Plan, PoolPlan
from gpucluster.render.bundle import HelmRelease
from gpucluster.render.k8s import k8s_object
from gpucluster.spec import KUEUE_NAMESPACE, Tenant

KUEUE_API = "kueue.x-k8s.io/v1beta2"
KUEUE_CHART_REPOSITORY = "oci://registry.k8s.io/kueue/charts"
KUEUE_IMAGE = "registry.k8s.io/kueue/kueue"
CPU_MEMORY_FLAVOR = "cpu-memory"
LOCAL_QUEUE = "default"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def flavor_name(pool: PoolPlan) -> str:
    return f"pool-{pool.name}"


def kueue_release(plan: Plan) -> list[HelmRelease]:
    """The Kueue chart, its manager image pinned to the same release (the chart's default tracks main)."""
    if plan.spec.tenancy.mode != "kueue":
        return []
    version = plan.spec.tenancy.version
    image = {"repository": KUEUE_IMAGE, "tag": f"v{version}", "pullPolicy": "IfNotPresent"}
    return [
        HelmRelease(
            name="kueue",
            chart="kueue",
            repository=KUEUE_CHART_REPOSITORY,
            version=version,
            namespace=KUEUE_NAMESPACE,
            values={"controllerManager": {"manager": {"image": image}}},
        )
    ]


def kueue_objects(plan: Plan) -> list[dict]:
    """ResourceFlavors, then a ClusterQueue and a LocalQueue per tenant (custom resources: applied after the
    Kueue release has installed their CRDs)."""
    if plan.spec.tenancy.mode != "kueue":
        return []
    objects = [_pool_flavor(pool) for pool in plan.pools]
    objects.append(k8s_object(KUEUE_API, "ResourceFlavor", CPU_MEMORY_FLAVOR, spec={}))
    for tenant in plan.spec.tenants:
        objects += [_cluster_queue(plan, tenant), _local_queue(tenant)]
    return objects


def _pool_flavor(pool: PoolPlan) -> dict:
    tolerations = []
    for taint in pool.taints:
        toleration = {"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect}
        if not taint.value:
            toleration = {"key": taint.key, "operator": "Exists", "effect": taint.effect}
        tolerations.append(toleration)
    spec = {"nodeLabels": {POOL_LABEL: pool.name}, "tolerations": tolerations}
    return k8s_object(KUEUE_API, "ResourceFlavor", flavor_name(pool), spec=spec)


def flavor_quotas(plan: Plan, tenant: Tenant) -> dict[str, dict[str, int]]:
    """Pool -> GPU resource -> nominal quota: each grant split over the tenant's pools in order."""
    pools = plan.tenant_pools(tenant)
    covered = [name for name in plan.gpu_resources if any(name in pool.gpu_resources for pool in pools)]
    quotas: dict[str, dict[str, int]] = {pool.name: {} for pool in pools}
    for resource in covered:
        remaining = plan.tenant_grants(tenant)[resource]
        for pool in pools:
            take = min(remaining, pool.gpu_resources.get(resource, 0))
            quotas[pool.name][resource] = take
            remaining -= take
    return quotas


def _cluster_queue(plan: Plan, tenant: Tenant) -> dict:
    tenancy = plan.spec.tenancy
    quotas = flavor_quotas(plan, tenant)
    covered = list(next(iter(quotas.values())))
    gpu_flavors = [
        {
            "name": flavor_name(pool),
            "resources": [{"name": r, "nominalQuota": quotas[pool.name][r]} for r in covered],
        }
        for pool in plan.tenant_pools(tenant)
    ]
    no_borrowing = {"borrowingLimit": 0} if tenancy.borrowing else {}
    cpu_memory = [
        {"name": "cpu", "nominalQuota": tenant.cpu, **no_borrowing},
        {"name": "memory", "nominalQuota": tenant.memory, **no_borrowing},
    ]
    spec: dict = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: tenant.ns}},
        "queueingStrategy": "BestEffortFIFO",
        "resourceGroups": [
            {"coveredResources": covered, "flavors": gpu_flavors},
            {"coveredResources": ["cpu", "memory"], "flavors": [{"name": CPU_MEMORY_FLAVOR, "resources": cpu_memory}]},
        ],
    }
    if tenancy.borrowing:
        spec["cohortName"] = tenancy.cohort
        spec["preemption"] = {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}
    return k8s_object(KUEUE_API, "ClusterQueue", tenant.name, spec=spec)


def _local_queue(tenant: Tenant) -> dict:
    return k8s_object(KUEUE_API, "LocalQueue", LOCAL_QUEUE, tenant.ns, spec={"clusterQueue": tenant.name})
