"""The rendered etcd snapshot script and the restore steps, run for real against etcd on 127.0.0.1.

A real etcd (Debian's etcd-server) starts in a temporary directory; the script is taken from the rendered
ConfigMap, run several times, and the newest snapshot is restored with ``etcd_member_restore_commands`` (the
same commands ``gpucluster backup restore`` prints) into a new data directory, from which a second etcd
starts and serves every key back. Debian 12's etcd 3.4 has no ``etcdutl``; its ``etcdctl snapshot restore``
and ``snapshot status`` take the same arguments, so the test puts an ``etcdutl`` that runs ``etcdctl`` on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from gpucluster.backups import etcd_member_restore_commands
from gpucluster.render import render
from gpucluster.render.backups import ETCD_SNAPSHOT_NAME, ETCD_SNAPSHOT_SCRIPT
from stacks import spec_of

ETCD, ETCDCTL = shutil.which("etcd"), shutil.which("etcdctl")
pytestmark = pytest.mark.skipif(
    not (ETCD and ETCDCTL), reason="etcd/etcdctl not installed (scripts/dev.sh installs etcd-server and etcd-client)"
)
KEYS = {f"/registry/test/key-{i}": f"value-{i}" for i in range(25)}
SNAPSHOT_NAME = r"^etcd-snapshot-[0-9]{8}T[0-9]{6}Z-[0-9]{2}\.db\.gz$"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Etcd:
    """One etcd member on 127.0.0.1, stopped on exit."""

    def __init__(self, data_dir: Path, name: str, peer_port: int | None = None):
        self.client = f"http://127.0.0.1:{_free_port()}"
        self.peer = f"http://127.0.0.1:{peer_port or _free_port()}"
        self.name, self.data_dir = name, data_dir
        self.log = data_dir.parent / f"{name}.log"

    def __enter__(self) -> Etcd:
        command = [
            ETCD,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client}",
            f"--advertise-client-urls={self.client}",
            f"--listen-peer-urls={self.peer}",
            f"--initial-advertise-peer-urls={self.peer}",
            f"--initial-cluster={self.name}={self.peer}",
        ]
        self.process = subprocess.Popen(command, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log.read_text()[-2000:]}")
            if self.ctl("endpoint", "health", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"etcd did not become healthy: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": self.client}
        return subprocess.run([ETCDCTL, *args], env=env, capture_output=True, text=True, check=check, timeout=20)

    def get(self, key: str) -> str:
        return self.ctl("get", key, "--print-value-only").stdout.strip()


@pytest.fixture(scope="module")
def snapshot_script(tmp_path_factory) -> Path:
    """The script exactly as rendered for a kubeadm stack with etcd backups (onprem-kubeadm)."""
    files = render(spec_of("onprem-kubeadm")).files()
    documents = yaml.safe_load_all(files["manifests/70-backups.yaml"])
    config_map = next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ETCD_SNAPSHOT_NAME)
    script = tmp_path_factory.mktemp("script") / ETCD_SNAPSHOT_SCRIPT
    script.write_text(config_map["data"][ETCD_SNAPSHOT_SCRIPT])
    return script


@pytest.fixture
def tools(tmp_path) -> Path:
    """A PATH directory with ``etcdutl`` when the installed etcd (3.4) has only etcdctl."""
    directory = tmp_path / "bin"
    directory.mkdir()
    if not shutil.which("etcdutl"):
        shim = directory / "etcdutl"
        shim.write_text(f'#!/bin/sh\nETCDCTL_API=3 exec {ETCDCTL} "$@"\n')
        shim.chmod(0o755)
    return directory


def run_script(script: Path, etcd: Etcd, backup_dir: Path, keep: int, tools: Path, **extra: str):
    env = {
        "PATH": f"{tools}:{os.environ['PATH']}",
        "ETCDCTL_ENDPOINTS": f"{etcd.client},http://127.0.0.1:9",  # only the first endpoint is used
        "BACKUP_DIR": str(backup_dir),
        "KEEP": str(keep),
        "COMPRESS": "1",
        **extra,
    }
    return subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=60)


def snapshots(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("etcd-snapshot-"))


def test_snapshots_are_kept_to_keep_and_restore_into_a_working_etcd(tmp_path, snapshot_script, tools):
    backups = tmp_path / "backups"
    with Etcd(tmp_path / "original", "original") as etcd:
        for key, value in KEYS.items():
            etcd.ctl("put", key, value)
        for _ in range(5):
            result = run_script(snapshot_script, etcd, backups, keep=3, tools=tools)
            assert result.returncode == 0, result.stderr
        etcd.ctl("put", "/registry/test/after-last-snapshot", "not restored")
    kept = snapshots(backups)
    assert len(kept) == 3
    assert all(re.match(SNAPSHOT_NAME, name) for name in kept)
    assert not [p for p in backups.iterdir() if p.name.startswith(".")], "no partial file is left behind"

    restored_dir = tmp_path / "restored" / "etcd"
    restored_dir.parent.mkdir()
    peer_port = _free_port()
    peer = f"http://127.0.0.1:{peer_port}"
    commands = etcd_member_restore_commands(
        str(backups / kept[-1]), "restored", peer, f"restored={peer}", str(restored_dir)
    )
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "ETCDCTL_API": "3"}
    for command in commands:
        step = subprocess.run(["sh", "-ec", command], env=env, capture_output=True, text=True, timeout=60)
        assert step.returncode == 0, f"{command}: {step.stderr}"
    with Etcd(restored_dir, "restored", peer_port=peer_port) as restored:
        assert {key: restored.get(key) for key in KEYS} == KEYS
        assert restored.get("/registry/test/after-last-snapshot") == ""


def test_pruning_removes_exactly_the_expired_snapshots_and_nothing_else(tmp_path, snapshot_script, tools):
    backups = tmp_path / "backups"
    backups.mkdir()
    old = [f"etcd-snapshot-2026010{day}T000000Z-00.db.gz" for day in range(1, 5)]
    foreign = ["notes.txt", "etcd-snapshot-manual.db", "etcd-snapshot-20250101T000000Z-00.db.bak"]
    for name in old + foreign:
        (backups / name).write_text("x")
    with Etcd(tmp_path / "data", "member") as etcd:
        etcd.ctl("put", "k", "v")
        result = run_script(snapshot_script, etcd, backups, keep=2, tools=tools)
    assert result.returncode == 0, result.stderr
    names = set(p.name for p in backups.iterdir())
    new = [n for n in names if n not in old and n not in foreign]
    assert len(new) == 1
    assert names == {*foreign, *new, old[-1]}, "keeps the newest two of ours and every file it did not write"
    assert sorted(f"removed expired {name}" in result.stdout for name in old[:3]) == [True] * 3


def test_a_failed_snapshot_fails_the_run_and_leaves_nothing(tmp_path, snapshot_script, tools):
    backups = tmp_path / "backups"
    env = {
        "PATH": f"{tools}:{os.environ['PATH']}",
        "ETCDCTL_ENDPOINTS": f"http://127.0.0.1:{_free_port()}",
        "ETCDCTL_DIAL_TIMEOUT": "1s",
        "ETCDCTL_COMMAND_TIMEOUT": "2s",
        "BACKUP_DIR": str(backups),
        "KEEP": "3",
    }
    result = subprocess.run(["sh", str(snapshot_script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "snapshot save failed" in result.stderr
    assert list(backups.iterdir()) == []


@pytest.mark.parametrize("keep", ["0", "-1", "three", ""])
def test_keep_must_be_a_positive_integer(tmp_path, snapshot_script, keep):
    env = {
        "PATH": os.environ["PATH"],
        "ETCDCTL_ENDPOINTS": "http://127.0.0.1:9",
        "BACKUP_DIR": str(tmp_path),
        "KEEP": keep,
    }
    result = subprocess.run(["sh", str(snapshot_script)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_upload_copies_the_new_snapshot_to_the_bucket_url(tmp_path, snapshot_script, tools):
    """The upload step's command line, recorded by an ``aws`` stand-in (no S3 is reachable from tests)."""
    record = tmp_path / "aws-calls"
    fake_aws = tools / "aws"
    fake_aws.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    fake_aws.chmod(0o755)
    with Etcd(tmp_path / "data", "member") as etcd:
        etcd.ctl("put", "k", "v")
        result = run_script(snapshot_script, etcd, tmp_path / "b", 2, tools, UPLOAD_URL="s3://bucket/dgx/etcd/node1/")
    assert result.returncode == 0, result.stderr
    (snapshot,) = snapshots(tmp_path / "b")
    assert record.read_text().split() == [
        "s3",
        "cp",
        "--only-show-errors",
        str(tmp_path / "b" / snapshot),
        f"s3://bucket/dgx/etcd/node1/{snapshot}",
    ]
