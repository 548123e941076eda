"""Static checks run with the tests, configured in pyproject.toml: ruff (lint and format) and mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (scripts/dev.sh installs it with the test extras)")
    return found


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_static_check_is_clean(command):
    result = subprocess.run([_tool(command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_runs_show_skip_reasons(tmp_path):
    """The project's pytest options (pyproject.toml, used by scripts/dev.sh test) print why a test was skipped."""
    probe = tmp_path / "test_probe.py"
    probe.write_text("import pytest\n\ndef test_needs_tool():\n    pytest.skip('the probe tool is absent')\n")
    command = [sys.executable, "-m", "pytest", "-q", "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider"]
    result = subprocess.run([*command, str(probe)], cwd=tmp_path, capture_output=True, text=True)
    assert "SKIPPED" in result.stdout and "the probe tool is absent" in result.stdout, result.stdout
