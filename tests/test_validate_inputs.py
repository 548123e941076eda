"""validate never says ok for what it did not check: malformed reference data is an input error naming the file;
its output ends quietly on a closed pipe and with a clear error on a full disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpucluster.cli import app
from stacks import ROOT

runner = CliRunner()
STACK_FILE = ROOT / "stacks" / "Pulumi.eks-t4.yaml"  # uses the gpu-operator chart
CRD_HEAD = (
    "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n"
)
CRD_NAMES = "  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n"


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def validate(*options: str):
    return invoke("validate", "--stack", str(STACK_FILE), *options)


CHART_VALUES = {
    "a list": "- a\n- b\n",
    "a scalar": "just text\n",
    "empty": "",
    "only a comment": "# nothing here\n",
    "several documents": "a: 1\n---\nb: 2\n",
    "not YAML": "a: [unclosed\n",
}


@pytest.mark.parametrize("content", CHART_VALUES.values(), ids=CHART_VALUES.keys())
def test_malformed_chart_values_are_an_input_error_naming_the_file(content, tmp_path):
    values = tmp_path / "gpu-operator.values.yaml"
    values.write_text(content)
    result = validate("--chart-values", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert str(values) in result.output


def test_a_directory_in_place_of_chart_values_is_an_input_error(tmp_path):
    (tmp_path / "gpu-operator.values.yaml").mkdir()
    result = validate("--chart-values", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "gpu-operator.values.yaml" in result.output


CRDS = {
    "no spec": CRD_HEAD,
    "spec not a mapping": CRD_HEAD + "spec: [1]\n",
    "no versions": CRD_HEAD + "spec:\n" + CRD_NAMES,
    "no group": CRD_HEAD + "spec:\n  names: {kind: Widget}\n  versions: [{name: v1, schema: {openAPIV3Schema: {}}}]\n",
    "version without a name": CRD_HEAD + "spec:\n" + CRD_NAMES + "  versions: [{schema: {openAPIV3Schema: {}}}]\n",
    "version without a schema": CRD_HEAD + "spec:\n" + CRD_NAMES + "  versions: [{name: v1}]\n",
    "invalid schema type": CRD_HEAD
    + "spec:\n"
    + CRD_NAMES
    + "  versions: [{name: v1, schema: {openAPIV3Schema: {type: 12}}}]\n",
    "properties not a mapping": CRD_HEAD
    + "spec:\n"
    + CRD_NAMES
    + "  versions: [{name: v1, schema: {openAPIV3Schema: {type: object, properties: [a]}}}]\n",
    "not YAML": "spec: [unclosed\n",
}


@pytest.mark.parametrize("content", CRDS.values(), ids=CRDS.keys())
def test_malformed_crds_are_an_input_error_naming_the_file(content, tmp_path):
    crd = tmp_path / "widgets.yaml"
    crd.write_text(content)
    result = validate("--crds", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert str(crd) in result.output
    assert "internal error" not in result.output


def test_every_malformed_reference_file_is_named(tmp_path):
    (tmp_path / "crds").mkdir()
    (tmp_path / "charts").mkdir()
    (tmp_path / "crds" / "a.yaml").write_text(CRDS["no spec"])
    (tmp_path / "crds" / "b.yaml").write_text(CRDS["no versions"])
    (tmp_path / "charts" / "gpu-operator.values.yaml").write_text("- a\n")
    result = validate("--crds", str(tmp_path / "crds"), "--chart-values", str(tmp_path / "charts"))
    assert result.exit_code == 2, result.output
    for name in ("crds/a.yaml", "crds/b.yaml", "charts/gpu-operator.values.yaml"):
        assert name in result.output


def test_a_directory_named_like_a_crd_file_is_an_input_error(tmp_path):
    (tmp_path / "widgets.yaml").mkdir()
    result = validate("--crds", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert str(tmp_path / "widgets.yaml") in result.output


def gpucluster(*args: str, stdout) -> subprocess.Popen:
    env = {**os.environ, "GPUCLUSTER_DEBUG": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "gpucluster", *args], stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=ROOT
    )


@pytest.mark.parametrize("command", [["validate", "--stack", "eks-t4"], ["schema"], ["stacks"]])
def test_a_closed_pipe_ends_the_program_quietly_as_sigpipe(command):
    """`gpucluster validate | head -1`: the reader has gone; the shell sees 141 (SIGPIPE), not 1 or 3."""
    process = gpucluster(*command, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == -signal.SIGPIPE, stderr
    assert stderr == ""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full does not exist here")
@pytest.mark.parametrize("command", [["schema"], ["schema", "--markdown"], ["validate", "--stack", "eks-t4"]])
def test_a_full_disk_is_a_clear_write_error(command):
    with open("/dev/full", "w") as full:
        process = gpucluster(*command, stdout=full)
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 2, stderr
    assert "cannot write to standard output: No space left on device" in stderr
    assert "internal error" not in stderr and "Traceback" not in stderr
