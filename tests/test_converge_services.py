"""Converge a real Debian 12 test host with the host services of ansible/site.yml, twice.

The thermal guardian (role ``guardian``, tag ``monitoring``) on a GPU worker of an on-prem stack with
Kubernetes-side monitoring off: gpucluster is installed into its own virtualenv from a wheel built here
from this checkout (``--no-deps``: its dependencies come from PyPI on a real host; here only what the role
writes is checked), and its unit is written, verified by systemd itself and enabled but not started (chroot).
Needs root, debootstrap and systemd-nspawn like tests/test_converge.py; skips otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from testhost import ROOT, AptCache, chroot_host, converge, new_host, recap

from gpucluster.render import render
from gpucluster.spec import ClusterSpec
from stacks import spec_of

UNIT = "etc/systemd/system/gpucluster-guardian.service"
BUILD_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "tests")


def guardian_spec() -> ClusterSpec:
    """Seed 002 without Kubernetes-side monitoring and with the guardian: the host service's case."""
    raw = spec_of("onprem-kubeadm").model_dump(mode="json")
    raw["monitoring"]["enabled"] = False
    raw["monitoring"]["guardian"] = {"enabled": True, "limit_celsius": 82, "interval_seconds": 20}
    return ClusterSpec.model_validate(raw)


def build_wheel(tmp: Path) -> Path:
    """This checkout as a wheel, built from a copy (a build leaves build/ and *.egg-info behind)."""
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=BUILD_IGNORE)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    return next((tmp / "dist").glob("gpucluster-*.whl"))


@pytest.fixture(scope="module")
def guardian_host(bookworm_base: Path, tmp_path_factory) -> Iterator[tuple[Path, list]]:
    tmp = tmp_path_factory.mktemp("guardian-host")
    root = new_host(bookworm_base, tmp / "root")
    wheel = build_wheel(tmp)
    shutil.copy2(wheel, root / "tmp" / wheel.name)
    inventory = yaml.safe_load(render(guardian_spec()).files()["ansible/inventory.yml"])
    inventory["all"]["hosts"]["jw2"].update(
        chroot_host(root), guardian_package=f"/tmp/{wheel.name}", guardian_pip_extra_args="--no-deps"
    )
    path = tmp / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    with AptCache(root):
        runs = [converge(path, "--tags", "monitoring") for _ in range(2)]
    yield root, runs
    shutil.rmtree(tmp, ignore_errors=True)


def chroot(root: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["chroot", str(root), *command], capture_output=True, text=True)


def test_guardian_host_converges_then_reconverges_with_no_change(guardian_host):
    _, (first, second) = guardian_host
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap(first)["changed"] > 0
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second)["changed"] == 0, second.stdout[-4000:]


def test_guardian_unit_runs_the_installed_guardian_with_the_specs_settings(guardian_host):
    root, _ = guardian_host
    unit = (root / UNIT).read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start == (
        "ExecStart=/opt/gpucluster-guardian/bin/gpucluster guardian --mode host --limit 82 --interval 20 "
        "--metrics-address 127.0.0.1 --metrics-port 9824"
    )
    for setting in (
        "Restart=on-failure",
        "CapabilityBoundingSet=CAP_KILL",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ):
        assert setting in unit.splitlines()
    assert (root / "opt/gpucluster-guardian/bin/gpucluster").is_file()
    installed = chroot(root, "/opt/gpucluster-guardian/bin/pip", "show", "gpucluster")
    assert installed.returncode == 0 and "Name: gpucluster" in installed.stdout, installed.stderr


def test_guardian_unit_is_enabled_and_verified_by_systemd(guardian_host):
    root, _ = guardian_host
    link = root / "etc/systemd/system/multi-user.target.wants/gpucluster-guardian.service"
    assert link.readlink() == Path("/" + UNIT)
    verify = chroot(root, "systemd-analyze", "verify", "/" + UNIT)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "gpucluster-guardian" not in verify.stderr, verify.stderr  # no warnings about our unit
