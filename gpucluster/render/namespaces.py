"""Namespaces, with Pod Security Admission levels."""

from __future__ import annotations

from gpucluster.plan import Plan
from gpucluster.render.k8s import k8s_object
from gpucluster.spec import (
    GPU_OPERATOR_NAMESPACE,
    INGRESS_NAMESPACE,
    MONITORING_NAMESPACE,
    NETWORK_OPERATOR_NAMESPACE,
    VELERO_NAMESPACE,
)

KEDA_NAMESPACE = "keda"

TENANT_LABEL = "gpucluster.io/tenant"


def _namespace(name: str, enforce: str, extra: dict[str, str] | None = None) -> dict:
    labels = {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/warn": "restricted",
        **(extra or {}),
    }
    return k8s_object("v1", "Namespace", name, labels=labels)


def namespaces(plan: Plan) -> list[dict]:
    """The GPU operator's namespace (its operands are privileged), the monitoring stack's (privileged:
    node-exporter reads the host's network, PIDs and filesystem), the ingress controller's, and one
    baseline namespace per tenant. Created here so manifests in them apply before the Helm releases."""
    objects = [_namespace(GPU_OPERATOR_NAMESPACE, "privileged")]
    if plan.spec.monitoring.enabled:
        objects.append(_namespace(MONITORING_NAMESPACE, "privileged"))
    if plan.spec.ingress.controller == "nginx":
        # The F5 controller's pods meet "restricted": non-root, no privilege escalation, all capabilities
        # dropped but NET_BIND_SERVICE, RuntimeDefault seccomp (chart 2.7.0 controller-deployment.yaml).
        objects.append(_namespace(INGRESS_NAMESPACE, "restricted"))
    velero = plan.spec.backups.velero
    if velero.enabled:
        # The node agent reads volumes through host paths, which only "privileged" admits.
        objects.append(_namespace(VELERO_NAMESPACE, "privileged" if velero.file_system_backup else "baseline"))
    if any(pool.fabric == "infiniband" for pool in plan.pools):
        # The network operator's device plugin DaemonSets mount host paths.
        objects.append(_namespace(NETWORK_OPERATOR_NAMESPACE, "privileged"))
    autoscaling = plan.spec.autoscaling
    if autoscaling.workloads and autoscaling.method == "keda":
        objects.append(_namespace(KEDA_NAMESPACE, "restricted"))
    objects += [_namespace(t.ns, "baseline", {TENANT_LABEL: t.name}) for t in plan.spec.tenants]
    return objects
