"""Converge a stack's machines with ``ansible/site.yml`` through ansible-runner.

``gpucluster provision`` and the Pulumi on-prem component both come here, so a node is configured the same
way from the CLI, from CI and from ``pulumi up``: the inventory is the one ``gpucluster inventory`` writes,
the playbook the one users run with ``ansible-playbook``. Events stream to a callback (the CLI shows live
per-host progress); the result is ansible-runner's recap per host.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpucluster.onprem.inventory import inventory
from gpucluster.plan import Plan

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
SITE_PLAYBOOK = "site.yml"
RECAP_KEYS = ("ok", "changed", "failures", "dark", "skipped")  # ansible-runner's stats; dark: unreachable


class ProvisionError(RuntimeError):
    """Provisioning could not start (no playbook, ansible-runner missing)."""


@dataclass
class HostProgress:
    """What one host has done so far, from the runner's events."""

    task: str = ""
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    last_error: str = ""


@dataclass
class Progress:
    hosts: dict[str, HostProgress] = field(default_factory=dict)

    def host(self, name: str) -> HostProgress:
        return self.hosts.setdefault(name, HostProgress())

    def record(self, event: Mapping[str, Any]) -> None:
        """Fold one ansible-runner event into the per-host counts."""
        data = event.get("event_data") or {}
        name = data.get("host")
        kind = event.get("event", "")
        if not name:
            return
        host = self.host(name)
        host.task = data.get("task", host.task)
        result = data.get("res") or {}
        if kind == "runner_on_ok":
            host.ok += 1
            host.changed += bool(result.get("changed"))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            host.failed += 1
            host.last_error = str(result.get("msg") or result.get("stderr") or "")[:300]
        elif kind == "runner_on_unreachable":
            host.unreachable += 1
            host.last_error = str(result.get("msg", ""))[:300]
        elif kind == "runner_on_skipped":
            host.skipped += 1


@dataclass(frozen=True)
class ProvisionResult:
    status: str  # ansible-runner's: "successful" | "failed" | "timeout" | "canceled"
    rc: int
    recap: dict[str, dict[str, int]]  # host -> ok/changed/failures/dark/skipped

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, counts in self.recap.items() if counts["failures"] or counts["dark"])

    @property
    def succeeded(self) -> bool:
        return self.status == "successful" and self.rc == 0 and not self.failed_hosts


def recap_of(stats: Mapping[str, Mapping[str, int]] | None) -> dict[str, dict[str, int]]:
    """ansible-runner's ``stats`` (counts per kind per host) as counts per host."""
    hosts = sorted({host for kind in RECAP_KEYS for host in (stats or {}).get(kind, {})})
    return {host: {kind: int((stats or {}).get(kind, {}).get(host, 0)) for kind in RECAP_KEYS} for host in hosts}


def run_playbook(
    inventory_data: Mapping[str, Any],
    playbook: Path,
    *,
    check: bool = False,
    limit: str | None = None,
    tags: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    on_event: Callable[[Mapping[str, Any]], None] | None = None,
) -> ProvisionResult:
    """Run one playbook against an inventory (as data) in a private, temporary runner directory."""
    try:
        import ansible_runner
    except ImportError as error:
        raise ProvisionError("ansible-runner is not installed: pip install 'gpucluster[test]'") from error
    if not playbook.is_file():
        raise ProvisionError(f"no playbook at {playbook}")
    # The ansible-playbook installed with gpucluster (beside this Python) comes first on the runner's PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    if shutil.which("ansible-playbook", path=path) is None:
        raise ProvisionError("ansible-playbook is not installed: pip install 'gpucluster[onprem]'")
    options = [*(["--check", "--diff"] if check else []), *(["--limit", limit] if limit else [])]
    options += ["--tags", tags] if tags else []
    with tempfile.TemporaryDirectory(prefix="gpucluster-provision-") as private:
        inventory_file = Path(private) / "inventory.yml"
        inventory_file.write_text(yaml.safe_dump(dict(inventory_data), sort_keys=False))
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(playbook.parent),
            playbook=str(playbook),
            inventory=str(inventory_file),
            cmdline=" ".join(options) or None,
            extravars=dict(extra_vars or {}),
            envvars={"PATH": path, "ANSIBLE_NOCOLOR": "1"},
            event_handler=_keeping(on_event) if on_event else None,
            quiet=True,
            suppress_env_files=True,
        )
        return ProvisionResult(runner.status, runner.rc, recap_of(runner.stats))


def _keeping(callback: Callable[[Mapping[str, Any]], None]) -> Callable[[Mapping[str, Any]], bool]:
    """An ansible-runner event handler that passes each event on and keeps it (True) in the artifacts."""

    def handle(event: Mapping[str, Any]) -> bool:
        callback(event)
        return True

    return handle


def provision(
    plan: Plan,
    *,
    addresses: Mapping[str, str] | None = None,
    ansible_dir: Path | None = None,
    **options: Any,
) -> ProvisionResult:
    """Converge the stack's machines with ``ansible/site.yml`` (see ``run_playbook`` for the options)."""
    if plan.spec.platform == "aws":
        raise ProvisionError("platform 'aws' has no machines to provision: EKS nodes come from their AMI")
    return run_playbook(inventory(plan, addresses), (ansible_dir or ANSIBLE_DIR) / SITE_PLAYBOOK, **options)
