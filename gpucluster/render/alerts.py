"""GPU alerting rules, with thresholds and windows from the spec (``monitoring.alerts``).

Every expression uses only metrics the rendered DCGM counters export (``gpucluster.dcgm``) or
kube-state-metrics, which kube-prometheus-stack installs. Each rule carries a severity, a ``for``
window, a summary, a description and a runbook (what to do, as text).
"""

from __future__ import annotations

from gpucluster.dcgm import UTILIZATION_METRICS
from gpucluster.spec import AlertThresholds

RULE_GROUP = "gpucluster-gpu"
# The ServiceMonitor job of dcgm-exporter: the GPU operator's Service name.
DCGM_JOB = "nvidia-dcgm-exporter"
# kube-state-metrics spells the extended resource nvidia.com/gpu as nvidia_com_gpu.
GPU_NODES = 'kube_node_status_capacity{resource="nvidia_com_gpu"} > 0'
_WHERE = "GPU {{ $labels.gpu }} ({{ $labels.UUID }}) on node {{ $labels.node }}"


def _rule(name: str, expr: str, window: str, severity: str, summary: str, description: str, runbook: str) -> dict:
    return {
        "alert": name,
        "expr": expr,
        "for": window,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description, "runbook": runbook},
    }


def alert_rules(alerts: AlertThresholds) -> list[dict]:
    """The alerting rules, in a stable order."""
    utilization = alerts.utilization_metric
    scale = UTILIZATION_METRICS[utilization]
    utilization_percent = utilization if scale == 1 else f"{utilization} * {scale}"
    power_ratio = alerts.power_limit_percent / 100
    return [
        _rule(
            "GpuTemperatureHigh",
            f"DCGM_FI_DEV_GPU_TEMP > {alerts.gpu_temperature_celsius}",
            alerts.gpu_temperature_for,
            "critical",
            "GPU temperature too high",
            f"{_WHERE} is at {{{{ $value }}}} °C (limit {alerts.gpu_temperature_celsius} °C).",
            "Check the node's fans, airflow and inlet temperature; look for throttling"
            " (DCGM_FI_DEV_THERMAL_VIOLATION). Drain the node (kubectl drain) if it keeps rising.",
        ),
        _rule(
            "GpuMemoryNearlyFull",
            "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) * 100"
            f" > {alerts.fb_memory_used_percent}",
            alerts.fb_memory_for,
            "critical",
            "GPU memory (framebuffer) nearly full",
            f"{_WHERE} (pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}}) uses {{{{ $value | humanize }}}} %"
            " of its framebuffer.",
            "The next allocation fails with CUDA out-of-memory. Lower the batch size or model size, or move the"
            " workload to a GPU with more memory; on shared GPUs check which pods share it.",
        ),
        _rule(
            "GpuUnderutilized",
            f"{utilization_percent} < {alerts.low_utilization_percent}",
            alerts.low_utilization_for,
            "warning",
            "GPU under-used",
            f"{_WHERE} (pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}}) runs at {{{{ $value | humanize }}}} %"
            f" utilisation, below {alerts.low_utilization_percent} % for {alerts.low_utilization_for}.",
            "An idle or starved GPU still costs money. Check the workload's input pipeline (CPU, storage),"
            " its batch size, or scale it in; idle nodes should be released by the node autoscaler.",
        ),
        _rule(
            "GpuXidError",
            "DCGM_FI_DEV_XID_ERRORS > 0",
            "1m",
            "warning",
            "GPU reported an XID error",
            f"{_WHERE} reported XID {{{{ $value }}}}.",
            "Look the code up in NVIDIA's XID catalogue. 13/31/43 are usually application faults; 48, 63, 64,"
            " 74, 79, 92, 94, 95 and 119+ point at hardware or driver: cordon the node, drain it and reset the"
            " GPU (or reboot); the value stays until the driver reloads.",
        ),
        _rule(
            "GpuEccUncorrectableErrors",
            "increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[10m]) > 0",
            "0m",
            "critical",
            "GPU uncorrectable (double-bit) ECC errors",
            f"{_WHERE} reported double-bit ECC errors in the last 10 minutes.",
            "Data on this GPU may be corrupt: cordon and drain the node, reset the GPU; if errors return or row"
            " remapping fails, have the GPU replaced.",
        ),
        _rule(
            "GpuRowRemapFailure",
            "DCGM_FI_DEV_ROW_REMAP_FAILURE > 0",
            "0m",
            "critical",
            "GPU memory row remapping failed",
            f"{_WHERE} could not remap a failing memory row.",
            "The GPU has run out of spare rows: cordon and drain the node and open a hardware replacement case.",
        ),
        _rule(
            "GpuPcieReplays",
            f"increase(DCGM_FI_DEV_PCIE_REPLAY_COUNTER[10m]) > {alerts.pcie_replays_per_10m}",
            "5m",
            "warning",
            "GPU PCIe link retrying",
            f"{_WHERE} replayed {{{{ $value | humanize }}}} PCIe transfers in 10 minutes.",
            "A flaky PCIe link (riser, slot, cable) slows transfers and precedes XID 79. Reseat the GPU or"
            " riser at the next maintenance window; check the link width and generation with nvidia-smi -q.",
        ),
        _rule(
            "GpuPowerOverLimit",
            f"DCGM_FI_DEV_POWER_USAGE > DCGM_FI_DEV_ENFORCED_POWER_LIMIT * {power_ratio:g}",
            alerts.power_for,
            "warning",
            "GPU power draw over its limit",
            f"{_WHERE} draws {{{{ $value | humanize }}}} W, above {alerts.power_limit_percent} % of its"
            " enforced power limit.",
            "The GPU is power-capped and clocks drop. Check the rack's power budget and the power limit"
            " (nvidia-smi -q -d POWER); a lowered limit may be intended.",
        ),
        _rule(
            "GpuDcgmExporterMissing",
            f'count by (node) ({GPU_NODES}) unless on (node) (up{{job="{DCGM_JOB}"}} == 1)',
            alerts.exporter_missing_for,
            "warning",
            "GPU node without GPU metrics",
            "GPU node {{ $labels.node }} has no healthy dcgm-exporter: its GPUs are not monitored and the"
            " GPU alerts and autoscaling cannot see it.",
            "kubectl -n gpu-operator get pods -l app=nvidia-dcgm-exporter -o wide; check the pod on that"
            " node (driver not loaded, DCGM failing, port 9400 blocked by a NetworkPolicy).",
        ),
        _rule(
            "GpuNodeNotReady",
            f'kube_node_status_condition{{condition="Ready",status="true"}} == 0 and on (node) ({GPU_NODES})',
            alerts.node_not_ready_for,
            "critical",
            "GPU node not ready",
            "GPU node {{ $labels.node }} has been NotReady: its GPUs are lost to the cluster.",
            "kubectl describe node <node>; check the kubelet, the container runtime and the NVIDIA"
            " driver (a crashed driver fails the device plugin); drain and reboot if it does not recover.",
        ),
    ]


def rule_groups(alerts: AlertThresholds) -> list[dict]:
    """The ``spec.groups`` of the PrometheusRule (also a Prometheus rules file as is)."""
    return [{"name": RULE_GROUP, "rules": alert_rules(alerts)}]
