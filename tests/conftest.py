"""Fixtures shared by the test modules."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout: the directory that holds Pulumi.yaml, gpucluster/ and stacks/."""
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Shared reference material (charts, CRDs, DCGM data) next to the checkout."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(scope="session")
def load_raw(repo_root: Path) -> Callable[[str], dict]:
    """``load_raw("eks-t4")``: a fresh deep copy of that reference stack's ``gpucluster:cluster`` dict.

    Each call returns a new copy, so a test may mutate it freely.
    """
    cache: dict[str, dict] = {}

    def load(stack_name: str) -> dict:
        if stack_name not in cache:
            path = repo_root / "stacks" / f"Pulumi.{stack_name}.yaml"
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            cache[stack_name] = document["config"]["gpucluster:cluster"]
        return copy.deepcopy(cache[stack_name])

    return load


@pytest.fixture(scope="session")
def bookworm_base() -> Path:
    """The cached Debian 12 root every test host starts from (tests/testhost.py); skips without root/debootstrap."""
    from testhost import build_base, missing_requirement

    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    try:
        return build_base()
    except RuntimeError as error:
        pytest.skip(str(error))
