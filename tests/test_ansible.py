"""The Ansible side as users run it: ansible-lint (production profile), syntax checks against every
on-prem inventory, and the first play refusing a bad inventory before anything changes."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gpucluster.render import render
from stacks import ROOT, STACKS, spec_of

ANSIBLE_DIR = ROOT / "ansible"
BIN = ROOT / ".venv" / "bin"
ONPREM_STACKS = [name for name in STACKS if spec_of(name).platform != "aws"]


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not installed (pip install -e '.[test]')")
    return found


def ansible_env() -> dict[str, str]:
    """Run as the README says: from the repository root, whose ansible.cfg points at ansible/."""
    return {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


def rendered_inventory(stack: str) -> dict:
    return yaml.safe_load(render(spec_of(stack)).files()["ansible/inventory.yml"])


def test_catalog_gpus_are_the_ones_preflight_knows():
    from gpucluster.catalog import catalog

    defaults = yaml.safe_load((ANSIBLE_DIR / "roles" / "preflight" / "defaults" / "main.yml").read_text())
    assert defaults["preflight_known_gpus"] == list(catalog().gpus)


def test_every_role_has_defaults_meta_and_argument_specs_for_its_defaults():
    for role in sorted(p for p in (ANSIBLE_DIR / "roles").iterdir() if p.is_dir()):
        defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
        specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
        options = specs["argument_specs"]["main"]["options"]
        assert set(defaults) <= set(options), (role.name, set(defaults) - set(options))
        assert (role / "meta" / "main.yml").is_file()
        assert (role / "tasks" / "main.yml").is_file()


def test_ansible_lint_production_profile_is_clean():
    lint = tool("ansible-lint")
    result = subprocess.run(
        [lint, "--nocolor", "ansible/"], cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


@pytest.mark.parametrize("stack", ONPREM_STACKS)
@pytest.mark.parametrize("playbook", ["site.yml", "reset.yml"])
def test_playbooks_pass_syntax_check_with_each_inventory(stack, playbook, tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_bytes(render(spec_of(stack)).files()["ansible/inventory.yml"])
    result = subprocess.run(
        [tool("ansible-playbook"), "--syntax-check", "-i", str(inventory), str(ANSIBLE_DIR / playbook)],
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run_preflight(inventory: dict, tmp_path: Path, limit: str) -> subprocess.CompletedProcess:
    """Run site.yml's first play only (the preflight role is tagged 'always') on this machine."""
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return subprocess.run(
        [
            tool("ansible-playbook"),
            "-i",
            str(path),
            str(ANSIBLE_DIR / "site.yml"),
            "--tags",
            "preflight-only",
            "--limit",
            limit,
            "-e",
            json.dumps({"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python")}),
        ],
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def debian12() -> None:
    release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    if 'VERSION_ID="12"' not in release or "ID=debian" not in release:
        pytest.skip("preflight runs against this machine, which is not Debian 12")


def test_preflight_passes_a_generated_inventory_without_changes(tmp_path):
    debian12()
    result = run_preflight(rendered_inventory("onprem-kubeadm"), tmp_path, "jw2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed=0" in result.stdout


def bad_gpu(inventory: dict) -> dict:
    inventory["all"]["hosts"]["jw2"]["host_gpus"][0]["model"] = "Z100"
    return inventory


def runtime_missing(inventory: dict) -> dict:
    inventory["all"]["vars"].update(container_runtime="cri-o", container_runtime_install=False)
    return inventory


def two_k3s_servers(inventory: dict) -> dict:
    inventory["all"]["vars"].update(kubernetes_distribution="k3s", k3s_server_config={})
    inventory["all"]["hosts"]["jw3"] = inventory["all"]["hosts"]["jw3"]
    inventory["all"]["children"]["control_plane"]["hosts"]["jw3"] = None
    return inventory


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (bad_gpu, "jw2 is a GPU node with GPUs ['Z100']"),
        (runtime_missing, "container_runtime_install is false but cri-o is not installed on jw2 (/usr/bin/crio"),
        (two_k3s_servers, "2 k3s control-plane hosts (jw1, jw3) need an external datastore"),
    ],
    ids=["unknown-gpu", "runtime-not-installed", "k3s-two-servers-no-datastore"],
)
def test_preflight_refuses_a_bad_inventory_before_any_change(tmp_path, break_it, message):
    debian12()
    if break_it is runtime_missing and Path("/usr/bin/crio").exists():
        pytest.skip("CRI-O is installed on this machine")
    inventory = break_it(copy.deepcopy(rendered_inventory("onprem-kubeadm")))
    result = run_preflight(inventory, tmp_path, "jw2")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, output
    assert message in output
    assert "changed=0" in output
    assert "Prepare every node" not in output  # no later play started
