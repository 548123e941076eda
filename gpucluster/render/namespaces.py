"""Namespaces, with Pod Security Admission levels."""

from __future__ import annotations

from gpucluster.plan import GPU_OPERATOR_NAMESPACE, Plan
from gpucluster.render.k8s import k8s_object

TENANT_LABEL = "gpucluster.io/tenant"


def _namespace(name: str, enforce: str, extra: dict[str, str] | None = None) -> dict:
    labels = {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/warn": "restricted",
        **(extra or {}),
    }
    return k8s_object("v1", "Namespace", name, labels=labels)


def namespaces(plan: Plan) -> list[dict]:
    """The GPU operator's namespace (its operands are privileged) and one baseline namespace per tenant."""
    objects = [_namespace(GPU_OPERATOR_NAMESPACE, "privileged")]
    objects += [_namespace(t.ns, "baseline", {TENANT_LABEL: t.name}) for t in plan.spec.tenants]
    return objects
