"""Grafana dashboards: valid JSON in sidecar ConfigMaps, templated by cluster/node/GPU, and every panel
query parses (promtool, as a recording rule) and selects only metrics the DCGM exporter exports."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from prometheus import metric_names

from gpucluster.dcgm import exported_metrics
from gpucluster.plan import make_plan
from gpucluster.render.monitoring import monitoring_objects
from gpucluster.spec import MONITORING_NAMESPACE
from stacks import spec_of

SPEC = spec_of("eks-t4")


def dashboards() -> dict[str, dict]:
    """Title -> dashboard JSON, loaded from the rendered ConfigMaps."""
    loaded = {}
    for config_map in monitoring_objects(make_plan(SPEC)):
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["namespace"] == MONITORING_NAMESPACE
        (content,) = config_map["data"].values()
        board = json.loads(content)
        loaded[board["title"]] = board
    return loaded


def queries() -> list[str]:
    return [
        target["expr"] for board in dashboards().values() for panel in board["panels"] for target in panel["targets"]
    ]


def test_seed_004_dashboards_and_the_rest_exist():
    titles = set(dashboards())
    assert {"GPU Temperature", "VRAM Usage", "GPU Utilization", "GPU Power", "GPU Errors (XID, ECC, PCIe)"} == titles


def test_dashboards_are_templated_by_cluster_node_and_gpu():
    for title, board in dashboards().items():
        variables = [v["name"] for v in board["templating"]["list"]]
        assert variables == ["datasource", "cluster", "node", "gpu"], title
        for panel in board["panels"]:
            for target in panel["targets"]:
                assert '"$cluster"' in target["expr"] and '"$node"' in target["expr"], (title, panel["title"])


def test_panels_show_series_per_node_and_per_pod():
    expressions = queries()
    assert any("by (node)" in expr for expr in expressions)
    assert sum("by (namespace, pod)" in expr for expr in expressions) >= 3


def test_every_query_uses_only_exported_dcgm_metrics():
    for expr in queries():
        names = metric_names(expr)
        assert names and names <= set(exported_metrics()), expr


def test_every_query_parses_in_promtool(tmp_path):
    """Each panel query as a recording rule: promtool check rules parses it with Prometheus' own parser."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; scripts/dev.sh installs it)")
    rules = [{"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(queries())]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


def test_no_dashboards_without_monitoring():
    assert (
        monitoring_objects(
            make_plan(
                spec_of("eks-t4", monitoring={"enabled": False}, autoscaling={"node_autoscaler": "cluster-autoscaler"})
            )
        )
        == []
    )
