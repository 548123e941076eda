"""Golden files: each reference stack's rendered output is committed under tests/golden/<stack>/.

A change to rendering shows up as a reviewable diff of these files. After an intended change,
regenerate with ``GPUCLUSTER_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpucluster.output import write_tree
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
        write_tree(files, expected_dir)
    expected = {str(p.relative_to(expected_dir)): p.read_bytes() for p in expected_dir.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected), "files added or removed; see the module docstring to regenerate"
    for name, content in files.items():
        assert content == expected[name], f"{name} differs from {expected_dir / name}"
