"""GPU workloads scaled on their GPUs' utilisation (seed 004: ALB -> NGINX -> GPU pods, scaled above 80 %).

Each workload in ``autoscaling.workloads`` becomes a Deployment on its pool (the pool's node selector and
taints, whole GPUs requested), a Service, an Ingress when it has a host, and an autoscaler:

- ``hpa``: prometheus-adapter serves ``DCGM_FI_DEV_GPU_UTIL`` per pod as the custom metric
  ``gpu_utilization`` (dcgm-exporter's Kubernetes mode labels each GPU's series with the pod using it, and
  the ServiceMonitor keeps those labels), and an autoscaling/v2 HorizontalPodAutoscaler holds its average
  at the target;
- ``keda``: KEDA and a ScaledObject whose Prometheus trigger asks the same average directly.

Scaling down waits out a stabilisation window so a pause between requests does not drop GPUs that take
minutes to come back.
"""

from __future__ import annotations

from gpucluster.plan import GPU_RESOURCE, POOL_LABEL, Plan
from gpucluster.render.bundle import HelmRelease
from gpucluster.render.k8s import k8s_object
from gpucluster.render.monitoring import KUBE_PROMETHEUS_STACK_RELEASE
from gpucluster.render.namespaces import KEDA_NAMESPACE
from gpucluster.spec import MONITORING_NAMESPACE, GpuWorkload

UTILIZATION_METRIC = "DCGM_FI_DEV_GPU_UTIL"
CUSTOM_METRIC = "gpu_utilization"
PROMETHEUS_URL = f"http://{KUBE_PROMETHEUS_STACK_RELEASE}-prometheus.{MONITORING_NAMESPACE}.svc"
PROMETHEUS_PORT = 9090
ADAPTER_CHART, ADAPTER_VERSION = "prometheus-adapter", "5.3.0"
KEDA_CHART, KEDA_VERSION = "keda", "2.17.0"
PROMETHEUS_COMMUNITY = "https://prometheus-community.github.io/helm-charts"
KEDA_REPOSITORY = "https://kedacore.github.io/charts"
INGRESS_CLASS = "nginx"
SCALE_DOWN_WINDOW_SECONDS = 300
SCALE_UP_WINDOW_SECONDS = 60

# prometheus-adapter's rule: the per-pod average of the exporter's utilisation, named gpu_utilization.
ADAPTER_RULE = {
    "seriesQuery": f'{UTILIZATION_METRIC}{{namespace!="",pod!=""}}',
    "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
    "name": {"matches": f"^{UTILIZATION_METRIC}$", "as": CUSTOM_METRIC},
    "metricsQuery": f"avg by (<<.GroupBy>>) ({UTILIZATION_METRIC}{{<<.LabelMatchers>>}})",
}


def _labels(workload: GpuWorkload) -> dict[str, str]:
    return {"app.kubernetes.io/name": workload.name}


def target(plan: Plan, workload: GpuWorkload) -> int:
    return workload.target_utilization or plan.spec.autoscaling.gpu_utilization_target


def _toleration(key: str, value: str, effect: str) -> dict:
    if value:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


def deployment(plan: Plan, workload: GpuWorkload) -> dict:
    pool = next(pool for pool in plan.pools if pool.name == workload.pool)
    compute = {"cpu": workload.cpu, "memory": workload.memory, GPU_RESOURCE: str(workload.gpus_per_replica)}
    probe = {"httpGet": {"path": workload.health_path, "port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    container = {
        "name": workload.name,
        "image": workload.image,
        "ports": [{"name": "http", "containerPort": workload.port}],
        "resources": {"requests": compute, "limits": dict(compute)},
        "startupProbe": {**probe, "failureThreshold": 60},  # models take minutes to load onto the GPU
        "readinessProbe": probe,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    pod = {
        "nodeSelector": {POOL_LABEL: pool.name},
        "tolerations": [_toleration(t.key, t.value, t.effect) for t in pool.taints],
        "containers": [container],
        # Model servers pass tensors through shared memory; the runtime's default /dev/shm is 64 MiB.
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
    }
    labels = _labels(workload)
    spec = {
        # No replicas: the autoscaler owns the count, and re-applying the manifest must not reset it.
        "selector": {"matchLabels": labels},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    return k8s_object("apps/v1", "Deployment", workload.name, workload.namespace, labels, spec=spec)


def service(workload: GpuWorkload) -> dict:
    ports = [{"name": "http", "port": 80, "targetPort": "http"}]
    spec = {"selector": _labels(workload), "ports": ports}
    return k8s_object("v1", "Service", workload.name, workload.namespace, _labels(workload), spec=spec)


def ingress(workload: GpuWorkload) -> dict:
    backend = {"service": {"name": workload.name, "port": {"name": "http"}}}
    rule = {"host": workload.ingress_host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
    spec = {"ingressClassName": INGRESS_CLASS, "rules": [rule]}
    return k8s_object(
        "networking.k8s.io/v1", "Ingress", workload.name, workload.namespace, _labels(workload), spec=spec
    )


def _behavior() -> dict:
    return {
        "scaleDown": {
            "stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
        },
        "scaleUp": {"stabilizationWindowSeconds": SCALE_UP_WINDOW_SECONDS},
    }


def horizontal_autoscaler(plan: Plan, workload: GpuWorkload) -> dict:
    metric = {
        "type": "Pods",
        "pods": {
            "metric": {"name": CUSTOM_METRIC},
            "target": {"type": "AverageValue", "averageValue": str(target(plan, workload))},
        },
    }
    spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.name},
        "minReplicas": workload.min_replicas,
        "maxReplicas": workload.max_replicas,
        "metrics": [metric],
        "behavior": _behavior(),
    }
    return k8s_object(
        "autoscaling/v2", "HorizontalPodAutoscaler", workload.name, workload.namespace, _labels(workload), spec=spec
    )


def keda_query(workload: GpuWorkload) -> str:
    """The sum over the workload's pods of each pod's average GPU utilisation.

    KEDA's Prometheus trigger is an AverageValue metric: the HPA it drives wants ceil(sum / threshold)
    replicas, the same count the ``hpa`` method's per-pod average against its target gives.
    """
    selector = f'namespace="{workload.namespace}",pod=~"{workload.name}-[a-z0-9]+-[a-z0-9]+"'
    return f"sum(avg by (pod) ({UTILIZATION_METRIC}{{{selector}}}))"


def scaled_object(plan: Plan, workload: GpuWorkload) -> dict:
    trigger = {
        "type": "prometheus",
        "metadata": {
            "serverAddress": f"{PROMETHEUS_URL}:{PROMETHEUS_PORT}",
            "query": keda_query(workload),
            "threshold": str(target(plan, workload)),
        },
    }
    spec = {
        "scaleTargetRef": {"name": workload.name},
        "minReplicaCount": workload.min_replicas,
        "maxReplicaCount": workload.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior()}},
        "triggers": [trigger],
    }
    return k8s_object(
        "keda.sh/v1alpha1", "ScaledObject", workload.name, workload.namespace, _labels(workload), spec=spec
    )


def workload_objects(plan: Plan) -> list[dict]:
    """Deployments, Services, Ingresses and (with ``hpa``) HorizontalPodAutoscalers of the workloads."""
    objects: list[dict] = []
    for workload in plan.spec.autoscaling.workloads:
        objects += [deployment(plan, workload), service(workload)]
        if workload.ingress_host:
            objects.append(ingress(workload))
        if plan.spec.autoscaling.method == "hpa":
            objects.append(horizontal_autoscaler(plan, workload))
    return objects


def scaled_objects(plan: Plan) -> list[dict]:
    if plan.spec.autoscaling.method != "keda":
        return []
    return [scaled_object(plan, workload) for workload in plan.spec.autoscaling.workloads]


def adapter_values() -> dict:
    return {
        "prometheus": {"url": PROMETHEUS_URL, "port": PROMETHEUS_PORT},
        "rules": {"default": False, "custom": [ADAPTER_RULE]},
    }


def autoscaling_releases(plan: Plan) -> list[HelmRelease]:
    autoscaling = plan.spec.autoscaling
    if not autoscaling.workloads:
        return []
    if autoscaling.method == "keda":
        return [HelmRelease("keda", KEDA_CHART, KEDA_REPOSITORY, KEDA_VERSION, KEDA_NAMESPACE, {})]
    return [
        HelmRelease(
            "prometheus-adapter",
            ADAPTER_CHART,
            PROMETHEUS_COMMUNITY,
            ADAPTER_VERSION,
            MONITORING_NAMESPACE,
            adapter_values(),
        )
    ]
