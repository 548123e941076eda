"""The Ansible inventory of on-prem and hybrid stacks: built from the plan, read back by Ansible itself."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpucluster.cli import app
from gpucluster.onprem.inventory import inventory, pool_group
from gpucluster.plan import make_plan
from gpucluster.render import render
from gpucluster.spec import ClusterSpec
from gpucluster.stackfile import SpecError, parse_spec
from stacks import ROOT, STACKS, spec_of

ONPREM_STACKS = [name for name in STACKS if spec_of(name).platform != "aws"]
ANSIBLE_INVENTORY = shutil.which("ansible-inventory", path=str(ROOT / ".venv" / "bin")) or shutil.which(
    "ansible-inventory"
)
runner = CliRunner()


def ansible_view(path: Path) -> dict:
    """What Ansible itself makes of an inventory file: hosts with merged variables, groups."""
    if ANSIBLE_INVENTORY is None:
        pytest.skip("ansible-inventory not installed (pip install -e '.[test]')")
    listed = subprocess.run([ANSIBLE_INVENTORY, "-i", str(path), "--list"], capture_output=True, text=True, check=True)
    return json.loads(listed.stdout)


@pytest.mark.parametrize("stack", ONPREM_STACKS)
def test_ansible_reads_every_onprem_inventory_with_the_plans_labels_and_taints(stack, tmp_path):
    plan = make_plan(spec_of(stack))
    path = tmp_path / "inventory.yml"
    path.write_bytes(render(plan.spec).files()["ansible/inventory.yml"])
    view = ansible_view(path)
    hostvars = view["_meta"]["hostvars"]
    for pool in plan.pools:
        members = view[pool_group(pool.name)]["hosts"]
        assert len(members) == (len(pool.spec.hosts) or pool.spec.scaling.desired)
        for host in members:
            assert hostvars[host]["node_labels"] == pool.labels
            expected = [f"{t.key}={t.value}:{t.effect}" for t in pool.taints]
            assert hostvars[host]["node_taints"] == expected
            assert hostvars[host]["kubernetes_admission_plugins"] == ["ExtendedResourceToleration"]
            settings = hostvars[host]["nvidia_toolkit_settings"]
            assert settings["accept-nvidia-visible-devices-envvar-when-unprivileged"] is False
    control_plane = view["control_plane"]["hosts"]
    assert control_plane
    assert set(view.get("workers", {}).get("hosts", [])).isdisjoint(control_plane)


def test_hosts_carry_connection_and_gpu_facts(load_raw):
    raw = load_raw("onprem-dgx")
    raw["kubernetes"]["control_plane"]["hosts"][0].update(ssh_user="ops", ssh_port=2222)
    all_ = inventory(make_plan(ClusterSpec.model_validate(raw)))["all"]
    assert all_["hosts"]["master1"] == {"ansible_host": "192.168.1.11", "ansible_user": "ops", "ansible_port": 2222}
    assert all_["hosts"]["master2"] == {"ansible_host": "192.168.1.12"}
    dgx = all_["hosts"]["dgx01"]
    assert dgx["nvidia_fabric_manager"] is True  # 8x A100 SXM: NVSwitch
    assert dgx["nvidia_open_kernel_modules"] is True
    assert all_["vars"]["kubernetes_control_plane_endpoint"] == "gpu-cluster-lb.example.com:6443"
    assert all_["vars"]["infiniband_hcas"] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]


def test_single_control_plane_endpoint_is_its_address_and_blackwell_gets_open_modules():
    all_ = inventory(make_plan(spec_of("onprem-k3s")))["all"]
    assert all_["vars"]["kubernetes_control_plane_endpoint"] == "192.168.10.20:6443"
    assert all_["vars"]["nvidia_driver_branch"] == "575"
    assert all_["hosts"]["gpu-server"]["nvidia_open_kernel_modules"] is True
    assert all_["hosts"]["gpu-server"]["nvidia_fabric_manager"] is False
    assert all_["children"]["workers"]["hosts"] == {}


def test_hybrid_machines_get_addresses_from_the_provisioner():
    plan = make_plan(spec_of("hybrid-crio"))
    unknown = inventory(plan)["all"]
    assert "ansible_host" not in unknown["hosts"]["l4-workers-1"]
    assert unknown["vars"]["kubernetes_control_plane_endpoint"] is None
    known = inventory(plan, {"control-plane-1": "10.40.0.10", "l4-workers-1": "10.40.0.11"})["all"]
    assert known["hosts"]["l4-workers-1"]["ansible_host"] == "10.40.0.11"
    assert known["vars"]["kubernetes_control_plane_endpoint"] == "10.40.0.10:6443"
    assert known["vars"]["container_runtime"] == "cri-o"


def test_registry_mirrors_reach_the_inventory(load_raw):
    raw = load_raw("onprem-kubeadm")
    raw["runtime"]["registry_mirrors"] = {"docker.io": ["https://mirror.example.com:5000"]}
    all_ = inventory(make_plan(ClusterSpec.model_validate(raw)))["all"]
    assert all_["vars"]["container_registry_mirrors"] == {"docker.io": ["https://mirror.example.com:5000"]}


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"gpu_stack": {"open_kernel_modules": False}}, "gpucluster:cluster.gpu_stack.open_kernel_modules"),
        ({"runtime": {"registry_mirrors": {"docker.io": ["ftp://x"]}}}, "gpucluster:cluster.runtime.registry_mirrors"),
    ],
)
def test_bad_node_settings_name_the_field(load_raw, change, path):
    raw = load_raw("onprem-k3s")
    for section, values in change.items():
        raw[section] = {**raw.get(section, {}), **values}
    with pytest.raises(SpecError) as raised:
        parse_spec(raw, source="stack.yaml")
    assert path in raised.value.describe()


def test_cli_writes_the_rendered_inventory_and_refuses_foreign_files(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["inventory", "--stack", "onprem-kubeadm", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "a" / "inventory.yml").read_bytes()
    assert written == render(spec_of("onprem-kubeadm")).files()["ansible/inventory.yml"]
    again = runner.invoke(app, ["inventory", "--stack", "onprem-kubeadm", "--out", str(tmp_path / "a")])
    assert again.exit_code == 0
    foreign = tmp_path / "b" / "inventory.yml"
    foreign.parent.mkdir()
    foreign.write_text("all: {hosts: {mine: {}}}\n")
    refused = runner.invoke(app, ["inventory", "--stack", "onprem-kubeadm", "--out", str(foreign.parent)])
    assert refused.exit_code == 2
    assert foreign.read_text() == "all: {hosts: {mine: {}}}\n"
    aws = runner.invoke(app, ["inventory", "--stack", "eks-t4", "--out", str(tmp_path / "c")])
    assert aws.exit_code == 2
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("platform", "monitoring", "guardian", "on_hosts"),
    [
        ("onprem", False, True, True),  # no Kubernetes-side monitoring: the host service
        ("onprem", True, True, False),  # monitoring on: the DaemonSet
        ("onprem", False, False, False),  # guardian off: neither
        ("hybrid", False, True, True),
    ],
)
def test_the_guardian_runs_either_on_the_host_or_as_a_daemonset_never_both(platform, monitoring, guardian, on_hosts):
    stack = "onprem-kubeadm" if platform == "onprem" else "hybrid-crio"
    raw = spec_of(stack).model_dump(mode="json")
    raw["monitoring"]["enabled"] = monitoring
    raw["monitoring"]["guardian"] = {"enabled": guardian, "limit_celsius": 80, "interval_seconds": 15}
    if guardian and monitoring:
        raw["monitoring"]["guardian"]["image"] = "ghcr.io/example/guardian:1.0"
    spec = ClusterSpec.model_validate(raw)
    bundle = render(spec).files()
    hosts_vars = inventory(make_plan(spec))["all"]["vars"]
    daemonset = any(b"kind: DaemonSet" in body and b"gpucluster-guardian" in body for body in bundle.values())
    assert hosts_vars["guardian_host_service"] is on_hosts
    assert daemonset is (guardian and not on_hosts)
    assert (hosts_vars["guardian_limit_celsius"], hosts_vars["guardian_interval_seconds"]) == (80, 15)
    assert hosts_vars["guardian_package"].startswith("gpucluster==")
