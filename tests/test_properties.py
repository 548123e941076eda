"""Properties over the whole spec space (strategies in ``tests/strategies.py``):

1. every valid spec renders deterministically to output that passes every schema check (nothing left
   unchecked), with no object rendered twice and no container set up for EFA without requesting it;
2. every spec with one known-invalid change makes ``gpucluster render`` and ``gpucluster validate`` exit 2,
   naming the field, without a traceback and without writing anything.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import MUTATIONS, Mutation, broken_specs, valid_specs
from typer.testing import CliRunner

from gpucluster.cli import app
from gpucluster.output import write_tree
from gpucluster.render import render
from gpucluster.render.nccl import efa_env_without_request
from gpucluster.spec import SYSTEM_NAMESPACES, ClusterSpec
from gpucluster.stackfile import SpecError, parse_spec
from gpucluster.validate import Check, validate_output

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
EXAMPLES_PER_MUTATION = 12
runner = CliRunner()


@pytest.fixture(scope="module")
def reference(reference_dir: Path) -> Path:
    """The upstream CRDs and chart values; the render property is skipped without them."""
    if not (reference_dir / "crds").is_dir() or not (reference_dir / "charts").is_dir():
        pytest.skip(f"upstream reference data (CRDs, chart values) not found at {reference_dir}")
    return reference_dir


def objects(files: dict[str, bytes]) -> list[dict]:
    """Every Kubernetes object in the rendered manifests and examples."""
    return [
        document
        for path, content in files.items()
        if path.startswith(("manifests/", "examples/"))
        for document in yaml.safe_load_all(content)
        if document
    ]


def duplicate_objects(files: dict[str, bytes]) -> list[tuple]:
    """(apiVersion, kind, namespace, name) of objects rendered more than once: ``kubectl apply`` keeps only
    the last, so the earlier ones are silently lost."""
    identities = Counter(
        (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects(files)
    )
    return sorted(identity for identity, count in identities.items() if count > 1)


def rows(checks: list[Check]) -> str:
    return "\n".join(f"  {c.status}: {c.file} {c.subject} [{c.check}] {c.detail}" for c in checks)


# --- 1. valid specs render to output that passes every check -----------------------------------------------


@PROPERTY_SETTINGS
@given(raw=valid_specs())
def test_every_valid_spec_renders_and_validates(raw: dict, reference: Path):
    spec = ClusterSpec.model_validate(raw)
    files = render(spec).files()

    assert render(ClusterSpec.model_validate(raw)).files() == files, "rendering twice gave different bytes"
    with tempfile.TemporaryDirectory(prefix="gpucluster-property-") as scratch:
        out = Path(scratch) / "out"
        write_tree(files, out)
        report = validate_output(out, spec.kubernetes.version, reference / "crds", reference / "charts")
    failed = [c for c in report.checks if c.status == "fail"]
    assert not failed, f"failed checks:\n{rows(failed)}"
    assert not report.unchecked, f"unchecked:\n{rows(list(report.unchecked))}"
    assert duplicate_objects(files) == []
    assert efa_env_without_request(objects(files)) == []


@pytest.mark.parametrize("namespace", SYSTEM_NAMESPACES)
def test_tenant_in_a_system_namespace_is_refused(load_raw, namespace):
    """A tenant's default-deny policies and quotas must never land in gpu-operator, kube-system, ..."""
    raw = load_raw("eks-t4")  # ingress nginx, one tenant
    raw["tenants"][0]["namespace"] = namespace
    raw["autoscaling"]["workloads"] = []  # they name the tenant's namespace too
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test.yaml")
    assert [p.path for p in caught.value.problems] == [("tenants", 0, "namespace")]


# --- 2. invalid specs are refused at the CLI with the field path -------------------------------------------


@pytest.mark.parametrize("mutation", MUTATIONS, ids=str)
@settings(PROPERTY_SETTINGS, max_examples=EXAMPLES_PER_MUTATION)
@given(data=st.data())
def test_every_broken_spec_exits_2_naming_the_field(mutation: Mutation, data: st.DataObject):
    case = data.draw(broken_specs(mutation), label="broken spec")
    expected = f"gpucluster:cluster.{case.path}:"
    with tempfile.TemporaryDirectory(prefix="gpucluster-property-") as scratch:
        stack = Path(scratch) / "Pulumi.broken.yaml"
        stack.write_text(yaml.safe_dump({"config": {"gpucluster:cluster": case.raw}}), encoding="utf-8")
        out = Path(scratch) / "out"
        for command in (["render", "--stack", str(stack), "--out", str(out)], ["validate", "--stack", str(stack)]):
            result = runner.invoke(app, command)

            assert result.exit_code == 2, f"{command[0]}: exit {result.exit_code}\n{result.output}"
            assert expected in result.output, f"{command[0]}: no {expected!r} in\n{result.output}"
            assert "Traceback" not in result.output
        assert not out.exists()
