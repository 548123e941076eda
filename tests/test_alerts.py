"""The GPU alerts under ``promtool test rules``: each fires on a bad series and stays silent on a good one.

The cases are written here, independently of the rule expressions; every rendered alert must have one.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from prometheus import metric_names, rendered_rule_groups

from gpucluster.dcgm import exported_metrics
from gpucluster.render.alerts import alert_rules
from gpucluster.spec import AlertThresholds
from stacks import spec_of

GPU = {"gpu": "0", "UUID": "GPU-1", "node": "gpu-node-1", "pod": "infer-0", "namespace": "team-a"}
KUBE_STATE_METRICS = {"kube_node_status_capacity", "kube_node_status_condition", "up"}


def _series(metric: str, labels: dict[str, str], values: str) -> dict:
    rendered = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{rendered}}}", "values": values}


def _gpu(metric: str, values: str) -> dict:
    return _series(metric, GPU, values)


GPU_NODE = _series("kube_node_status_capacity", {"node": "gpu-node-1", "resource": "nvidia_com_gpu"}, "4x20")
CPU_NODE = _series("kube_node_status_capacity", {"node": "cpu-node-1", "resource": "cpu"}, "16x20")
EXPORTER_UP = {"job": "nvidia-dcgm-exporter", "node": "gpu-node-1"}
READY = {"node": "gpu-node-1", "condition": "Ready", "status": "true"}


class Case:
    """An alert's bad series (at ``at`` it fires with ``labels`` and ``description``) and good series (silent)."""

    def __init__(self, bad: list[dict], good: list[dict], at: str, description: str, labels: dict | None = None):
        self.bad, self.good, self.at, self.description = bad, good, at, description
        self.labels = GPU if labels is None else labels


W = "GPU 0 (GPU-1) on node gpu-node-1"
CASES = {
    "GpuTemperatureHigh": Case(
        [_gpu("DCGM_FI_DEV_GPU_TEMP", "90x10")],
        [_gpu("DCGM_FI_DEV_GPU_TEMP", "84x10")],
        "10m",
        f"{W} is at 90 °C (limit 85 °C).",
    ),
    "GpuMemoryNearlyFull": Case(
        [_gpu("DCGM_FI_DEV_FB_USED", "15900x15"), _gpu("DCGM_FI_DEV_FB_FREE", "100x15")],
        [_gpu("DCGM_FI_DEV_FB_USED", "12000x15"), _gpu("DCGM_FI_DEV_FB_FREE", "4000x15")],
        "15m",
        f"{W} (pod team-a/infer-0) uses 99.38 % of its framebuffer.",
    ),
    "GpuUnderutilized": Case(
        [_gpu("DCGM_FI_DEV_GPU_UTIL", "20x30")],
        [_gpu("DCGM_FI_DEV_GPU_UTIL", "95x30")],
        "30m",
        f"{W} (pod team-a/infer-0) runs at 20 % utilisation, below 70 % for 15m.",
    ),
    "GpuXidError": Case(
        [_gpu("DCGM_FI_DEV_XID_ERRORS", "0 0 79x8")],
        [_gpu("DCGM_FI_DEV_XID_ERRORS", "0x10")],
        "8m",
        f"{W} reported XID 79.",
    ),
    "GpuEccUncorrectableErrors": Case(
        [_gpu("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "0 0 0 1 1 1")],
        [_gpu("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "3x5")],
        "5m",
        f"{W} reported double-bit ECC errors in the last 10 minutes.",
    ),
    "GpuRowRemapFailure": Case(
        [_gpu("DCGM_FI_DEV_ROW_REMAP_FAILURE", "0 1x5")],
        [_gpu("DCGM_FI_DEV_ROW_REMAP_FAILURE", "0x5")],
        "5m",
        f"{W} could not remap a failing memory row.",
    ),
    "GpuPcieReplays": Case(
        [_gpu("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "0+50x20")],
        [_gpu("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "1000+0x20")],
        "20m",
        f"{W} replayed 500 PCIe transfers in 10 minutes.",
    ),
    "GpuPowerOverLimit": Case(
        [_gpu("DCGM_FI_DEV_POWER_USAGE", "80x10"), _gpu("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "70x10")],
        [_gpu("DCGM_FI_DEV_POWER_USAGE", "65x10"), _gpu("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "70x10")],
        "10m",
        f"{W} draws 80 W, above 100 % of its enforced power limit.",
    ),
    "GpuDcgmExporterMissing": Case(
        [GPU_NODE, CPU_NODE, _series("up", EXPORTER_UP, "0x20")],
        [GPU_NODE, CPU_NODE, _series("up", EXPORTER_UP, "1x20")],
        "20m",
        "GPU node gpu-node-1 has no healthy dcgm-exporter: its GPUs are not monitored and the GPU alerts and"
        " autoscaling cannot see it.",
        {"node": "gpu-node-1"},
    ),
    "GpuNodeNotReady": Case(
        [GPU_NODE, _series("kube_node_status_condition", READY, "1 0x10")],
        [
            GPU_NODE,
            _series("kube_node_status_condition", READY, "1x10"),
            _series("kube_node_status_condition", {**READY, "node": "cpu-node-1"}, "0x10"),
        ],
        "10m",
        "GPU node gpu-node-1 has been NotReady: its GPUs are lost to the cluster.",
        READY,
    ),
}


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; scripts/dev.sh installs it)")
    return binary


def run_rule_tests(tmp_path, groups: list[dict], tests: list[dict]) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    unit = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(unit, sort_keys=False))
    return subprocess.run(
        [promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def _test(name: str, series: list[dict], at: str, expected: list[dict]) -> dict:
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": expected}],
    }


def _alert(name: str, case: Case, severity: str, description: str | None = None) -> dict:
    """The alert promtool must see: the case's labels and description, the rule's summary and runbook."""
    annotations = RULES[name]["annotations"]
    return {
        "exp_labels": {**case.labels, "severity": severity},
        "exp_annotations": {**annotations, "description": description or case.description},
    }


RULES = {rule["alert"]: rule for rule in alert_rules(AlertThresholds())}


def test_every_rendered_alert_has_a_case():
    assert set(RULES) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_alert_fires_on_bad_series_and_stays_silent_on_good(tmp_path, name):
    case = CASES[name]
    groups = rendered_rule_groups(spec_of("onprem-dgx"))
    severity = RULES[name]["labels"]["severity"]
    tests = [_test(name, case.bad, case.at, [_alert(name, case, severity)]), _test(name, case.good, case.at, [])]
    result = run_rule_tests(tmp_path, groups, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(tmp_path):
    """The harness can fail: expecting the temperature alert on a cool GPU is reported."""
    case = CASES["GpuTemperatureHigh"]
    wrong = [_test("GpuTemperatureHigh", case.good, case.at, [_alert("GpuTemperatureHigh", case, "critical")])]
    result = run_rule_tests(tmp_path, rendered_rule_groups(spec_of("onprem-dgx")), wrong)
    assert result.returncode != 0
    assert "GpuTemperatureHigh" in result.stdout + result.stderr


def test_thresholds_and_windows_come_from_the_spec(tmp_path):
    alerts = {"gpu_temperature_celsius": 75, "gpu_temperature_for": "2m", "low_utilization_percent": 30}
    groups = rendered_rule_groups(spec_of("onprem-dgx", monitoring={"alerts": alerts}))
    warm = [_gpu("DCGM_FI_DEV_GPU_TEMP", "80x10")]
    busy_enough = [_gpu("DCGM_FI_DEV_GPU_UTIL", "50x30")]
    hot = _alert("GpuTemperatureHigh", CASES["GpuTemperatureHigh"], "critical", f"{W} is at 80 °C (limit 75 °C).")
    tests = [
        _test("GpuTemperatureHigh", warm, "2m", [hot]),
        _test("GpuTemperatureHigh", warm, "1m", []),  # still pending inside the 2m window
        _test("GpuUnderutilized", busy_enough, "30m", []),
    ]
    result = run_rule_tests(tmp_path, groups, tests)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("metric", ["DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_SM_ACTIVE"])
def test_ratio_utilization_metrics_are_compared_in_percent(tmp_path, metric):
    groups = rendered_rule_groups(spec_of("onprem-dgx", monitoring={"alerts": {"utilization_metric": metric}}))
    idle = _alert(
        "GpuUnderutilized",
        CASES["GpuUnderutilized"],
        "warning",
        f"{W} (pod team-a/infer-0) runs at 20 % utilisation, below 70 % for 15m.",
    )
    tests = [
        _test("GpuUnderutilized", [_gpu(metric, "0.2x30")], "30m", [idle]),
        _test("GpuUnderutilized", [_gpu(metric, "0.9x30")], "30m", []),
    ]
    result = run_rule_tests(tmp_path, groups, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_use_only_exported_dcgm_metrics_and_kube_state_metrics():
    for rule in RULES.values():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = names - set(exported_metrics()) - KUBE_STATE_METRICS
        assert not unknown, f"{rule['alert']} uses {unknown}"


def test_every_alert_has_severity_window_summary_and_runbook():
    for rule in RULES.values():
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["for"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}
        assert all(text.strip() for text in rule["annotations"].values())
