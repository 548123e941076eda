"""Hostile or odd stack files: refused at once with exit 2 and the file named, never a crash or a hang."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gpucluster.cli import app
from stacks import ROOT

runner = CliRunner()
STACK_FILE = ROOT / "stacks" / "Pulumi.eks-t4.yaml"


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def reference_text() -> str:
    return STACK_FILE.read_text()


def render_refuses(stack: Path, *expected: str) -> str:
    """Render the stack file: exit 2, the file named, each expected text in the message; returns the output."""
    result = invoke("render", "--stack", str(stack), "--out", str(stack.parent / "out"))
    assert result.exit_code == 2, result.output
    assert str(stack) in result.output
    for text in expected:
        assert text in result.output, result.output
    assert not (stack.parent / "out").exists()
    return result.output


def billion_laughs(levels: int = 9) -> str:
    lines = ["config:", '  lol0: &lol0 "lol"']
    for level in range(1, levels + 1):
        references = ", ".join(f"*lol{level - 1}" for _ in range(9))
        lines.append(f"  lol{level}: &lol{level} [{references}]")
    lines.append(f"  gpucluster:cluster: {{name: *lol{levels}}}")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_within_a_second(tmp_path):
    stack = tmp_path / "Pulumi.laughs.yaml"
    stack.write_text(billion_laughs())
    started = time.monotonic()
    output = render_refuses(stack, "alias")
    assert time.monotonic() - started < 1.0
    assert len(output) < 2000


def test_aliases_of_reasonable_size_still_work(tmp_path):
    text = reference_text().replace("config:", "config:\n  shared: &shared {team: a}\n  copy: *shared", 1)
    stack = tmp_path / "Pulumi.anchors.yaml"
    stack.write_text(text)
    assert invoke("render", "--stack", str(stack), "--out", str(tmp_path / "out")).exit_code == 0


def nested(shape: str) -> str:
    """A value nested far deeper than any stack (deeper than Python's recursion limit)."""
    if shape == "flow-sequences":
        return "[" * 100_000 + "]" * 100_000
    if shape == "flow-mappings":
        return "{a: " * 100_000 + "1" + "}" * 100_000
    depth = 2_000  # block style: indentation grows with depth, so the file grows quadratically
    return "\n" + "".join(" " * (4 + i) + "a:\n" for i in range(depth)) + " " * (4 + depth) + "1"


@pytest.mark.parametrize("shape", ["flow-sequences", "flow-mappings", "block-mappings"])
def test_deep_nesting_exits_2_naming_the_file(shape, tmp_path):
    stack = tmp_path / "Pulumi.deep.yaml"
    stack.write_text(f"config:\n  gpucluster:cluster: {nested(shape)}\n")
    output = render_refuses(stack, "nested more than")
    assert "RecursionError" not in output


def test_stacks_lists_a_broken_file_and_the_others(tmp_path):
    (tmp_path / "Pulumi.good.yaml").write_text(reference_text())
    (tmp_path / "Pulumi.deep.yaml").write_text("config: " + "[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "Pulumi.laughs.yaml").write_text(billion_laughs())
    result = invoke("stacks", "--stacks-dir", str(tmp_path))
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any("good" in line and "ok" in line for line in lines), result.output
    assert any("deep" in line and "invalid" in line for line in lines), result.output
    assert any("laughs" in line and "invalid" in line for line in lines), result.output


@pytest.mark.parametrize("where", ["missing", "file"])
def test_stacks_dir_that_is_no_directory_exits_2(where, tmp_path):
    path = tmp_path / "stacks"
    if where == "file":
        path.write_text("")
    result = invoke("stacks", "--stacks-dir", str(path))
    assert result.exit_code == 2
    assert str(path) in result.output


def test_duplicate_keys_are_an_error_with_the_key_and_line(tmp_path):
    spec = yaml.safe_load(reference_text())["config"]["gpucluster:cluster"]
    tenant = spec["tenants"][0]
    lines = reference_text().splitlines()
    stack = tmp_path / "Pulumi.dup.yaml"
    # the tenant written in block style with its quota twice: the second one used to win silently
    block = ["    tenants:", f"      - name: {tenant['name']}", "        gpus: 2", "        gpus: 200"]
    block += [f"        {key}: {value!r}" for key, value in tenant.items() if key not in ("name", "gpus")]
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("tenants:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("      ")), len(lines))
    stack.write_text("\n".join([*lines[:start], *block, *lines[end:]]) + "\n")
    render_refuses(stack, "duplicate key 'gpus'", f"line {start + 4}", f"line {start + 3}")


def test_duplicate_keys_through_a_merge_are_allowed(tmp_path):
    text = reference_text().replace("config:", "config:\n  base: &base {a: 1, b: 2}\n  derived: {<<: *base, a: 3}", 1)
    stack = tmp_path / "Pulumi.merge.yaml"
    stack.write_text(text)
    assert invoke("render", "--stack", str(stack), "--out", str(tmp_path / "out")).exit_code == 0


def tenant_cpu(stack_text: str, cpu: str) -> str:
    return stack_text.replace('cpu: "', f"cpu: {cpu} #", 1)


def test_number_where_a_string_is_expected_says_to_quote_it(tmp_path):
    text = reference_text()
    assert 'cpu: "' in text
    stack = tmp_path / "Pulumi.cpu.yaml"
    stack.write_text(tenant_cpu(text, "32"))
    render_refuses(stack, "tenants[0].cpu", "quote")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01", "date"),
        ("2024-01-01 10:00:00", "date"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!!omap [{a: 1}]", "!!omap"),
        ("!!pairs [{a: 1}]", "!!pairs"),
    ],
)
def test_non_json_values_are_refused_with_a_hint(value, expected, tmp_path):
    stack = tmp_path / "Pulumi.odd.yaml"
    stack.write_text(tenant_cpu(reference_text(), value))
    output = render_refuses(stack, expected, "line ")
    assert "quote" in output or "list" in output or "mapping" in output


def test_several_documents_are_refused(tmp_path):
    stack = tmp_path / "Pulumi.two.yaml"
    stack.write_text(reference_text() + "---\nconfig: {}\n")
    render_refuses(stack, "document")


def test_a_huge_value_is_cut_before_it_is_shown(tmp_path):
    stack = tmp_path / "Pulumi.huge.yaml"
    stack.write_text(reference_text().replace("name: ", f"name: {'x' * 1_000_000} #", 1))
    output = render_refuses(stack)
    assert len(output) < 3000


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """The CLI in a child process with 2 GB of memory at most, so a regression cannot exhaust the machine."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    command = [sys.executable, "-m", "gpucluster", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, preexec_fn=limit_memory)


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_special_files_are_refused_at_once(special, tmp_path):
    path = Path(special)
    if special == "fifo":
        path = tmp_path / "Pulumi.fifo.yaml"
        os.mkfifo(path)
    elif not path.exists():
        pytest.skip(f"{special} does not exist here")
    started = time.monotonic()
    result = run_cli("render", "--stack", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and "not a regular file" in result.stderr
    assert time.monotonic() - started < 10


def test_stack_files_over_10_mb_are_refused(tmp_path):
    stack = tmp_path / "Pulumi.big.yaml"
    stack.write_text(reference_text() + "#" * (10 * 2**20) + "\n")
    output = render_refuses(stack, "MiB")
    assert "10 MiB" in output
