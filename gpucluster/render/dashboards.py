"""Grafana dashboards for the GPUs, built with grafana-foundation-sdk and shipped as ConfigMaps.

kube-prometheus-stack's Grafana sidecar loads every ConfigMap labelled ``grafana_dashboard: "1"`` in
the monitoring namespace. Each dashboard is templated by cluster, node and GPU (the ``cluster`` and
``node`` labels come from the dcgm-exporter ServiceMonitor's relabelings), and shows per-GPU and
per-pod series (dcgm-exporter's Kubernetes mode adds ``namespace``, ``pod`` and ``container``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

from gpucluster.render.k8s import config_map
from gpucluster.spec import MONITORING_NAMESPACE

SIDECAR_LABEL = {"grafana_dashboard": "1"}
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every panel query selects the template variables' values.
SELECTOR = 'cluster=~"$cluster", node=~"$node", gpu=~"$gpu"'
PER_GPU = "{{node}} GPU {{gpu}}"
PER_POD = "{{namespace}}/{{pod}}"


@dataclass(frozen=True)
class Chart:
    """One panel: a title, a unit, PromQL queries (legend -> expression) and how wide it is (of 24)."""

    title: str
    unit: str
    queries: dict[str, str]
    width: int = 12
    kind: str = "timeseries"
    description: str = ""


def _sel(metric: str) -> str:
    return f"{metric}{{{SELECTOR}}}"


def _per_pod(expr: str) -> str:
    """Series of GPUs allocated to a pod (dcgm-exporter leaves ``pod`` empty on idle GPUs)."""
    allocated = expr.replace("}", ', pod!=""}', 1)
    return f"sum by (namespace, pod) ({allocated})"


DASHBOARDS: dict[str, tuple[str, list[Chart]]] = {
    "gpu-temperature": (
        "GPU Temperature",
        [
            Chart("GPU temperature", "celsius", {PER_GPU: _sel("DCGM_FI_DEV_GPU_TEMP")}, 16),
            Chart("Hottest GPU", "celsius", {"max": f"max({_sel('DCGM_FI_DEV_GPU_TEMP')})"}, 8, "stat"),
            Chart("Memory (HBM) temperature", "celsius", {PER_GPU: _sel("DCGM_FI_DEV_MEMORY_TEMP")}),
            Chart(
                "Thermal throttling",
                "percentunit",
                {PER_GPU: f"rate({_sel('DCGM_FI_DEV_THERMAL_VIOLATION')}[5m]) / 1e9"},
                description="Share of time the GPU was slowed down for heat.",
            ),
            Chart(
                "Average temperature by node",
                "celsius",
                {"{{node}}": f"avg by (node) ({_sel('DCGM_FI_DEV_GPU_TEMP')})"},
                24,
            ),
        ],
    ),
    "gpu-vram": (
        "VRAM Usage",
        [
            Chart(
                "Framebuffer used",
                "percent",
                {
                    PER_GPU: f"{_sel('DCGM_FI_DEV_FB_USED')} * 100"
                    f" / ({_sel('DCGM_FI_DEV_FB_USED')} + {_sel('DCGM_FI_DEV_FB_FREE')})"
                },
                16,
            ),
            Chart("VRAM in use", "mbytes", {"total": f"sum({_sel('DCGM_FI_DEV_FB_USED')})"}, 8, "stat"),
            Chart("Framebuffer used per GPU", "mbytes", {PER_GPU: _sel("DCGM_FI_DEV_FB_USED")}),
            Chart("Framebuffer used per pod", "mbytes", {PER_POD: _per_pod(_sel("DCGM_FI_DEV_FB_USED"))}),
            Chart("Framebuffer free per GPU", "mbytes", {PER_GPU: _sel("DCGM_FI_DEV_FB_FREE")}, 24),
        ],
    ),
    "gpu-utilization": (
        "GPU Utilization",
        [
            Chart("GPU utilization", "percent", {PER_GPU: _sel("DCGM_FI_DEV_GPU_UTIL")}, 16),
            Chart("Average utilization", "percent", {"avg": f"avg({_sel('DCGM_FI_DEV_GPU_UTIL')})"}, 8, "stat"),
            Chart("GPU utilization per pod", "percent", {PER_POD: _per_pod(_sel("DCGM_FI_DEV_GPU_UTIL"))}),
            Chart(
                "Average utilization by node",
                "percent",
                {"{{node}}": f"avg by (node) ({_sel('DCGM_FI_DEV_GPU_UTIL')})"},
            ),
            Chart("Memory copy utilization", "percent", {PER_GPU: _sel("DCGM_FI_DEV_MEM_COPY_UTIL")}),
            Chart(
                "Tensor core activity (datacenter GPUs)",
                "percentunit",
                {PER_GPU: _sel("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE")},
            ),
        ],
    ),
    "gpu-power": (
        "GPU Power",
        [
            Chart(
                "Power draw and enforced limit",
                "watt",
                {
                    PER_GPU: _sel("DCGM_FI_DEV_POWER_USAGE"),
                    f"limit {PER_GPU}": _sel("DCGM_FI_DEV_ENFORCED_POWER_LIMIT"),
                },
                16,
            ),
            Chart("Total power draw", "watt", {"total": f"sum({_sel('DCGM_FI_DEV_POWER_USAGE')})"}, 8, "stat"),
            Chart(
                "Power draw by node",
                "watt",
                {"{{node}}": f"sum by (node) ({_sel('DCGM_FI_DEV_POWER_USAGE')})"},
            ),
            Chart(
                "Energy per pod (last hour)",
                "kwatth",
                {PER_POD: _per_pod(f"increase({_sel('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION')}[1h])") + " / 3.6e9"},
            ),
            Chart(
                "Power capping",
                "percentunit",
                {PER_GPU: f"rate({_sel('DCGM_FI_DEV_POWER_VIOLATION')}[5m]) / 1e9"},
                24,
                description="Share of time the GPU was slowed down by its power limit.",
            ),
        ],
    ),
    "gpu-errors": (
        "GPU Errors (XID, ECC, PCIe)",
        [
            Chart(
                "Last XID error",
                "none",
                {PER_GPU: _sel("DCGM_FI_DEV_XID_ERRORS")},
                description="Value of the last XID the driver reported (0: none since the driver loaded).",
            ),
            Chart(
                "Uncorrectable (double-bit) ECC errors, 1h",
                "short",
                {PER_GPU: f"increase({_sel('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL')}[1h])"},
            ),
            Chart(
                "Correctable (single-bit) ECC errors, 1h",
                "short",
                {PER_GPU: f"increase({_sel('DCGM_FI_DEV_ECC_SBE_VOL_TOTAL')}[1h])"},
            ),
            Chart(
                "Remapped rows and remap failures",
                "short",
                {
                    f"uncorrectable {PER_GPU}": _sel("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"),
                    f"correctable {PER_GPU}": _sel("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"),
                    f"failed {PER_GPU}": _sel("DCGM_FI_DEV_ROW_REMAP_FAILURE"),
                },
            ),
            Chart(
                "PCIe replays, 10m",
                "short",
                {PER_GPU: f"increase({_sel('DCGM_FI_DEV_PCIE_REPLAY_COUNTER')}[10m])"},
                24,
            ),
        ],
    ),
}


def _variables() -> list:
    """Data source, then cluster -> node -> GPU, each narrowing the next."""
    datasource = db.DatasourceVariable("datasource").label("Data source").type("prometheus")

    def query(name: str, label: str, expr: str) -> db.QueryVariable:
        return (
            db.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query({"query": expr, "refId": f"{name}-values"})
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )

    return [
        datasource,
        query("cluster", "Cluster", "label_values(DCGM_FI_DEV_GPU_TEMP, cluster)"),
        query("node", "Node", 'label_values(DCGM_FI_DEV_GPU_TEMP{cluster=~"$cluster"}, node)'),
        query("gpu", "GPU", 'label_values(DCGM_FI_DEV_GPU_TEMP{cluster=~"$cluster", node=~"$node"}, gpu)'),
    ]


def _panel(chart: Chart):
    panel = timeseries.Panel() if chart.kind == "timeseries" else stat.Panel()
    panel = panel.title(chart.title).unit(chart.unit).datasource(DATASOURCE).span(chart.width).height(8)
    if chart.description:
        panel = panel.description(chart.description)
    for index, (legend, expr) in enumerate(chart.queries.items()):
        panel = panel.with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + index)))
    return panel


def dashboard(uid: str, title: str, charts: list[Chart]) -> dict:
    """One dashboard as Grafana's JSON model (a dict)."""
    builder = (
        db.Dashboard(title)
        .uid(f"gpucluster-{uid}")
        .tags(["gpu", "dcgm", "gpucluster"])
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("utc")
        .readonly()
    )
    for variable in _variables():
        builder = builder.with_variable(variable)
    for chart in charts:
        builder = builder.with_panel(_panel(chart))
    return _without_nulls(json.loads(json.dumps(builder.build(), cls=JSONEncoder)))


def _without_nulls(value: Any) -> Any:
    """Drop the SDK's unset (null) fields, which Grafana would otherwise read as explicit values."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def dashboard_config_maps() -> list[dict]:
    """One ConfigMap per dashboard in the monitoring namespace, labelled for Grafana's sidecar."""
    return [
        config_map(
            f"gpucluster-dashboard-{uid}",
            MONITORING_NAMESPACE,
            {f"{uid}.json": json.dumps(dashboard(uid, title, charts), indent=1, sort_keys=True) + "\n"},
            labels=SIDECAR_LABEL,
        )
        for uid, (title, charts) in DASHBOARDS.items()
    ]
