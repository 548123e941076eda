"""Golden files: each reference stack's rendered output is committed under tests/golden/<stack>/.

A change to rendering shows up as a reviewable diff of these files. After an intended change,
regenerate with ``GPUCLUSTER_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py``. In CI
(``CI=true``) that variable is refused, so CI always compares against the committed files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpucluster.render import render
from gpucluster.stackfile import list_stacks, load_stack, stack_name

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
STACK_FILES = list_stacks(ROOT / "stacks")


@pytest.mark.parametrize("path", STACK_FILES, ids=stack_name)
def test_rendered_output_matches_golden_files(path):
    files = render(load_stack(str(path)).spec).files()
    expected_dir = GOLDEN / stack_name(path)
    if os.environ.get("GPUCLUSTER_UPDATE_GOLDEN"):
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail("GPUCLUSTER_UPDATE_GOLDEN is set in CI: CI must compare against the committed golden files")
        shutil.rmtree(expected_dir, ignore_errors=True)  # the test's own directory: exactly the rendered files
        for name, content in files.items():
            (expected_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / name).write_bytes(content)
    expected = {str(p.relative_to(expected_dir)): p.read_bytes() for p in expected_dir.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected), "files added or removed; see the module docstring to regenerate"
    for name, content in files.items():
        assert content == expected[name], f"{name} differs from {expected_dir / name}"


def test_golden_files_are_not_rewritten_in_ci():
    before = {p: p.read_bytes() for p in GOLDEN.rglob("*") if p.is_file()}
    env = {**os.environ, "CI": "true", "GPUCLUSTER_UPDATE_GOLDEN": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{_first_test_id()}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 1, result.stdout
    assert "GPUCLUSTER_UPDATE_GOLDEN is set in CI" in result.stdout
    assert {p: p.read_bytes() for p in GOLDEN.rglob("*") if p.is_file()} == before


def _first_test_id() -> str:
    return f"test_rendered_output_matches_golden_files[{stack_name(STACK_FILES[0])}]"
