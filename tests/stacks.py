"""Shared test helpers: the project's paths and the reference stacks as specs."""

from __future__ import annotations

from pathlib import Path

from gpucluster.spec import ClusterSpec
from gpucluster.stackfile import list_stacks, load_stack, stack_name

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
STACKS = [stack_name(path) for path in list_stacks(ROOT / "stacks")]


def spec_of(stack: str, **sections) -> ClusterSpec:
    """A reference stack's spec, with whole top-level sections replaced and validated again."""
    spec = load_stack(str(ROOT / "stacks" / f"Pulumi.{stack}.yaml")).spec
    return ClusterSpec.model_validate({**spec.model_dump(), **sections}) if sections else spec
