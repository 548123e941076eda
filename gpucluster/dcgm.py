"""The DCGM metrics gpucluster's dcgm-exporter exports: the counters file rendered for the exporter.

Alerts, dashboards and the spec's metric names are checked against this list, so nothing refers to a
series the exporter does not produce.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

COUNTERS_FILE = "dcgm-metrics.csv"
# Metrics the GPU-utilisation alert may use, with the factor that turns a sample into percent.
UTILIZATION_METRICS = {
    "DCGM_FI_DEV_GPU_UTIL": 1,
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": 100,
    "DCGM_FI_PROF_SM_ACTIVE": 100,
}


def counters_csv() -> str:
    """The counters file as shipped in the package (dcgm-exporter's ``-f`` / DCGM_EXPORTER_COLLECTORS)."""
    return resources.files("gpucluster").joinpath(f"data/{COUNTERS_FILE}").read_text(encoding="utf-8")


@cache
def exported_metrics() -> dict[str, str]:
    """Metric name -> Prometheus type for every exported field; ``label`` fields become labels, not series."""
    metrics: dict[str, str] = {}
    for line in counters_csv().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, kind, _help = (part.strip() for part in line.split(",", 2))
            if kind != "label":
                metrics[name] = kind
    return metrics
