"""The rendered GPU alerts on a real Prometheus scraping a fake DCGM exporter (both on 127.0.0.1).

The temperature alert's window comes from the spec (``monitoring.alerts.gpu_temperature_for``), shortened
here through the spec only, so the test sees it go pending and then firing within seconds.
"""

from __future__ import annotations

from prometheus import FakeDcgmExporter, rendered_rule_groups, require_prometheus, running_prometheus

from gpucluster.render.alerts import DCGM_JOB
from stacks import spec_of

ALERT = "GpuTemperatureHigh"
WAIT_SECONDS = 30


def test_temperature_alert_fires_at_90_and_not_at_60():
    require_prometheus()
    spec = spec_of("eks-t4", monitoring={"alerts": {"gpu_temperature_celsius": 85, "gpu_temperature_for": "3s"}})
    labels = {"namespace": "gpu-orchestrator", "pod": "inference-0", "container": "model"}
    with FakeDcgmExporter() as exporter:
        exporter.set("DCGM_FI_DEV_GPU_TEMP", 60, **labels)
        target_labels = {"node": "gpu-node-1", "cluster": spec.name}
        with running_prometheus(rendered_rule_groups(spec), [exporter.address], DCGM_JOB, target_labels) as prom:
            query = 'DCGM_FI_DEV_GPU_TEMP{pod="inference-0"}'
            # At 60 °C: more scrapes and evaluations (1 s apart) than the 3 s window, and no alert.
            samples = f"count_over_time({query}[1m]) >= 6"
            prom.wait_for(lambda: prom.query(samples), WAIT_SECONDS, "six scrapes at 60 °C")
            rule = _rule(prom, ALERT)
            assert rule["health"] == "ok", rule
            assert rule["duration"] == 3
            assert prom.alerts(ALERT) == []

            exporter.set("DCGM_FI_DEV_GPU_TEMP", 90, **labels)
            pending = prom.wait_for(lambda: prom.alerts(ALERT), WAIT_SECONDS, f"{ALERT} to appear")
            assert pending[0]["state"] in ("pending", "firing")
            firing = prom.wait_for(
                lambda: [a for a in prom.alerts(ALERT) if a["state"] == "firing"], WAIT_SECONDS, f"{ALERT} firing"
            )
            alert = firing[0]
            assert alert["labels"]["severity"] == "critical"
            assert alert["labels"]["node"] == "gpu-node-1"
            assert alert["labels"]["pod"] == "inference-0"  # honor_labels keeps the exporter's pod label
            assert float(alert["value"]) == 90
            assert "90" in alert["annotations"]["description"]

            exporter.set("DCGM_FI_DEV_GPU_TEMP", 60, **labels)
            prom.wait_for(lambda: not prom.alerts(ALERT), WAIT_SECONDS, f"{ALERT} to resolve at 60 °C")


def _rule(prom, name: str) -> dict:
    """The loaded alerting rule called ``name`` (from /api/v1/rules)."""
    rules = [r for g in prom.api("rules")["groups"] for r in g["rules"] if r.get("name") == name]
    assert len(rules) == 1, f"{name} is not loaded exactly once"
    return rules[0]
