"""The thermal guardian as a DaemonSet on the GPU nodes, with the least privilege it needs.

It may list pods, evict them and cordon nodes (get/patch nodes), nothing else. It runs privileged with the
host's PID namespace: it reads every process's cgroup to find the pod using a GPU, and NVML needs every
GPU without requesting one (``accept-nvidia-visible-devices-envvar-when-unprivileged=false`` leaves only
privileged containers their GPUs through NVIDIA_VISIBLE_DEVICES). It runs in the GPU operator's
namespace, whose Pod Security level is privileged already, with the ``nvidia`` RuntimeClass the
operator's own operands use.
"""

from __future__ import annotations

from gpucluster.guardian import METRICS_PORT
from gpucluster.onprem import inventory as onprem  # a module: onprem.inventory imports gpucluster.render too
from gpucluster.plan import POOL_LABEL, Plan
from gpucluster.render.gpu import pool_tolerations
from gpucluster.render.k8s import k8s_object
from gpucluster.spec import GPU_OPERATOR_NAMESPACE

GUARDIAN_NAME = "gpucluster-guardian"
RBAC = "rbac.authorization.k8s.io"


def guardian_objects(plan: Plan) -> list[dict]:
    guardian = plan.spec.monitoring.guardian
    if not guardian.enabled or onprem.guardian_on_hosts(plan.spec):  # host mode: the ansible role runs it instead
        return []
    labels = {"app.kubernetes.io/name": GUARDIAN_NAME}
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]},
    ]
    binding_subjects = [{"kind": "ServiceAccount", "name": GUARDIAN_NAME, "namespace": GPU_OPERATOR_NAMESPACE}]
    role_ref = {"apiGroup": RBAC, "kind": "ClusterRole", "name": GUARDIAN_NAME}
    return [
        k8s_object("v1", "ServiceAccount", GUARDIAN_NAME, GPU_OPERATOR_NAMESPACE, labels),
        k8s_object(f"{RBAC}/v1", "ClusterRole", GUARDIAN_NAME, labels=labels, rules=rules),
        k8s_object(
            f"{RBAC}/v1",
            "ClusterRoleBinding",
            GUARDIAN_NAME,
            labels=labels,
            subjects=binding_subjects,
            roleRef=role_ref,
        ),
        _daemon_set(plan, labels),
        k8s_object(
            "v1",
            "Service",
            GUARDIAN_NAME,
            GPU_OPERATOR_NAMESPACE,
            labels,
            spec={"selector": labels, "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}]},
        ),
    ]


def _daemon_set(plan: Plan, labels: dict[str, str]) -> dict:
    guardian = plan.spec.monitoring.guardian
    gpu_pools = [pool.name for pool in plan.pools]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": gpu_pools}]}
                ]
            }
        }
    }
    container = {
        "name": "guardian",
        "image": guardian.image,
        "args": [
            "guardian",
            "--mode=kubernetes",
            f"--limit={guardian.limit_celsius}",
            f"--interval={guardian.interval_seconds}",
            "--metrics-address=0.0.0.0",
            f"--metrics-port={METRICS_PORT}",
        ],
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
            {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"},
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "readinessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 30},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {"privileged": True, "readOnlyRootFilesystem": True},
    }
    pod = {
        "serviceAccountName": GUARDIAN_NAME,
        "hostPID": True,
        "runtimeClassName": "nvidia",
        "priorityClassName": "system-node-critical",
        "affinity": affinity,
        "tolerations": pool_tolerations(plan),
        "containers": [container],
    }
    spec = {
        "selector": {"matchLabels": labels},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}},
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    return k8s_object("apps/v1", "DaemonSet", GUARDIAN_NAME, GPU_OPERATOR_NAMESPACE, labels, spec=spec)
