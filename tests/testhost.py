"""Debian 12 test hosts for the Ansible roles: a debootstrapped bookworm root (cached under
/var/cache/gpucluster-test/, keyed by package list and mirror), copied per host, converged through Ansible's
chroot connection and booted with systemd-nspawn. Used by tests/test_converge.py and benchmarks/run.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
CACHE = Path(os.environ.get("GPUCLUSTER_TEST_CACHE", "/var/cache/gpucluster-test"))
BASE_PACKAGES = ("python3", "systemd", "systemd-sysv", "dbus", "kmod", "procps")


def debian_mirror() -> str:
    """The machine's configured Debian mirror (deb822 or one-line sources), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        text = path.read_text(errors="replace") if path.is_file() else ""
        for stanza in text.split("\n\n"):
            if re.search(r"^Suites:.*\bbookworm\b", stanza, re.M):
                uri = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if uri and "security" not in uri.group(1):
                    return uri.group(1)
        line = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M)
        if line:
            return line.group(1)
    return "http://deb.debian.org/debian"


def build_base() -> Path:
    """A cached bookworm root with Python and systemd, built once per package list and mirror.

    Raises ``RuntimeError`` with the reason when debootstrap fails.
    """
    mirror = debian_mirror()
    key = hashlib.sha256(json.dumps([BASE_PACKAGES, mirror]).encode()).hexdigest()[:12]
    base = CACHE / f"bookworm-{key}"
    if not (base / ".complete").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = CACHE / f".bookworm-{key}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        include = ",".join(BASE_PACKAGES)
        built = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={include}", "bookworm", str(staging), mirror],
            capture_output=True,
            text=True,
        )
        if built.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"debootstrap from {mirror} failed: {built.stdout[-500:]}{built.stderr[-500:]}")
        (staging / ".complete").touch()
        if (base / ".complete").exists():  # a concurrent run finished first: keep its root
            shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.rmtree(base, ignore_errors=True)
            staging.rename(base)
    return base


def missing_requirement() -> str | None:
    """Why test hosts cannot be built here, or None."""
    if os.geteuid() != 0:
        return "converging a test host needs root (debootstrap, chroot, systemd-nspawn)"
    for command, package in (("debootstrap", "debootstrap"), ("systemd-nspawn", "systemd-container")):
        if shutil.which(command) is None:
            return f"{command} not installed (Debian package {package}; scripts/dev.sh installs it)"
    if not (BIN / "ansible-playbook").exists():
        return "ansible-playbook not installed (pip install -e '.[test]')"
    return None


def new_host(base: Path, path: Path) -> Path:
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(path)], check=True)
    (path / ".complete").unlink()
    return path


class AptCache:
    """Share downloaded packages across test hosts and runs: the host's apt archive is seeded from the
    cache and new packages are copied back (copies, not a bind mount, so concurrent runs never share
    apt's lock)."""

    def __init__(self, root: Path):
        self.archives = root / "var/cache/apt/archives"
        self.cache = CACHE / "apt-archives"

    def __enter__(self) -> AptCache:
        self.cache.mkdir(parents=True, exist_ok=True)
        for package in self.cache.glob("*.deb"):
            shutil.copy2(package, self.archives / package.name)
        return self

    def __exit__(self, *exc) -> None:
        for package in self.archives.glob("*.deb"):
            if not (self.cache / package.name).exists():
                staging = self.cache / f".{package.name}.{os.getpid()}"
                shutil.copy2(package, staging)
                staging.rename(self.cache / package.name)


def chroot_host(root: Path) -> dict[str, str]:
    return {
        "ansible_host": str(root),
        "ansible_connection": "community.general.chroot",
        "ansible_python_interpreter": "/usr/bin/python3",
    }


def converge(
    inventory: Path, *args: str, host: str = "jw2", playbook: Path = ROOT / "ansible" / "site.yml"
) -> subprocess.CompletedProcess:
    """Run a playbook (default: site.yml) against one inventory host, from the repository root."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(playbook),
            "--limit",
            host,
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def recap(result: subprocess.CompletedProcess, host: str = "jw2") -> dict[str, int]:
    line = re.search(rf"^{host}\s+:\s+(.*)$", result.stdout, re.M)
    assert line, result.stdout[-3000:] + result.stderr[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line.group(1))}


class Booted:
    """The host booted with systemd-nspawn; commands run inside through nsenter."""

    def __init__(self, root: Path):
        self.process = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "--boot", "--quiet", "-D", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.leader = 0

    def __enter__(self) -> Booted:
        deadline = time.monotonic() + 90  # generous: the machine may be busy with other tests
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        while not self.leader and time.monotonic() < deadline:
            found = children.read_text().split() if children.exists() else []
            self.leader = int(found[0]) if found else 0
            time.sleep(0.2)
        assert self.leader, "systemd-nspawn did not start the host's systemd"
        return self

    def run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "--", *command],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def wait_active(self, unit: str, seconds: float = 180) -> str:
        deadline = time.monotonic() + seconds
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-active", unit).stdout.strip()
            if state in ("active", "failed"):
                break
            time.sleep(0.5)
        return state

    def __exit__(self, *exc) -> None:
        self.process.terminate()  # nspawn asks the host's systemd to power off
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
