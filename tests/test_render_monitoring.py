"""The monitoring stack: kube-prometheus-stack values, monitors labelled for its Prometheus, Alertmanager
receivers reading Secrets, promtool/amtool in validate, and bad monitoring input refused."""

from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from gpucluster.cli import app
from gpucluster.plan import make_plan
from gpucluster.promcheck import check_alertmanager_config
from gpucluster.render import render
from gpucluster.render.monitoring import (
    KUBE_PROMETHEUS_STACK_RELEASE,
    PROMETHEUS_SELECTOR,
    alertmanager_config,
    monitoring_releases,
)
from gpucluster.validate import validate_output
from stacks import REFERENCE, ROOT, spec_of

RECEIVERS = {
    "receivers": [
        {"name": "oncall", "pagerduty": {"routing_key": {"name": "alerting", "key": "pagerduty"}}},
        {"name": "chat", "slack": {"channel": "#gpu-alerts", "api_url": {"name": "alerting", "key": "slack"}}},
        {
            "name": "hook",
            "webhook": {"url": "https://hooks.example.com/gpu", "bearer_token": {"name": "hook-token", "key": "t"}},
        },
        {
            "name": "mail",
            "email": {
                "to": "ops@example.com",
                "sender": "alerts@example.com",
                "smarthost": "smtp.example.com:587",
                "username": "alerts",
                "password": {"name": "smtp", "key": "password"},
            },
        },
    ],
    "routes": [
        {"receiver": "oncall", "matchers": ['severity="critical"'], "continue_matching": True},
        {"receiver": "chat", "matchers": ['alertname=~"Gpu.+"']},
    ],
    "default_receiver": "mail",
}


def needs(tool: str):
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} not installed (scripts/dev.sh installs it)")


def releases(spec) -> dict:
    return {release.name: release for release in render(spec).releases}


def test_stack_release_is_pinned_and_the_spec_sets_its_values():
    spec = spec_of(
        "onprem-dgx",
        monitoring={"retention": "30d", "storage": {"size": "200Gi", "storage_class": "fast-ssd"}},
    )
    release = releases(spec)[KUBE_PROMETHEUS_STACK_RELEASE]
    assert (release.chart, release.version, release.namespace) == ("kube-prometheus-stack", "88.5.3", "monitoring")
    prometheus = release.values["prometheus"]["prometheusSpec"]
    assert prometheus["retention"] == "30d"
    claim = prometheus["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "fast-ssd"
    assert claim["resources"]["requests"]["storage"] == "200Gi"
    assert prometheus["resources"]["limits"]["memory"] == prometheus["resources"]["requests"]["memory"]
    # Only monitors labelled for this release are selected, so a tenant's ServiceMonitor cannot feed alerts.
    assert prometheus["serviceMonitorSelectorNilUsesHelmValues"] is True
    assert release.values["grafana"]["admin"]["existingSecret"] == "grafana-admin"


def test_every_monitor_and_rule_carries_the_prometheus_selector_labels():
    spec = spec_of("eks-t4")
    bundle = render(spec)
    by_name = {release.name: release for release in bundle.releases}
    dcgm = by_name["gpu-operator"].values["dcgmExporter"]["serviceMonitor"]
    assert dcgm["enabled"] and dcgm["additionalLabels"] == PROMETHEUS_SELECTOR
    ingress = by_name["nginx-ingress"].values["prometheus"]["serviceMonitor"]
    assert ingress == {"create": True, "labels": PROMETHEUS_SELECTOR}
    previews = [obj for release in bundle.releases for obj in release.previews]
    monitors = [obj for obj in previews if obj["kind"] in ("ServiceMonitor", "PrometheusRule")]
    assert {obj["kind"] for obj in monitors} == {"ServiceMonitor", "PrometheusRule"}
    for obj in monitors:
        assert PROMETHEUS_SELECTOR.items() <= obj["metadata"]["labels"].items(), obj["metadata"]["name"]


def test_dcgm_exporter_runs_in_kubernetes_mode_and_keeps_pod_labels():
    values = releases(spec_of("eks-t4"))["gpu-operator"].values["dcgmExporter"]
    assert {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"} in values["env"]
    monitor = values["serviceMonitor"]
    assert monitor["honorLabels"] is True  # the exporter's pod/namespace labels, not exported_pod
    targets = {relabeling["targetLabel"] for relabeling in monitor["relabelings"]}
    assert targets == {"node", "cluster"}


def test_without_monitoring_no_stack_and_every_monitor_off():
    spec = spec_of("eks-t4", monitoring={"enabled": False}, autoscaling={"node_autoscaler": "cluster-autoscaler"})
    bundle = render(spec)
    assert monitoring_releases(make_plan(spec)) == []
    by_name = {release.name: release for release in bundle.releases}
    assert by_name["gpu-operator"].values["dcgmExporter"]["serviceMonitor"] == {"enabled": False}
    assert by_name["nginx-ingress"].values["prometheus"]["serviceMonitor"] == {"create": False}
    kinds = {obj["kind"] for release in bundle.releases for obj in release.previews}
    assert "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds
    assert "monitoring" not in [ns["metadata"]["name"] for ns in bundle.manifests["00-namespaces"]]


def test_receivers_read_credentials_from_mounted_secrets():
    spec = spec_of("eks-t4", monitoring={"alertmanager": RECEIVERS})
    values = releases(spec)[KUBE_PROMETHEUS_STACK_RELEASE].values["alertmanager"]
    assert values["alertmanagerSpec"]["secrets"] == ["alerting", "hook-token", "smtp"]
    receivers = {r["name"]: r for r in values["config"]["receivers"]}
    assert receivers["oncall"]["pagerduty_configs"][0] == {
        "routing_key_file": "/etc/alertmanager/secrets/alerting/pagerduty"
    }
    assert receivers["chat"]["slack_configs"][0]["api_url_file"] == "/etc/alertmanager/secrets/alerting/slack"
    hook = receivers["hook"]["webhook_configs"][0]
    assert hook["http_config"]["authorization"]["credentials_file"] == "/etc/alertmanager/secrets/hook-token/t"
    assert receivers["mail"]["email_configs"][0]["auth_password_file"] == "/etc/alertmanager/secrets/smtp/password"
    route = values["config"]["route"]
    assert route["receiver"] == "mail"
    assert [r["receiver"] for r in route["routes"]] == ["null", "oncall", "chat"]


@needs("amtool")
def test_amtool_accepts_every_receiver_kind():
    result = check_alertmanager_config(alertmanager_config(spec_of("eks-t4", monitoring={"alertmanager": RECEIVERS})))
    assert result.status == "ok", result.detail


@needs("amtool")
def test_amtool_rejects_a_route_to_a_missing_receiver():
    config = alertmanager_config(spec_of("eks-t4"))
    config["route"]["routes"].append({"receiver": "nobody", "matchers": ['severity="critical"']})
    result = check_alertmanager_config(config)
    assert result.status == "fail"
    assert "nobody" in result.detail


@needs("promtool")
@needs("amtool")
@pytest.mark.parametrize("stack", ["eks-t4", "onprem-dgx"])
def test_validate_runs_promtool_and_amtool_on_the_rendered_stack(tmp_path, stack):
    spec = spec_of(stack)
    for path, content in render(spec).files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    report = validate_output(tmp_path, spec.kubernetes.version)
    tools = {c.check: c for c in report.checks if c.check in ("promtool", "amtool")}
    assert set(tools) == {"promtool", "amtool"}
    assert all(check.status == "ok" for check in tools.values()), tools


@needs("promtool")
def test_validate_fails_a_rule_promtool_rejects(tmp_path):
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "broken", "namespace": "monitoring"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "Broken", "expr": "DCGM_FI_DEV_GPU_TEMP >"}]}]},
    }
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "rules.yaml").write_text(yaml.safe_dump(rule))
    (check,) = [c for c in validate_output(tmp_path, "1.33").checks if c.check == "promtool"]
    assert check.status == "fail"
    assert "parse error" in check.detail


def test_missing_tools_are_unchecked_not_ok(tmp_path, monkeypatch):
    spec = spec_of("eks-t4")
    for path, content in render(spec).files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tools = [c for c in validate_output(tmp_path, "1.33").checks if c.check in ("promtool", "amtool")]
    assert {c.check for c in tools} == {"promtool", "amtool"}
    assert all(c.status == "unchecked" and "Debian package" in c.detail for c in tools)


BAD_MONITORING = [
    ({"alerts": {"gpu_temperature_celsius": 200}}, "monitoring.alerts.gpu_temperature_celsius"),
    ({"alerts": {"fb_memory_used_percent": 120}}, "monitoring.alerts.fb_memory_used_percent"),
    ({"alerts": {"low_utilization_percent": 0}}, "monitoring.alerts.low_utilization_percent"),
    ({"alerts": {"utilization_metric": "DCGM_FI_DEV_GPU_UTILISATION"}}, "monitoring.alerts.utilization_metric"),
    ({"alerts": {"utilization_metric": "DCGM_FI_DEV_GPU_TEMP"}}, "monitoring.alerts.utilization_metric"),
    ({"alerts": {"gpu_temperature_for": "5 minutes"}}, "monitoring.alerts.gpu_temperature_for"),
    ({"retention": "forever"}, "monitoring.retention"),
    (
        {"alertmanager": {"routes": [{"receiver": "pager", "matchers": ['severity="critical"']}]}},
        "monitoring.alertmanager.routes[0].receiver",
    ),
    (
        {"alertmanager": {"routes": [{"receiver": "null", "matchers": ["severity critical"]}]}},
        "monitoring.alertmanager.routes[0].matchers[0]",
    ),
    ({"alertmanager": {"default_receiver": "pager"}}, "monitoring.alertmanager.default_receiver"),
    ({"alertmanager": {"receivers": [{"name": "empty"}]}}, "monitoring.alertmanager.receivers[0]"),
    (
        {"alertmanager": {"receivers": [{"name": "x", "slack": {"channel": "#a", "api_url": "https://hooks"}}]}},
        "monitoring.alertmanager.receivers[0].slack.api_url",
    ),
]


@pytest.mark.parametrize(("monitoring", "path"), BAD_MONITORING, ids=[p for _, p in BAD_MONITORING])
def test_bad_monitoring_input_exits_2_naming_the_field_and_writes_nothing(tmp_path, monitoring, path):
    raw = yaml.safe_load((ROOT / "stacks" / "Pulumi.eks-t4.yaml").read_text())
    raw["config"]["gpucluster:cluster"]["monitoring"] = monitoring
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", "--stack", str(stack), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert path in result.output
    assert not out.exists()


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"upstream reference data not found at {REFERENCE}")
def test_stack_values_with_receivers_exist_in_the_chart(tmp_path):
    spec = spec_of("eks-t4", monitoring={"alertmanager": RECEIVERS, "storage": {"storage_class": "gp3"}})
    for path, content in render(spec).files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    report = validate_output(tmp_path, "1.33", REFERENCE / "crds", REFERENCE / "charts")
    assert not report.failed, [c for c in report.checks if c.status == "fail"]
