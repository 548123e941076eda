"""The on-prem Pulumi program: one dynamic resource converges the machines with ansible/site.yml."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from test_aws_program import stack_config

from gpucluster.onprem.convergence import TEMPLATES_DIR, AnsibleProvider, Convergence, files_fingerprint
from gpucluster.onprem.provision import ANSIBLE_DIR
from gpucluster.plan import make_plan
from gpucluster.program.offline import evaluate
from stacks import spec_of

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def test_convergence_runs_the_site_playbook_on_every_machine_of_the_stack():
    config = stack_config("onprem-dgx")
    plan = make_plan(spec_of("onprem-dgx"))
    registered = {r.name: r for r in evaluate("onprem-dgx", config, lambda: Convergence(plan))}
    run = registered["dgx-site"]
    assert run.type == "pulumi-python:dynamic:Resource"
    assert set(run.inputs["inventory"]["all"]["hosts"]) == {
        "master1",
        "master2",
        "master3",
        "dgx01",
        "dgx02",
        "dgx03",
        "dgx04",
        "dgx05",
        "dgx06",
    }
    assert run.inputs["fingerprint"] == files_fingerprint(ANSIBLE_DIR, TEMPLATES_DIR)
    assert run.inputs["playbook"].endswith("ansible/site.yml")
    assert registered["dgx"].type == "gpucluster:onprem:Convergence"


def test_fingerprint_follows_every_file(tmp_path):
    roles = tmp_path / "ansible"
    (roles / "roles" / "x").mkdir(parents=True)
    (roles / "roles" / "x" / "main.yml").write_text("a: 1\n")
    before = files_fingerprint(roles)
    assert files_fingerprint(roles) == before
    (roles / "roles" / "x" / "main.yml").write_text("a: 2\n")
    changed = files_fingerprint(roles)
    assert changed != before
    (roles / "roles" / "x" / "new.yml").write_text("")
    assert files_fingerprint(roles) != changed


def test_only_converge_inputs_trigger_a_run():
    provider = AnsibleProvider()
    olds = {"inventory": {"all": {}}, "fingerprint": "a", "check": False, "playbook": "/laptop/ansible/site.yml"}
    moved = {**olds, "playbook": "/ci/checkout/ansible/site.yml"}
    assert provider.diff("id", olds, moved).changes is False
    assert provider.diff("id", olds, {**olds, "fingerprint": "b"}).changes is True
    assert provider.diff("id", olds, {**olds, "inventory": {"all": {"hosts": {"n": {}}}}}).changes is True


@pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-core is not installed (onprem extra)")
def test_provider_runs_the_playbook_and_a_failed_host_fails_the_update(tmp_path):
    playbook = tmp_path / "site.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - name: Test play
              hosts: all
              gather_facts: false
              tasks:
                - name: Fail where asked
                  ansible.builtin.fail:
                    msg: no
                  when: inventory_hostname == 'bad'
            """
        )
    )
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    props = {
        "cluster": "lab",
        "inventory": {"all": {"hosts": {"good": dict(local)}}},
        "fingerprint": "f",
        "playbook": str(playbook),
        "check": False,
    }
    created = AnsibleProvider().create(props)
    assert created.id == "lab-converged" and created.outs["recap"]["good"]["failures"] == 0
    props["inventory"]["all"]["hosts"]["bad"] = dict(local)
    with pytest.raises(RuntimeError, match=r"failed .* on bad"):
        AnsibleProvider().update("lab-converged", created.outs, props)
