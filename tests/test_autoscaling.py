"""GPU autoscaling: the spec's rules, the rendered workload and autoscalers, and the adapter's query on a real
Prometheus scraping a fake DCGM exporter (both on 127.0.0.1)."""

from __future__ import annotations

import re

import pytest
import yaml
from prometheus import FakeDcgmExporter, require_prometheus, running_prometheus

from gpucluster.render import render
from gpucluster.render.alerts import DCGM_JOB
from gpucluster.render.autoscaling import CUSTOM_METRIC, keda_query
from gpucluster.stackfile import SpecError, format_path, parse_spec
from stacks import spec_of

WAIT_SECONDS = 30


def _objects(files: dict[str, bytes], path: str) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(files[path]) if d}


def _problems(raw: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test")
    return {format_path(p.path): p.message for p in caught.value.problems}


# --- rendered --------------------------------------------------------------------------------------------------


def test_seed_004_path_alb_nginx_gpu_pods_scaled_on_gpu_utilisation():
    files = render(spec_of("eks-t4")).files()
    objects = _objects(files, "manifests/90-workloads.yaml")
    deployment = objects[("Deployment", "inference")]
    assert deployment["metadata"]["namespace"] == "gpu-orchestrator"
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpucluster.io/pool": "t4-inference"}
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    ingress = objects[("Ingress", "inference")]
    assert ingress["spec"]["rules"][0]["host"] == "inference.orchestrator.example.com"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    hpa = objects[("HorizontalPodAutoscaler", "inference")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 10)
    assert hpa["metrics"][0]["pods"] == {
        "metric": {"name": CUSTOM_METRIC},
        "target": {"type": "AverageValue", "averageValue": "80"},
    }
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    values = yaml.safe_load(files["helm/prometheus-adapter.values.yaml"])
    assert values["prometheus"]["url"] == "http://kube-prometheus-stack-prometheus.monitoring.svc"
    assert "custom-resources/40-autoscaling.yaml" not in files


def test_keda_replaces_the_adapter_and_hpa_with_a_scaled_object():
    spec = spec_of("eks-t4", autoscaling={**spec_of("eks-t4").autoscaling.model_dump(), "method": "keda"})
    files = render(spec).files()
    assert ("HorizontalPodAutoscaler", "inference") not in _objects(files, "manifests/90-workloads.yaml")
    assert "helm/prometheus-adapter.values.yaml" not in files and "helm/keda.values.yaml" in files
    scaled = _objects(files, "custom-resources/40-autoscaling.yaml")[("ScaledObject", "inference")]["spec"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metadata"]["threshold"] == "80"
    assert trigger["metadata"]["serverAddress"] == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"


# --- bad input -------------------------------------------------------------------------------------------------


def _eks_t4_with(load_raw, **workload) -> dict:
    raw = load_raw("eks-t4")
    raw["autoscaling"]["workloads"][0].update(workload)
    return raw


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"namespace": "nowhere"}, "namespace", "not a workload namespace"),
        ({"pool": "missing"}, "pool", "no such pool"),
        ({"gpus_per_replica": 2}, "gpus_per_replica", "nodes have 1 GPUs"),
        ({"min_replicas": 5, "max_replicas": 2}, "min_replicas", "above max_replicas"),
        ({"target_utilization": 0}, "target_utilization", "greater than or equal to 1"),
        ({"image": "nvcr.io/nvidia/tritonserver:latest"}, "image", "pin a version"),
    ],
)
def test_workloads_the_cluster_cannot_run_are_refused_with_their_path(load_raw, change, field, message):
    problems = _problems(_eks_t4_with(load_raw, **change))
    path = f"gpucluster:cluster.autoscaling.workloads[0].{field}"
    assert path in problems and message in problems[path]


def test_autoscaling_needs_the_monitoring_stack(load_raw):
    raw = load_raw("eks-t4")
    raw["monitoring"] = {"enabled": False}
    assert "enable monitoring" in _problems(raw)["gpucluster:cluster.autoscaling.workloads"]


# --- the adapter's query on a real Prometheus ----------------------------------------------------------------


def adapter_query(rule: dict, namespace: str, pods: list[str]) -> str:
    """The query prometheus-adapter sends for a pods metric, with its template filled as the adapter does."""
    matchers = f'namespace="{namespace}",pod=~"{"|".join(pods)}"'
    return rule["metricsQuery"].replace("<<.LabelMatchers>>", matchers).replace("<<.GroupBy>>", "pod")


def test_adapter_and_keda_queries_return_the_utilisation_the_autoscaler_would_see():
    require_prometheus()
    spec = spec_of("eks-t4")
    files = render(spec).files()
    (rule,) = yaml.safe_load(files["helm/prometheus-adapter.values.yaml"])["rules"]["custom"]
    assert re.match(rule["name"]["matches"], "DCGM_FI_DEV_GPU_UTIL")
    pods = {"inference-7d9f8b6c5d-abcde": [90.0], "inference-7d9f8b6c5d-fghij": [30.0, 50.0]}
    with FakeDcgmExporter() as exporter:
        gpu = 0
        for pod, utilisations in pods.items():
            for value in utilisations:
                labels = {"namespace": "gpu-orchestrator", "pod": pod, "container": "inference", "gpu": str(gpu)}
                exporter.set("DCGM_FI_DEV_GPU_UTIL", value, **labels, UUID=f"GPU-{gpu}")
                gpu += 1
        # A pod of another namespace, same name pattern: must not count.
        exporter.set("DCGM_FI_DEV_GPU_UTIL", 5.0, namespace="other", pod="inference-1-x", gpu="9", UUID="GPU-9")
        target_labels = {"node": "gpu-node-1", "cluster": spec.name}
        with running_prometheus([], [exporter.address], DCGM_JOB, target_labels) as prom:
            series = rule["seriesQuery"]
            prom.wait_for(lambda: len(prom.api("series", **{"match[]": series})) == 4, WAIT_SECONDS, "four series")
            result = prom.query(adapter_query(rule, "gpu-orchestrator", list(pods)))
            per_pod = {sample["metric"]["pod"]: float(sample["value"][1]) for sample in result}
            assert per_pod == {"inference-7d9f8b6c5d-abcde": 90.0, "inference-7d9f8b6c5d-fghij": 40.0}
            workload = spec.autoscaling.workloads[0]
            (total,) = prom.query(keda_query(workload))
            assert float(total["value"][1]) == pytest.approx(90 + 40), "KEDA divides this sum by the target"
