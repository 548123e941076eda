"""Run Prometheus' own checkers on rendered output: ``promtool check rules`` and ``amtool check-config``.

The tools come from Debian's ``prometheus`` and ``prometheus-alertmanager`` packages. When one is not
installed the check is reported as ``unchecked`` with the reason, never as passed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

TOOL_PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class ToolResult:
    status: str  # "ok" | "fail" | "unchecked"
    detail: str = ""


def check_rule_groups(groups: list) -> ToolResult:
    """``promtool check rules`` on a rules file made of a PrometheusRule's ``spec.groups``."""
    return _run_on_file("promtool", ["check", "rules"], {"groups": groups})


def check_alertmanager_config(config: dict) -> ToolResult:
    """``amtool check-config`` on an alertmanager.yaml."""
    return _run_on_file("amtool", ["check-config"], config)


def _run_on_file(tool: str, arguments: list[str], content: dict) -> ToolResult:
    executable = shutil.which(tool)
    if executable is None:
        return ToolResult("unchecked", f"{tool} not found; install the Debian package {TOOL_PACKAGES[tool]}")
    with tempfile.TemporaryDirectory(prefix="gpucluster-promcheck-") as scratch:
        path = Path(scratch) / "checked.yaml"
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        try:
            run = subprocess.run(
                [executable, *arguments, str(path)], capture_output=True, text=True, timeout=TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            return ToolResult("fail", f"{tool} did not finish within {TIMEOUT_SECONDS} s")
    if run.returncode == 0:
        return ToolResult("ok")
    output = " ".join((run.stdout + run.stderr).replace(str(path), "<file>").split())
    return ToolResult("fail", output)
