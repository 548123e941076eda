"""The Pulumi side of bare metal: ``pulumi up`` converges the stack's machines with ansible/site.yml.

A ``Convergence`` component holds one dynamic resource whose inputs are the inventory (from the plan, with
the addresses Pulumi created for hybrid machines) and a fingerprint of every file under ``ansible/`` and
``templates/``. Pulumi re-runs the playbook (through ``gpucluster.onprem.provision``, the same path as
``gpucluster provision``) exactly when one of those changes; ``pulumi preview`` shows the change and runs
nothing. A failed host fails the update. ``pulumi destroy`` leaves the machines configured: undoing a
node is ``ansible-playbook ansible/reset.yml``, an explicit step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic

from gpucluster.onprem.inventory import inventory
from gpucluster.onprem.provision import ANSIBLE_DIR, SITE_PLAYBOOK, run_playbook
from gpucluster.plan import Plan

TEMPLATES_DIR = ANSIBLE_DIR.parent / "templates"
# Inputs whose change means the machines must be converged again (the playbook's path is where this
# checkout happens to be, which differs between a laptop and CI: it is not one of them).
CONVERGE_INPUTS = ("inventory", "fingerprint", "check")


def files_fingerprint(*directories: Path) -> str:
    """sha256 over the relative paths and contents of every file below ``directories``."""
    digest = hashlib.sha256()
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(f"{directory.name}/{path.relative_to(directory).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def with_connection(data: dict[str, Any], connection: Mapping[str, str]) -> dict[str, Any]:
    """The inventory with ``connection`` added to its cluster-wide variables."""
    if connection:
        data["all"]["vars"] = {**data["all"].get("vars", {}), **connection}
    return data


class AnsibleProvider(pulumi.dynamic.ResourceProvider):
    """Runs the playbook on create and on every update of the converge inputs."""

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=f"{props['cluster']}-converged", outs=converge(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [key for key in CONVERGE_INPUTS if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=converge(news))


def converge(props: Mapping[str, Any]) -> dict[str, Any]:
    """Run the playbook for the props; raise (failing the Pulumi operation) when a host fails."""
    result = run_playbook(props["inventory"], Path(props["playbook"]), check=bool(props.get("check")))
    if not result.succeeded:
        hosts = ", ".join(result.failed_hosts) or "(no host reached)"
        raise RuntimeError(f"ansible/site.yml {result.status} (rc {result.rc}) on {hosts}")
    return {**props, "recap": result.recap}


class AnsibleRun(pulumi.dynamic.Resource):
    recap: pulumi.Output[dict]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(AnsibleProvider(), name, {**props, "recap": None}, opts)


class Convergence(pulumi.ComponentResource):
    """The stack's machines, converged with ansible/site.yml whenever the inventory or the roles change."""

    def __init__(
        self,
        plan: Plan,
        addresses: pulumi.Input[Mapping[str, str]] | None = None,
        connection: Mapping[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """``addresses``: machine name -> address of machines Pulumi created (hybrid); ``connection``: Ansible
        connection settings for all of them (e.g. the image's login user)."""
        name = plan.spec.name
        super().__init__("gpucluster:onprem:Convergence", name, None, opts)
        machines = pulumi.Output.from_input(addresses or {}).apply(
            lambda known: with_connection(inventory(plan, known), connection or {})
        )
        props = {
            "cluster": name,
            "inventory": machines,
            "fingerprint": files_fingerprint(ANSIBLE_DIR, TEMPLATES_DIR),
            "playbook": str(ANSIBLE_DIR / SITE_PLAYBOOK),
            "check": False,
        }
        self.run = AnsibleRun(f"{name}-site", props, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"recap": self.run.recap})
