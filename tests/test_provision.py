"""``gpucluster provision``: ansible-runner drives a playbook, progress and the recap come from its events.

The runner tests use a small playbook against two local hosts (connection ``local``), one of which fails
on purpose; converging real test hosts with ``ansible/site.yml`` is in tests/test_converge.py.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpucluster.cli import app
from gpucluster.onprem import provision as provision_module
from gpucluster.onprem.provision import Progress, recap_of, run_playbook
from stacks import ROOT

pytest.importorskip("ansible_runner", reason="ansible-runner is not installed (the onprem extra)")
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
pytestmark = pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-core is not installed (onprem extra)")
runner = CliRunner()


@pytest.fixture
def playbook(tmp_path) -> Path:
    """Writes a file on every host (changed once, then ok) and fails on the host named 'bad'."""
    path = tmp_path / "play" / "site.yml"
    path.parent.mkdir()
    path.write_text(
        textwrap.dedent(
            """\
            - name: Test play
              hosts: all
              gather_facts: false
              tasks:
                - name: Write the marker
                  ansible.builtin.copy:
                    content: "converged\\n"
                    dest: "{{ marker_dir }}/{{ inventory_hostname }}"
                    mode: "0644"
                - name: Fail where asked
                  ansible.builtin.fail:
                    msg: "{{ inventory_hostname }} refuses"
                  when: inventory_hostname == 'bad'
            """
        )
    )
    return path


def _inventory(tmp_path: Path, *hosts: str) -> dict:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return {"all": {"vars": {"marker_dir": str(tmp_path)}, "hosts": {host: dict(local) for host in hosts}}}


def test_runner_reports_each_host_and_a_failing_host_fails_the_run(tmp_path, playbook):
    progress = Progress()
    result = run_playbook(_inventory(tmp_path, "good", "bad"), playbook, on_event=progress.record)
    assert not result.succeeded
    assert result.failed_hosts == ["bad"]
    assert result.recap["good"]["failures"] == 0 and result.recap["good"]["changed"] == 1
    assert result.recap["bad"]["failures"] == 1
    assert progress.hosts["bad"].failed == 1 and "bad refuses" in progress.hosts["bad"].last_error
    assert progress.hosts["good"].changed == 1
    assert (tmp_path / "good").read_text() == "converged\n"


def test_second_run_changes_nothing_and_check_mode_writes_nothing(tmp_path, playbook):
    inventory = _inventory(tmp_path, "good")
    assert run_playbook(inventory, playbook).recap["good"]["changed"] == 1
    again = run_playbook(inventory, playbook)
    assert again.succeeded and again.recap["good"]["changed"] == 0
    dry = _inventory(tmp_path / "dry", "good")
    (tmp_path / "dry").mkdir()
    checked = run_playbook(dry, playbook, check=True)
    assert checked.succeeded and checked.recap["good"]["changed"] == 1
    assert not (tmp_path / "dry" / "good").exists(), "--check changes nothing"


def test_limit_runs_only_the_named_hosts(tmp_path, playbook):
    result = run_playbook(_inventory(tmp_path, "good", "bad"), playbook, limit="good")
    assert result.succeeded and set(result.recap) == {"good"}


def test_recap_of_runner_stats():
    stats = {"ok": {"a": 3, "b": 1}, "changed": {"a": 1}, "failures": {"b": 1}, "dark": {}, "skipped": {"a": 2}}
    assert recap_of(stats) == {
        "a": {"ok": 3, "changed": 1, "failures": 0, "dark": 0, "skipped": 2},
        "b": {"ok": 1, "changed": 0, "failures": 1, "dark": 0, "skipped": 0},
    }
    assert recap_of(None) == {}


def test_provision_command_refuses_aws_stacks():
    result = runner.invoke(app, ["provision", "--stack", str(ROOT / "stacks/Pulumi.eks-t4.yaml")])
    assert result.exit_code == 2 and "no machines to provision" in result.output


def test_provision_command_exits_1_when_a_host_fails(tmp_path, monkeypatch, playbook):
    """The command end to end on an on-prem stack, with every host made local and a playbook that fails one."""
    real_inventory = provision_module.inventory

    def local_inventory(plan, addresses=None):
        data = real_inventory(plan, addresses)
        for name, host in list(data["all"]["hosts"].items()):
            host.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
            if name == "jw2":
                data["all"]["hosts"]["bad"] = dict(host)
        data["all"].setdefault("vars", {})["marker_dir"] = str(tmp_path)
        return data

    monkeypatch.setattr(provision_module, "inventory", local_inventory)
    monkeypatch.setattr(provision_module, "ANSIBLE_DIR", playbook.parent)
    stack = str(ROOT / "stacks/Pulumi.onprem-kubeadm.yaml")
    result = runner.invoke(app, ["provision", "--stack", stack])
    assert result.exit_code == 1, result.output
    assert "bad refuses" in result.output
    for host in ("jw1", "jw2", "jw3"):
        assert (tmp_path / host).exists()


def test_bad_addresses_file_is_bad_input(tmp_path):
    addresses = tmp_path / "addresses.yaml"
    addresses.write_text("- not a mapping\n")
    stack = str(ROOT / "stacks/Pulumi.hybrid-crio.yaml")
    result = runner.invoke(app, ["provision", "--stack", stack, "--addresses", str(addresses)])
    assert result.exit_code == 2 and "expected a mapping" in result.output


def test_provision_converges_a_real_test_host_twice_through_ansible_runner(tmp_path, bookworm_base):
    """ansible/site.yml's node_prep layer on a debootstrapped Debian 12 host, through ``provision``: the second
    run changes nothing. (The full converge, every layer, is tests/test_converge.py's, with ansible-playbook.)"""
    from testhost import chroot_host, new_host

    from gpucluster.onprem.provision import provision
    from gpucluster.plan import make_plan
    from stacks import spec_of

    root = new_host(bookworm_base, tmp_path / "root")
    real_inventory = provision_module.inventory

    def test_host_inventory(plan, addresses=None):
        data = real_inventory(plan, addresses)
        data["all"]["hosts"]["jw2"].update(chroot_host(root))
        return data

    plan = make_plan(spec_of("onprem-kubeadm"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(provision_module, "inventory", test_host_inventory)
        runs = [provision(plan, limit="jw2", tags="node_prep") for _ in range(2)]
    assert all(run.succeeded for run in runs), [run.recap for run in runs]
    assert runs[0].recap["jw2"]["changed"] > 0
    assert runs[1].recap["jw2"]["changed"] == 0
    assert (root / "etc/modules-load.d").is_dir()
