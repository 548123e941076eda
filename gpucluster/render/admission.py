"""Admission policies that hold tenants to their grants, run by the API server (CEL, no webhook).

- ``gpucluster-pools-<namespace>``, per tenant that names its ``pools``: a pod that requests a GPU resource
  must select one of those pools, by ``nodeSelector`` or a required node affinity on ``gpucluster.io/pool``.
  Gated pods (Kueue adds the selector when it ungates them) are checked when their last gate is removed.
- ``gpucluster-no-device-requests``, every workload namespace: containers may not ask the NVIDIA runtime
  for devices themselves (``NVIDIA_VISIBLE_DEVICES``, device-list mounts under
  ``/var/run/nvidia-container-devices``, CDI annotations). With the toolkit setting the plan names
  (``CONTAINER_TOOLKIT_SETTINGS``) this closes the way to every GPU of a node without requesting one;
  the toolkit setting alone also covers what the policy cannot see (an image's own ``ENV``, ``envFrom``).

ValidatingAdmissionPolicy is admissionregistration.k8s.io/v1 from Kubernetes 1.30; below that the spec
refuses ``pools`` and neither policy is rendered.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpucluster.plan import POOL_LABEL, Plan
from gpucluster.render.k8s import k8s_object
from gpucluster.spec import Tenant

ADMISSION_API = "admissionregistration.k8s.io/v1"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
NO_DEVICE_REQUESTS = "gpucluster-no-device-requests"
# What the NVIDIA container runtime reads as a device request (nvidia-container-toolkit
# internal/config/image/cuda_image.go): the variable, mounts under this directory, CDI annotations.
VISIBLE_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"
DEVICE_LIST_MOUNT_DIRS = ("/var/run/nvidia-container-devices", "/run/nvidia-container-devices")
CDI_ANNOTATION_PREFIX = "cdi.k8s.io/"
# Containers that can request resources, and every container of a pod.
RESOURCE_CONTAINERS = ("containers", "initContainers")
ALL_CONTAINERS = (*RESOURCE_CONTAINERS, "ephemeralContainers")


def pool_policy_name(tenant: Tenant) -> str:
    return f"gpucluster-pools-{tenant.ns}"


def admission_policies(plan: Plan) -> list[dict]:
    """Both policies with their bindings, or nothing where the API server has no v1 policies."""
    if not plan.admission_policies_available:
        return []
    objects = _no_device_requests(plan)
    for tenant in plan.spec.tenants:
        if tenant.pools is not None:
            objects += _pool_policy(plan, tenant)
    return objects


# --- CEL building blocks ------------------------------------------------------------------------------


def cel_list(values: Iterable[str]) -> str:
    """A CEL list of string literals (the values are label values and resource names: no quotes in them)."""
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def _any_container(fields: tuple[str, ...], predicate: str) -> str:
    """True when some container of the listed pod fields satisfies ``predicate`` (about ``c``)."""
    return " || ".join(f"(has(object.spec.{f}) && object.spec.{f}.exists(c, {predicate}))" for f in fields)


def _every_container(fields: tuple[str, ...], predicate: str) -> str:
    return " && ".join(f"(!has(object.spec.{f}) || object.spec.{f}.all(c, {predicate}))" for f in fields)


def _policy(name: str, match_conditions: list[dict], variables: list[dict], validations: list[dict]) -> dict:
    spec = {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["pods", "pods/ephemeralcontainers"],
                }
            ]
        },
        "matchConditions": match_conditions,
        **({"variables": variables} if variables else {}),
        "validations": validations,
    }
    return k8s_object(ADMISSION_API, "ValidatingAdmissionPolicy", name, spec=spec)


def _binding(policy: str, namespaces: list[str]) -> dict:
    selector = {"matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": namespaces}]}
    spec = {"policyName": policy, "validationActions": ["Deny"], "matchResources": {"namespaceSelector": selector}}
    return k8s_object(ADMISSION_API, "ValidatingAdmissionPolicyBinding", policy, spec=spec)


# --- tenants stay on their pools ----------------------------------------------------------------------


def _pool_policy(plan: Plan, tenant: Tenant) -> list[dict]:
    pools = [pool.name for pool in plan.tenant_pools(tenant)]
    has_gpu = (
        "has(c.resources) && ("
        "(has(c.resources.limits) && c.resources.limits.exists(r, r in variables.gpuResources))"
        " || (has(c.resources.requests) && c.resources.requests.exists(r, r in variables.gpuResources)))"
    )
    required = "object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    variables = [
        {"name": "gpuResources", "expression": cel_list(plan.gpu_resources)},
        {"name": "pools", "expression": cel_list(pools)},
        {"name": "requestsGpu", "expression": _any_container(RESOURCE_CONTAINERS, has_gpu)},
        {
            "name": "selectorPicksPool",
            "expression": f"has(object.spec.nodeSelector) && '{POOL_LABEL}' in object.spec.nodeSelector"
            f" && object.spec.nodeSelector['{POOL_LABEL}'] in variables.pools",
        },
        {
            # Terms are alternatives: each one must confine the pod to the tenant's pools.
            "name": "affinityPicksPool",
            "expression": "has(object.spec.affinity) && has(object.spec.affinity.nodeAffinity)"
            f" && has({required}) && size({required}.nodeSelectorTerms) > 0"
            f" && {required}.nodeSelectorTerms.all(t, has(t.matchExpressions) && t.matchExpressions.exists(e,"
            f" e.key == '{POOL_LABEL}' && e.operator == 'In' && has(e.values)"
            " && e.values.all(v, v in variables.pools)))",
        },
    ]
    # Checked on creation, and on the update that removes a pod's last scheduling gate (the selector of a
    # gated pod may still change until then); other updates of existing pods pass.
    gated = "has(object.spec.schedulingGates) && size(object.spec.schedulingGates) > 0"
    was_gated = "has(oldObject.spec.schedulingGates) && size(oldObject.spec.schedulingGates) > 0"
    match_conditions = [
        {
            "name": "created-or-ungated",
            "expression": f"request.subResource == '' && !({gated})"
            f" && (request.operation == 'CREATE' || ({was_gated}))",
        }
    ]
    message = (
        f"pods in {tenant.ns} that request GPUs must select one of the tenant's pools ({', '.join(pools)}):"
        f" nodeSelector {POOL_LABEL}: <pool>, or a required node affinity {POOL_LABEL} In [<pools>]"
    )
    validations = [
        {
            "expression": "!variables.requestsGpu || variables.selectorPicksPool || variables.affinityPicksPool",
            "message": message,
            "reason": "Forbidden",
        }
    ]
    name = pool_policy_name(tenant)
    return [_policy(name, match_conditions, variables, validations), _binding(name, [tenant.ns])]


# --- no device requests around the device plugin ------------------------------------------------------


def _no_device_requests(plan: Plan) -> list[dict]:
    mounts = " || ".join(f"m.mountPath.startsWith('{d}')" for d in DEVICE_LIST_MOUNT_DIRS)
    env_ok = f"!has(c.env) || c.env.all(e, e.name != '{VISIBLE_DEVICES_ENV}')"
    mounts_ok = f"!has(c.volumeMounts) || c.volumeMounts.all(m, !({mounts}))"
    validations = [
        {
            "expression": _every_container(ALL_CONTAINERS, env_ok),
            "message": f"containers may not set {VISIBLE_DEVICES_ENV}: request GPUs as resources (limits)",
            "reason": "Forbidden",
        },
        {
            "expression": _every_container(ALL_CONTAINERS, mounts_ok),
            "message": f"containers may not mount under {' or '.join(DEVICE_LIST_MOUNT_DIRS)}:"
            " the NVIDIA runtime reads device requests there",
            "reason": "Forbidden",
        },
        {
            "expression": "!has(object.metadata.annotations)"
            f" || object.metadata.annotations.all(k, !k.startsWith('{CDI_ANNOTATION_PREFIX}'))",
            "message": f"pods may not carry {CDI_ANNOTATION_PREFIX} annotations: they request devices through CDI",
            "reason": "Forbidden",
        },
    ]
    # New pods and new ephemeral containers; other updates of existing pods (finalizers, labels) pass.
    match_conditions = [
        {
            "name": "created-or-debugged",
            "expression": "request.operation == 'CREATE' || request.subResource == 'ephemeralcontainers'",
        }
    ]
    policy = _policy(NO_DEVICE_REQUESTS, match_conditions, [], validations)
    return [policy, _binding(NO_DEVICE_REQUESTS, list(plan.workload_namespaces))]
