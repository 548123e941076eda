"""The command line as users run it: exit codes, atomic output, clean errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from gpucluster import output
from gpucluster.cli import app
from gpucluster.docs import spec_markdown
from gpucluster.render import render as render_bundle
from stacks import REFERENCE, ROOT, STACKS, spec_of

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def write_stack(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump({"config": {"gpucluster:cluster": spec}}))
    return path


def raw_spec(stack: str) -> dict:
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return document["config"]["gpucluster:cluster"]


def test_reference_stack_names_are_the_documented_ones():
    assert sorted(["eks-t4", "eks-h100", "onprem-k3s", "onprem-kubeadm", "onprem-dgx", "hybrid-crio"]) == STACKS


def test_every_stack_file_says_what_it_reproduces():
    for path in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        assert path.read_text().startswith("# Reproduces"), path


def test_stacks_lists_every_stack(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke("stacks")
    assert result.exit_code == 0
    for name in STACKS:
        assert name[:12] in result.output


@pytest.mark.parametrize("stack", STACKS)
def test_render_writes_manifests_helm_and_a_verifiable_index(stack, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    result = invoke("render", "--stack", stack, "--out", str(out))
    assert result.exit_code == 0, result.output
    files = snapshot(out)
    assert any(name.startswith("manifests/00-") for name in files)
    releases = yaml.safe_load(files["helm/releases.yaml"])["releases"]
    for release in releases:
        assert release["version"] and release["version"] != "latest"
        assert f"helm/{release['values']}" in files
    index = dict(reversed(line.split("  ", 1)) for line in files["SHA256SUMS"].decode().splitlines())
    assert set(index) == set(files) - {"SHA256SUMS", output.MARKER}
    for name, digest in index.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest
    for name, content in files.items():
        assert b":latest" not in content and b"version: latest" not in content, f"{name} floats a version"


def expected_files(stack: str) -> dict[str, bytes]:
    """What render must write for a reference stack: the library's files plus the output marker."""
    files = render_bundle(spec_of(stack)).files()
    return {**files, output.MARKER: output.marker_content(files)}


def test_rerender_is_byte_identical(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    assert invoke("render", "--stack", "onprem-dgx", "--out", str(out)).exit_code == 0
    first = snapshot(out)
    assert first == expected_files("onprem-dgx")
    assert invoke("render", "--stack", "onprem-dgx", "--out", str(out)).exit_code == 0
    assert snapshot(out) == first


def test_bad_spec_exits_2_names_the_field_and_writes_nothing(tmp_path):
    spec = raw_spec("onprem-dgx")
    spec["node_pools"][2]["sharing"]["replicas"] = 1
    stack = write_stack(tmp_path / "Pulumi.bad.yaml", spec)
    out = tmp_path / "out"
    result = invoke("render", "--stack", str(stack), "--out", str(out))
    assert result.exit_code == 2
    assert "node_pools[2].sharing.replicas" in result.output
    assert str(stack) in result.output
    assert not out.exists()


def test_failed_render_leaves_previous_output_intact(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    assert invoke("render", "--stack", "eks-t4", "--out", str(out)).exit_code == 0
    before = snapshot(out)
    assert before == expected_files("eks-t4")
    spec = raw_spec("eks-t4")
    spec["node_pools"][0]["instance_types"] = ["g4dn.xlarge", "g5.xlarge"]
    bad = write_stack(tmp_path / "Pulumi.bad.yaml", spec)
    assert invoke("render", "--stack", str(bad), "--out", str(out)).exit_code == 2
    assert snapshot(out) == before


def test_write_failure_midway_keeps_old_tree(tmp_path, monkeypatch):
    out = tmp_path / "out"
    output.write_tree({"a.yaml": b"old"}, out)

    class Unwritable(bytes):
        pass

    real_write = Path.write_bytes

    def failing_write(self, data):
        if isinstance(data, Unwritable):
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    with pytest.raises(OSError):
        output.write_tree({"a.yaml": b"new", "b.yaml": Unwritable(b"x")}, out)
    assert snapshot(out) == {"a.yaml": b"old", output.MARKER: output.marker_content(["a.yaml"])}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_unknown_stack_exits_2_and_lists_known_stacks(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke("render", "--stack", "nope")
    assert result.exit_code == 2
    assert "eks-t4" in result.output


def test_usage_errors_exit_2():
    assert runner.invoke(app, ["render"]).exit_code == 2
    assert runner.invoke(app, ["frobnicate"]).exit_code == 2


@pytest.mark.parametrize("stack", STACKS)
def test_schema_accepts_stack_files_and_catches_typos(stack):
    validator = jsonschema.Draft202012Validator(json.loads(invoke("schema").output))
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    assert list(validator.iter_errors(document)) == []
    document["config"]["gpucluster:cluster"]["node_pools"][0]["sharing_mode"] = "mig"
    [error] = validator.iter_errors(document)
    assert "sharing_mode" in error.message


def test_docs_spec_md_is_current():
    assert (ROOT / "docs" / "spec.md").read_text() == spec_markdown(), (
        "regenerate: gpucluster schema --markdown > docs/spec.md"
    )


def test_validate_rejects_missing_reference_dir(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    assert invoke("validate", "--stack", "eks-t4", "--crds", str(tmp_path / "absent")).exit_code == 2


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"upstream reference data not found at {REFERENCE}")
@pytest.mark.parametrize("stack", STACKS)
def test_every_reference_stack_validates_clean(stack, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke(
        "validate", "--stack", stack, "--crds", str(REFERENCE / "crds"), "--chart-values", str(REFERENCE / "charts")
    )
    assert result.exit_code == 0, result.output
    tools_present = all(shutil.which(tool) for tool in ("promtool", "amtool"))
    assert ("0 failed, 0 unchecked" if tools_present else "0 failed") in result.output


def test_validate_without_reference_says_what_it_could_not_check(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke("validate", "--stack", "eks-h100")
    assert result.exit_code == 0
    assert "unchecked" in result.output
    assert "ClusterPolicy" in result.output


def test_help_runs_without_loading_provider_sdks():
    heavy = ("pulumi", "pulumi_aws", "boto3", "ansible_runner", "kubernetes_validate", "gpucluster.spec")
    code = f"import sys; from gpucluster.cli import app; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "[]"


def test_entry_point_prints_no_traceback_on_bad_yaml(tmp_path):
    bad = tmp_path / "Pulumi.broken.yaml"
    bad.write_text("config:\n  gpucluster:cluster: [unclosed\n")
    env = {**os.environ, "GPUCLUSTER_DEBUG": ""}
    result = subprocess.run(
        [sys.executable, "-m", "gpucluster", "render", "--stack", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "line" in result.stderr


def test_validate_with_a_broken_crd_file_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    (tmp_path / "broken.yaml").write_text("spec: [unclosed\n")
    result = invoke("validate", "--stack", "eks-t4", "--crds", str(tmp_path))
    assert result.exit_code == 2
    assert "broken.yaml" in result.output
