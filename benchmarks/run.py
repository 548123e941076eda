"""Print gpucluster's speed figures next to their targets.

- ``gpucluster --help`` time against the import floor of its CLI libraries (target: within 1.3x);
- render + validate time per reference stack (target: the largest under 3 s), and how much of validate
  the Prometheus tools take (``promtool check rules``, ``amtool check-config``);
- render time for 1 / 10 / 100 node pools (target: linear in pools), and the memory rendering 100 pools
  allocates at its peak (target: under 64 MiB);
- the Pulumi program of each AWS stack evaluated under mocks, in a fresh process (imports included; target:
  eks-h100 under 5 s), and that process's peak resident memory.
- Ansible on a Debian 12 test host (root, debootstrap): first converge, idempotent re-run, and a bare
  gather_facts play on the same host (target: re-run within 1.5x of the bare play).

Run with ``scripts/dev.sh bench`` (or ``.venv/bin/python benchmarks/run.py``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from testhost import AptCache, build_base, chroot_host, converge, missing_requirement, new_host, recap  # noqa: E402

from gpucluster.output import write_tree  # noqa: E402
from gpucluster.promcheck import check_alertmanager_config, check_rule_groups  # noqa: E402
from gpucluster.render import render  # noqa: E402
from gpucluster.render.monitoring import alertmanager_config, stack_values  # noqa: E402
from gpucluster.spec import ClusterSpec  # noqa: E402
from gpucluster.stackfile import list_stacks, load_stack  # noqa: E402
from gpucluster.validate import validate_output  # noqa: E402


def median_seconds(command: list[str], runs: int = 7) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def cli_startup() -> None:
    python = sys.executable
    floor = median_seconds([python, "-c", "import typer, rich.console, pydantic, yaml"])
    help_time = median_seconds([python, "-m", "gpucluster", "--help"])
    ratio = help_time / floor
    verdict = "ok" if ratio <= 1.3 else "OVER TARGET"
    figures = f"import floor {floor * 1000:7.1f} ms   --help {help_time * 1000:7.1f} ms   ratio {ratio:.2f}"
    print(f"cli  {figures} (target <= 1.30) {verdict}")


def stacks() -> None:
    crds = REFERENCE / "crds" if REFERENCE.is_dir() else None
    charts = REFERENCE / "charts" if REFERENCE.is_dir() else None
    for path in list_stacks(ROOT / "stacks"):
        stack = load_stack(str(path))
        with tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter()
            write_tree(render(stack.spec).files(), Path(scratch) / "out")
            report = validate_output(Path(scratch) / "out", stack.spec.kubernetes.version, crds, charts)
            elapsed = time.perf_counter() - start
        verdict = "ok" if elapsed < 3 else "OVER TARGET"
        print(
            f"stack {stack.name:16} render+validate {elapsed * 1000:8.1f} ms  ({len(report.checks)} checks) {verdict}"
        )


def prometheus_tools(stack_name: str = "onprem-dgx", runs: int = 5) -> None:
    """The share of ``validate`` spent in promtool and amtool (each a subprocess on a temporary file)."""
    spec = load_stack(str(ROOT / "stacks" / f"Pulumi.{stack_name}.yaml")).spec
    groups = stack_values(spec)["additionalPrometheusRulesMap"]["gpu-alerts"]["groups"]
    config = alertmanager_config(spec)
    for tool, check in (
        ("promtool", lambda: check_rule_groups(groups)),
        ("amtool", lambda: check_alertmanager_config(config)),
    ):
        timings, status = [], ""
        for _ in range(runs):
            start = time.perf_counter()
            status = check().status
            timings.append(time.perf_counter() - start)
        print(f"validate {stack_name}: {tool:8} {statistics.median(timings) * 1000:7.1f} ms ({status})")


def spec_with_pools(count: int) -> ClusterSpec:
    raw = load_stack(str(ROOT / "stacks" / "Pulumi.eks-t4.yaml")).spec.model_dump(mode="json")
    template = raw["node_pools"][0]
    raw["node_pools"] = [{**template, "name": f"pool-{index}"} for index in range(count)]
    return ClusterSpec.model_validate(raw)


def pool_scaling() -> None:
    render(spec_with_pools(1))  # warm caches
    per_pool = {}
    for count in (1, 10, 100):
        spec = spec_with_pools(count)
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            render(spec).files()
            runs.append(time.perf_counter() - start)
        per_pool[count] = statistics.median(runs)
        print(
            f"pools {count:4}  render {per_pool[count] * 1000:8.2f} ms  ({per_pool[count] / count * 1000:.3f} ms/pool)"
        )
    growth = per_pool[100] / per_pool[10]
    print(f"pools 10 -> 100: time x{growth:.1f} for 10x pools (linear: about x10 or less)")
    spec = spec_with_pools(100)
    tracemalloc.start()
    render(spec).files()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(f"pools  100  render peak allocation {peak:.1f} MiB (target < 64 MiB) {'ok' if peak < 64 else 'OVER TARGET'}")


def timed(run) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def ansible_converge() -> None:
    reason = missing_requirement()
    if reason:
        print(f"ansible  skipped: {reason}")
        return
    base = build_base()
    with tempfile.TemporaryDirectory(prefix="gpucluster-bench-") as scratch:
        root = new_host(base, Path(scratch) / "root")
        inventory = yaml.safe_load(
            render(load_stack("onprem-kubeadm", ROOT / "stacks").spec).files()["ansible/inventory.yml"]
        )
        inventory["all"]["hosts"]["jw2"].update(chroot_host(root), kubeadm_install_packages=False)
        path = Path(scratch) / "inventory.yml"
        path.write_text(yaml.safe_dump(inventory))
        facts = Path(scratch) / "facts.yml"
        facts.write_text(yaml.safe_dump([{"name": "Facts only", "hosts": "all", "gather_facts": True, "tasks": []}]))
        layers = ("--tags", "node_prep,runtime,kubernetes")
        with AptCache(root):
            first, _ = timed(lambda: converge(path, *layers))
            again, rerun = timed(lambda: converge(path, *layers))
        bare, _ = timed(lambda: converge(path, playbook=facts))
    ratio = again / bare
    verdict = "ok" if ratio <= 1.5 else "OVER TARGET"
    print(f"ansible  converge {first:6.1f} s   re-run {again:6.1f} s (changed={recap(rerun)['changed']})")
    print(f"ansible  bare gather_facts play {bare:6.1f} s   re-run ratio {ratio:.2f} (target <= 1.50) {verdict}")


# Run in a fresh interpreter: the figure includes importing pulumi, pulumi_aws and pulumi_kubernetes.
AWS_PROGRAM = """
import json, resource, sys, time, yaml
start = time.perf_counter()
from gpucluster.program.offline import evaluate
from gpucluster.program.stack import run
config = yaml.safe_load(open(sys.argv[1]))["config"]
registered = evaluate("bench", config, run)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "resources": len(registered),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def aws_programs() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # cache bytecode
    for path in list_stacks(ROOT / "stacks"):
        if load_stack(str(path)).spec.platform != "aws":
            continue
        command = [sys.executable, "-c", AWS_PROGRAM, str(path)]
        subprocess.run(command, check=True, capture_output=True, env=environment, cwd=ROOT)  # warm the caches
        runs = [
            json.loads(subprocess.run(command, check=True, capture_output=True, env=environment, cwd=ROOT).stdout)
            for _ in range(3)
        ]
        seconds = statistics.median(run["seconds"] for run in runs)
        peak = max(run["peak_mib"] for run in runs)
        verdict = "ok" if seconds < 5 else "OVER TARGET"
        print(
            f"pulumi {path.name:24} mock evaluation {seconds:6.2f} s ({runs[0]['resources']} resources, "
            f"peak RSS {peak:.0f} MiB) (target < 5 s) {verdict}"
        )


if __name__ == "__main__":
    cli_startup()
    stacks()
    prometheus_tools()
    pool_scaling()
    ansible_converge()
    aws_programs()
