"""Write rendered files into an output directory: atomically, and only where gpucluster may write.

A directory is used only when it is absent, empty, or a previous gpucluster output: it holds the marker
file ``.gpucluster-output``, which lists the files gpucluster wrote, and nothing else (an output written
before the marker existed must hold exactly the files its ``SHA256SUMS`` lists, with those digests).
Anything else is refused with ``OutputDirError`` and left untouched.

The new tree is written to a temporary directory and swapped in with renames: a reader never sees a
half-written tree, and a failed run leaves the previous output as it was. A directory that cannot be
renamed (a mount point, one whose parent is not writable, the working directory) keeps its inode and has
its contents swapped instead, entry by entry (a reader may see the swap in progress; a failure puts the
old entries back). Writes into one
directory are serialised by a lock on its parent directory, so concurrent renders end with one
complete tree.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gpucluster.render.bundle import INDEX_FILE

MARKER = ".gpucluster-output"
_MARKER_HEADER = (
    "# Written by gpucluster render, which replaces this directory on every run.\n"
    "# A render refuses the directory once it holds files other than these:\n"
)
_STAGING_PREFIX = ".gpucluster-"  # temporary directories inside an output dir (contents swap)
_INDEX_LINE = re.compile(r"([0-9a-f]{64})  (.+)")
_MAX_LISTED = 5
_CANNOT_RENAME = {errno.EBUSY, errno.EXDEV, errno.EPERM, errno.EACCES}  # a mount point, a sticky parent, ...


class OutputDirError(Exception):
    """The output directory may not be written; nothing was changed."""


def write_tree(files: dict[str, bytes], out_dir: Path) -> None:
    """Replace ``out_dir`` with exactly ``files`` (plus the marker); on any failure the old ``out_dir`` stays.

    Raises ``OutputDirError`` when ``out_dir`` is not absent, empty or a previous output, and ``OSError``
    when writing fails.
    """
    out_dir = Path(out_dir).resolve()
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent):
        _check_replaceable(out_dir)
        if not out_dir.exists() and not os.access(parent, os.W_OK | os.X_OK):
            raise OutputDirError(f"cannot create {out_dir}: its parent directory {parent} is not writable")
        if out_dir.exists() and not _renamable(out_dir):
            _replace(files, out_dir, in_place=True)
            return
        try:
            _replace(files, out_dir, in_place=False)
        except OSError as error:
            if not out_dir.exists() or error.errno not in _CANNOT_RENAME:
                raise
            _replace(files, out_dir, in_place=True)  # e.g. a bind mount, which os.path.ismount does not see


def _replace(files: dict[str, bytes], out_dir: Path, in_place: bool) -> None:
    """Write files to a staging directory, then swap it for out_dir (or, in place, for out_dir's contents)."""
    if in_place and not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputDirError(f"cannot write into {out_dir}: it is not writable and cannot be replaced as a whole")
    prefix = _STAGING_PREFIX + "new-" if in_place else f".{out_dir.name}.new-"
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir if in_place else out_dir.parent))
    try:
        for relative, content in {**files, MARKER: marker_content(files)}.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        if in_place:
            _swap_contents(staging, out_dir)
        else:
            os.chmod(staging, 0o755)
            _swap_directory(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def marker_content(files: Iterable[str]) -> bytes:
    """The marker file of an output holding ``files``: a comment, then the files one a line."""
    return (_MARKER_HEADER + "".join(f"{name}\n" for name in sorted(files))).encode()


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on a directory (flock on its descriptor: no lock file, no write access needed)."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputDirError(f"{out_dir} exists and is not a directory")
    foreign = foreign_entries(out_dir)
    if foreign:
        more = f" and {len(foreign) - _MAX_LISTED} more" if len(foreign) > _MAX_LISTED else ""
        shown = ", ".join(foreign[:_MAX_LISTED]) + more
        raise OutputDirError(
            f"refusing to write into {out_dir}: it is neither empty nor a previous gpucluster output"
            f" (gpucluster did not write: {shown}); render into a new or empty directory"
        )


def foreign_entries(out_dir: Path) -> list[str]:
    """Entries of ``out_dir`` (relative paths) that no previous render wrote; empty when it may be replaced."""
    top = sorted(os.listdir(out_dir))
    marker = out_dir / MARKER
    marked = MARKER in top and marker.is_file() and not marker.is_symlink()
    if not top or (not marked and INDEX_FILE not in top):
        return top
    index = {} if marked else _read_index(out_dir / INDEX_FILE)
    written = _read_marker(marker) if marked else set(index)
    expected = {MARKER if marked else INDEX_FILE, *written}
    expected.update(str(parent) for name in written for parent in Path(name).parents if str(parent) != ".")
    foreign = []
    for directory, subdirectories, names in os.walk(out_dir):
        for name in sorted(subdirectories + names):
            path = Path(directory, name)
            relative = path.relative_to(out_dir).as_posix()
            leftover = marked and directory == str(out_dir) and name.startswith(_STAGING_PREFIX)
            if path.is_symlink() or (relative not in expected and not leftover):
                foreign.append(relative)
    if not marked:  # written before the marker: recognised only by an index matching every file
        foreign.extend(name for name, digest in sorted(index.items()) if not _has_digest(out_dir / name, digest))
        if not index:
            foreign.append(INDEX_FILE)
    return foreign


def _read_marker(path: Path) -> set[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return set()
    return {line for line in lines if line and not line.startswith("#")}


def _read_index(path: Path) -> dict[str, str]:
    """A SHA256SUMS file as {relative path: digest}; empty when absent or not in sha256sum's format."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    matches = [_INDEX_LINE.fullmatch(line) for line in lines]
    if not all(matches):
        return {}
    return {match[2]: match[1] for match in matches if match}


def _has_digest(path: Path, digest: str) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == digest


def _renamable(out_dir: Path) -> bool:
    """Whether the directory itself can be swapped for a new one (else its contents are swapped)."""
    if os.path.ismount(out_dir) or not os.access(out_dir.parent, os.W_OK | os.X_OK):
        return False
    try:
        cwd = Path.cwd()
    except FileNotFoundError:  # the working directory was deleted
        return True
    return cwd != out_dir and out_dir not in cwd.parents


def write_file(path: Path, content: bytes, ours: bytes) -> None:
    """Replace one file atomically; an existing file not starting with ``ours`` (not ours) is refused."""
    if path.exists() and (not path.is_file() or not path.read_bytes().startswith(ours)):
        raise FileExistsError("exists and was not written by gpucluster; move it away first")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(content)
        os.chmod(staging, 0o644)
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise


def _swap_directory(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    retired.rmdir()
    out_dir.rename(retired)
    try:
        staging.rename(out_dir)
    except BaseException:
        retired.rename(out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _swap_contents(staging: Path, out_dir: Path) -> None:
    """Move the old entries of out_dir aside and the new ones in; on failure, put everything back."""
    retired = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX + "old-", dir=out_dir))
    old = sorted(p.name for p in out_dir.iterdir() if p not in (staging, retired))
    new = sorted(p.name for p in staging.iterdir())
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for name in old:
            (out_dir / name).rename(retired / name)
            moved_out.append(name)
        for name in new:
            (staging / name).rename(out_dir / name)
            moved_in.append(name)
    except BaseException:
        for name in moved_in:
            (out_dir / name).rename(staging / name)
        for name in moved_out:
            (retired / name).rename(out_dir / name)
        retired.rmdir()
        raise
    shutil.rmtree(retired, ignore_errors=True)
    staging.rmdir()
