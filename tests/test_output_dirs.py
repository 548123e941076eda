"""Where render may write: only absent, empty or previous-output directories; atomic; safe when run twice at once."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpucluster import output
from gpucluster.cli import app
from stacks import ROOT

runner = CliRunner()
STACK_FILE = ROOT / "stacks" / "Pulumi.eks-t4.yaml"


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def tree(directory: Path) -> dict[str, bytes | None]:
    """Every entry under directory: files with their content, directories as None."""
    return {
        str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None) for p in sorted(directory.rglob("*"))
    }


def rendered(stack_file: Path = STACK_FILE) -> dict[str, bytes | None]:
    """What render writes for a stack, rendered into a fresh directory."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        assert invoke("render", "--stack", str(stack_file), "--out", str(out)).exit_code == 0
        return tree(out)


def user_files(directory: Path) -> dict[str, bytes | None]:
    (directory / "notes").mkdir(parents=True)
    (directory / "notes" / "todo.txt").write_text("my notes")
    (directory / "README.md").write_text("mine")
    return tree(directory)


def test_render_into_a_directory_with_foreign_files_exits_2_and_deletes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = user_files(tmp_path)
    result = invoke("render", "--stack", str(STACK_FILE), "--out", ".")
    assert result.exit_code == 2
    assert str(tmp_path) in result.output and "README.md" in result.output
    assert tree(tmp_path) == before


def test_render_into_foreign_directory_elsewhere_is_refused(tmp_path):
    docs = tmp_path / "docs"
    before = user_files(docs)
    result = invoke("render", "--stack", str(STACK_FILE), "--out", str(docs))
    assert result.exit_code == 2
    assert tree(docs) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_empty_out_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("render", "--stack", str(STACK_FILE), "--out", "")
    assert result.exit_code == 2
    assert "--out" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("file_name", ["Pulumi....yaml", "Pulumi...yaml", "Pulumi..yaml", "Pulumi.a b.yaml"])
def test_stack_names_that_are_no_directory_name_are_refused(file_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build").mkdir()
    stack = tmp_path / file_name
    shutil.copy(STACK_FILE, stack)
    before = tree(tmp_path)
    for command in ("render", "validate"):
        result = invoke(command, "--stack", str(stack))
        assert result.exit_code == 2, result.output
        assert "stack name" in result.output
    assert tree(tmp_path) == before


def test_render_creates_an_absent_directory_and_marks_it(tmp_path):
    out = tmp_path / "a" / "b"
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 0
    files = tree(out)
    written = [name for name, content in files.items() if content is not None and name != output.MARKER]
    assert files[output.MARKER] == output.marker_content(written)
    assert files[output.MARKER].startswith(b"# Written by gpucluster render")
    assert "manifests/00-namespaces.yaml" in files


def test_render_uses_an_empty_directory(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 0
    assert tree(out) == rendered()


def test_render_into_the_empty_working_directory_keeps_it(tmp_path, monkeypatch):
    """The working directory is filled, not replaced: a shell sitting in it must not end up in a deleted one."""
    monkeypatch.chdir(tmp_path)
    inode = tmp_path.stat().st_ino
    assert invoke("render", "--stack", str(STACK_FILE), "--out", ".").exit_code == 0
    assert tree(tmp_path) == rendered()
    assert tmp_path.stat().st_ino == inode
    assert invoke("render", "--stack", str(STACK_FILE), "--out", ".").exit_code == 0
    assert tree(tmp_path) == rendered()


def test_previous_output_of_another_stack_is_replaced_exactly(tmp_path):
    out = tmp_path / "out"
    h100 = ROOT / "stacks" / "Pulumi.eks-h100.yaml"
    assert invoke("render", "--stack", str(h100), "--out", str(out)).exit_code == 0
    assert tree(out) == rendered(h100) != rendered()
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 0
    assert tree(out) == rendered()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_previous_output_with_an_added_file_is_refused(tmp_path):
    out = tmp_path / "out"
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 0
    (out / "manifests" / "99-mine.yaml").write_text("mine")
    before = tree(out)
    result = invoke("render", "--stack", str(STACK_FILE), "--out", str(out))
    assert result.exit_code == 2
    assert "manifests/99-mine.yaml" in result.output
    assert tree(out) == before


def test_previous_output_with_a_symlink_is_refused(tmp_path):
    out = tmp_path / "out"
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 0
    (out / "manifests" / "00-namespaces.yaml").unlink()
    (out / "manifests" / "00-namespaces.yaml").symlink_to(tmp_path / "elsewhere")
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 2


def test_output_written_before_the_marker_is_recognised_by_its_index(tmp_path):
    """Outputs of earlier versions have no marker: their SHA256SUMS must list exactly their files, unchanged."""
    out = tmp_path / "out"
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 0
    (out / output.MARKER).unlink()
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 0
    assert tree(out) == rendered()

    (out / output.MARKER).unlink()
    (out / "manifests" / "00-namespaces.yaml").write_text("edited")
    before = tree(out)
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 2
    assert tree(out) == before


def test_a_lone_sha256sums_is_not_an_output(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "SHA256SUMS").write_text(f"{hashlib.sha256(b'').hexdigest()}  gone.iso\n")
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(downloads)).exit_code == 2
    assert [p.name for p in downloads.iterdir()] == ["SHA256SUMS"]


def test_a_file_in_place_of_the_directory_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    result = invoke("render", "--stack", str(STACK_FILE), "--out", str(blocker))
    assert result.exit_code == 2
    assert "not a directory" in result.output
    assert blocker.read_text() == "keep me"


def test_validate_touches_nothing_but_its_own_temporary_directory(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (scratch / "someone-elses.txt").write_text("keep")
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(ROOT)
    assert invoke("validate", "--stack", "eks-t4").exit_code == 0
    assert tree(scratch) == {"someone-elses.txt": b"keep"}


def test_concurrent_writes_into_one_directory_end_with_one_complete_tree(tmp_path):
    """Writers racing on one directory: each write completes whole, none fails, the last tree stays."""
    out = tmp_path / "out"
    trees = [{f"d/{n}.yaml": f"{writer}\n".encode() * 100 for n in range(5)} for writer in range(6)]
    errors: list[BaseException] = []

    def write(files: dict[str, bytes]) -> None:
        try:
            for _ in range(15):
                output.write_tree(files, out)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(files,)) for files in trees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {name: content for name, content in tree(out).items() if content is not None} in [
        {**files, output.MARKER: output.marker_content(files)} for files in trees
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_two_processes_rendering_into_one_directory(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "gpucluster", "render", "--stack", str(STACK_FILE), "--out", str(out)]
    for _ in range(2):
        processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        results = [(process.wait(), process.stderr.read()) for process in processes if process.stderr]
        assert [code for code, _ in results] == [0, 0], results
        assert all(stderr == b"" for _, stderr in results)
        assert tree(out) == rendered()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_content_swap_when_the_directory_cannot_be_renamed(tmp_path, monkeypatch):
    """A directory that cannot be renamed (mount point, unwritable parent) gets its contents swapped."""
    out = tmp_path / "out"
    out.mkdir()
    inode = out.stat().st_ino
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == out)
    assert invoke("render", "--stack", str(ROOT / "stacks" / "Pulumi.eks-h100.yaml"), "--out", str(out)).exit_code == 0
    assert invoke("render", "--stack", str(STACK_FILE), "--out", str(out)).exit_code == 0
    assert tree(out) == rendered()
    assert out.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_content_swap_restores_the_previous_contents(tmp_path, monkeypatch):
    out = tmp_path / "out"
    output.write_tree({"a.yaml": b"old", "d/b.yaml": b"old"}, out)
    before = tree(out)
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == out)
    real_rename = Path.rename
    failed = []

    def failing_rename(self, target):
        if Path(target) == out / "d" and Path(self).parent != out and not failed:  # the last new entry moving in
            failed.append(target)
            raise OSError(5, "Input/output error")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError):
        output.write_tree({"a.yaml": b"new", "d/b.yaml": b"new"}, out)
    assert failed
    assert tree(out) == before


@contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """Make a directory unwritable for this process: chmod, or as root (which chmod does not stop) chattr +i."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        yield
        directory.chmod(0o755)
        return
    if not shutil.which("chattr"):
        pytest.skip("running as root: needs chattr (e2fsprogs) to make a directory unwritable")
    made = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"running as root: cannot make {directory} immutable: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_render_where_the_parent_directory_is_not_writable(tmp_path):
    """The directory's contents are swapped in place; an absent directory is named in a clear error."""
    out = tmp_path / "parent" / "out"
    out.mkdir(parents=True)
    inode = out.stat().st_ino
    with unwritable(tmp_path / "parent"):
        for stack in (ROOT / "stacks" / "Pulumi.eks-h100.yaml", STACK_FILE):
            result = invoke("render", "--stack", str(stack), "--out", str(out))
            assert result.exit_code == 0, result.output
        assert tree(out) == rendered()
        assert out.stat().st_ino == inode
        absent = tmp_path / "parent" / "absent"
        result = invoke("render", "--stack", str(STACK_FILE), "--out", str(absent))
        assert result.exit_code == 2
        assert f"{absent}: its parent directory {tmp_path / 'parent'} is not writable" in result.output


@pytest.mark.parametrize("mount", ["tmpfs", "bind"])
def test_render_into_a_mount_point(mount):
    """A real mount point (in a private mount namespace) is filled in place; a bind mount, which
    os.path.ismount does not recognise, too."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs unshare -m (root or user namespaces) to make a private mount point")
    base = Path(tempfile.mkdtemp(prefix="gpucluster-test-"))
    try:
        out, source = base / "mnt", base / "source"
        out.mkdir()
        source.mkdir()
        mount_command = f"mount -t tmpfs none {out}" if mount == "tmpfs" else f"mount --bind {source} {out}"
        render = f"{sys.executable} -m gpucluster render --stack {STACK_FILE} --out {out}"
        check = f"cd {out} && sha256sum -c SHA256SUMS"
        script = f"{mount_command} && {render} >/dev/null && {render} >/dev/null && {check}"
        result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=base)
        if "mount:" in result.stderr:
            pytest.skip(f"cannot mount: {result.stderr.strip()}")
        assert result.returncode == 0, result.stderr
        files = [name for name, content in rendered().items() if content is not None]
        assert result.stdout.count(": OK") == len(files) - 2  # all but SHA256SUMS and the marker
        if mount == "bind":
            assert tree(source) == rendered()
    finally:
        shutil.rmtree(base)
