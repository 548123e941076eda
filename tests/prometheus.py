"""Real Prometheus for tests: a fake DCGM exporter and a Prometheus process scraping it, both on 127.0.0.1.

``FakeDcgmExporter`` serves the Prometheus text format with values a test sets (``set``); ``Prometheus``
runs the Debian ``prometheus`` binary in a temporary directory with short scrape and evaluation
intervals, loads rule groups, and answers queries through the HTTP API. Everything started is stopped
on exit; every wait is bounded. Tests skip (``require_prometheus``) when the binary is absent.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from gpucluster.dcgm import exported_metrics
from gpucluster.render import render
from gpucluster.spec import ClusterSpec

LOCALHOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30
# Labels dcgm-exporter puts on a GPU's series; in Kubernetes mode also the pod using it.
GPU_LABELS = {
    "gpu": "0",
    "UUID": "GPU-00000000-0000-0000-0000-000000000000",
    "device": "nvidia0",
    "modelName": "Tesla T4",
    "Hostname": "gpu-node-1",
    "DCGM_FI_DRIVER_VERSION": "580.105.08",
}


def require_prometheus() -> str:
    """The prometheus binary, or skip the test with the reason."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package 'prometheus'; scripts/dev.sh installs it)")
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (parsed, not pattern-matched)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def rendered_rule_groups(spec: ClusterSpec) -> list[dict]:
    """The rule groups of every PrometheusRule a spec renders, read back from the rendered files."""
    rules = []
    for path, content in render(spec).files().items():
        if path.endswith(".yaml"):
            for obj in yaml.safe_load_all(content):
                if isinstance(obj, dict) and obj.get("kind") == "PrometheusRule":
                    rules.extend(obj["spec"]["groups"])
    return rules


class FakeDcgmExporter:
    """A /metrics endpoint serving DCGM series whose values the test sets; only exported metric names."""

    def __init__(self) -> None:
        self._samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.metrics_text().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def set(self, metric: str, value: float, **labels: str) -> None:
        """Set one series: ``metric`` with the GPU's labels, overridden or extended by ``labels``."""
        if metric not in exported_metrics():
            raise ValueError(f"{metric} is not exported by the rendered DCGM counters")
        key = (metric, tuple(sorted({**GPU_LABELS, **labels}.items())))
        with self._lock:
            self._samples[key] = value

    def metrics_text(self) -> str:
        lines = []
        with self._lock:
            samples = sorted(self._samples.items())
        for metric in dict.fromkeys(name for (name, _), _value in samples):
            lines.append(f"# TYPE {metric} {exported_metrics()[metric]}")
            for (name, labels), value in samples:
                if name == metric:
                    rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                    lines.append(f"{name}{{{rendered}}} {value}")
        return "\n".join(lines) + "\n"

    def __enter__(self) -> FakeDcgmExporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Prometheus:
    """A running Prometheus: query it, list its alerts."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            payload = json.load(response)
        assert payload["status"] == "success", payload
        return payload["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def alerts(self, name: str) -> list[dict]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"].get("alertname") == name]

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll ``condition`` until it returns something truthy, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextmanager
def running_prometheus(
    rule_groups: list[dict], targets: list[str], job: str, target_labels: dict[str, str]
) -> Iterator[Prometheus]:
    """Start Prometheus scraping ``targets`` every second as ``job`` and evaluating ``rule_groups``."""
    binary = require_prometheus()
    with tempfile.TemporaryDirectory(prefix="gpucluster-prometheus-") as scratch:
        directory = Path(scratch)
        (directory / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(directory / "rules.yaml")],
            "scrape_configs": [
                {
                    "job_name": job,
                    "honor_labels": True,
                    "static_configs": [{"targets": targets, "labels": target_labels}],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        log = (directory / "prometheus.log").open("w")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address={LOCALHOST}:{port}",
                "--web.console.templates=/nonexistent",
                "--web.console.libraries=/nonexistent",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            server = Prometheus(f"http://{LOCALHOST}:{port}")
            server.wait_for(lambda: _ready(server, process), START_TIMEOUT_SECONDS, "Prometheus to become ready")
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


def _ready(server: Prometheus, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"prometheus exited with {process.returncode} before becoming ready")
    try:
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
