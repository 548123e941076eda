"""The ``gpucluster`` command line: thin commands that call library functions and print with rich.

Exit codes: 0 ok, 1 validation failures found, 2 bad input or usage (or standard output cannot be
written, e.g. a full disk). When the reader of standard output has gone (``gpucluster validate | head -1``)
the program ends quietly as Unix tools do, killed by SIGPIPE (status 141 in the shell). Heavy modules (the
spec models, renderers, validators) are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Column, Table
from typer.core import TyperGroup

# Write errors without a file name that a command can only have met on standard output.
_OUTPUT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


class _Commands(TyperGroup):
    """Runs a command and flushes its output, so that a closed pipe or a full disk is handled here.

    (click itself turns a closed pipe into exit 1, which reads as "validation failed".)
    """

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        try:
            try:
                return super().invoke(ctx)
            finally:
                sys.stdout.flush()
        except BrokenPipeError:
            _end_by_sigpipe()
        except OSError as error:
            if error.filename is not None or error.errno not in _OUTPUT_ERRORS:
                raise
            _discard_stdout()
            err.print(f"error: cannot write to standard output: {error.strerror}", style="red", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush of what is left does not fail too."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _end_by_sigpipe() -> NoReturn:
    _discard_stdout()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    raise SystemExit(128 + signal.SIGPIPE)  # as the shell reports a process ended by SIGPIPE


app = typer.Typer(
    cls=_Commands,
    name="gpucluster",
    help="GPU clusters from one typed spec per environment: render and validate what a stack needs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: typer's rich help formatter costs ~150 ms of imports
)


class _Output(Console):
    def on_broken_pipe(self) -> None:  # rich's own handling exits 1
        _end_by_sigpipe()


out = _Output()
err = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

StackOption = Annotated[
    str, typer.Option("--stack", "-s", help="Stack name (stacks/Pulumi.NAME.yaml) or path to a stack file.")
]
StacksDirOption = Annotated[
    Path | None, typer.Option("--stacks-dir", help="Where stack names are looked up (default: ./stacks).")
]


def _load(stack: str, stacks_dir: Path | None):
    """Load a stack or exit 2 with every problem listed."""
    from gpucluster.stackfile import SpecError, format_path, load_stack

    try:
        loaded = load_stack(stack, stacks_dir)
    except SpecError as error:
        err.print("error:", style="bold red", end=" ")
        err.print(error.describe(), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    for warning in loaded.warnings:
        message = f"warning: {loaded.path}: {format_path(warning.path)}: {warning.message}"
        err.print(message, style="yellow", highlight=False, markup=False, soft_wrap=True)
    return loaded


@app.command()
def stacks(stacks_dir: StacksDirOption = None) -> None:
    """List the stacks: platform, distribution, pools and GPUs."""
    from gpucluster.plan import make_plan
    from gpucluster.stackfile import SpecError, default_stacks_dir, list_stacks, load_stack, stack_name

    directory = stacks_dir or default_stacks_dir()
    if not directory.is_dir():
        problem = "not a directory" if directory.exists() else "no such directory"
        err.print(f"error: stacks directory {directory}: {problem}", style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    table = Table("platform", "distribution", "pools", "GPUs (max)", "$/h (max, on-demand)", "status")
    table.add_column("stack", no_wrap=True)
    table.columns.insert(0, table.columns.pop())
    invalid = False
    for path in list_stacks(directory):
        try:
            loaded = load_stack(str(path))
        except SpecError as error:
            invalid = True
            table.add_row(stack_name(path), "", "", "", "", "", f"[red]invalid ({len(error.problems)} problems)[/]")
            continue
        spec, plan = loaded.spec, make_plan(loaded.spec)
        pools = "\n".join(f"{p.name} ({'+'.join(p.gpu_models)})" for p in plan.pools)
        gpus = sum(p.max_gpus for p in plan.pools)
        costs = [p.max_on_demand_usd_per_hour for p in plan.pools if p.max_on_demand_usd_per_hour is not None]
        if plan.system_pool is not None:
            costs.append(plan.system_pool.max_on_demand_usd_per_hour)
        cost = f"{sum(costs):,.2f}" if costs else "-"
        distribution = f"{spec.kubernetes.distribution} {spec.kubernetes.version}"
        table.add_row(loaded.name, spec.platform, distribution, pools, str(gpus), cost, "ok")
    out.print(table)
    if invalid:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def render(
    stack: StackOption,
    out_dir: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="Output directory (default: build/STACK): absent, empty or a previous output of render.",
        ),
    ] = None,
    stacks_dir: StacksDirOption = None,
) -> None:
    """Render a stack to manifests and Helm releases.

    The output directory is replaced atomically; re-rendering is byte-identical. A directory holding
    files render did not write is refused and left as it is.
    """
    if out_dir == "":
        err.print("error: --out is empty; give a directory", style="red", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    loaded = _load(stack, stacks_dir)
    target = Path(out_dir) if out_dir is not None else Path("build") / loaded.name
    files = _render_files(loaded.spec)
    _write(files, target)
    table = Table("file", "bytes", title=f"{loaded.name} -> {target}")
    for path, content in files.items():
        table.add_row(path, str(len(content)))
    out.print(table)


@app.command()
def validate(
    stack: StackOption,
    crds: Annotated[Path | None, typer.Option("--crds", help="Directory of upstream CRD YAML files.")] = None,
    chart_values: Annotated[
        Path | None,
        typer.Option("--chart-values", help="Directory of upstream charts' values files (<chart>.values.yaml)."),
    ] = None,
    stacks_dir: StacksDirOption = None,
) -> None:
    """Check everything a stack renders.

    Renders to a temporary directory, then checks every object with the Kubernetes schema (strict),
    custom resources with the CRDs in --crds, and Helm values with the charts' values in --chart-values.
    Exit 0 when clean, 1 when a check fails, 2 on a bad spec.
    """
    for option, directory in (("--crds", crds), ("--chart-values", chart_values)):
        if directory is not None and not directory.is_dir():
            err.print(f"error: {option} {directory}: not a directory", style="red", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT)
    loaded = _load(stack, stacks_dir)
    from gpucluster.validate import ReferenceDataError, validate_output

    with tempfile.TemporaryDirectory(prefix="gpucluster-validate-") as scratch:
        rendered = Path(scratch) / "output"
        _write(_render_files(loaded.spec), rendered)
        try:
            report = validate_output(rendered, loaded.spec.kubernetes.version, crds, chart_values)
        except ReferenceDataError as error:
            for problem in error.problems:
                err.print(f"error: {problem}", style="red", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except ValueError as error:  # a Kubernetes version kubernetes-validate has no schemas for
            err.print(f"error: {error}", style="red", highlight=False, markup=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
    styles = {"ok": "green", "fail": "bold red", "unchecked": "yellow"}
    with_detail = any(check.detail for check in report.checks)
    table = Table("file", "check", "status", title=f"validate {loaded.name}")
    table.columns.insert(1, Column("object", overflow="fold"))
    if with_detail:
        table.add_column("detail", overflow="fold", ratio=1)
    for check in report.checks:
        row = [check.file, check.subject, check.check, f"[{styles[check.status]}]{check.status}[/]"]
        table.add_row(*row, *([check.detail] if with_detail else []))
    out.print(table)
    failed = sum(c.status == "fail" for c in report.checks)
    summary = f"{len(report.checks)} checks: {failed} failed, {len(report.unchecked)} unchecked"
    out.print(summary, style="bold red" if failed else ("yellow" if report.unchecked else "green"))
    if report.failed:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def inventory(
    stack: StackOption,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Directory for inventory.yml (default: build/STACK/ansible).")
    ] = None,
    stacks_dir: StacksDirOption = None,
) -> None:
    """Write the Ansible inventory of an on-prem or hybrid stack.

    Groups control_plane, workers, gpu_nodes and one pool_<name> per pool; use it with
    ansible-playbook -i DIR/inventory.yml ansible/site.yml.
    """
    loaded = _load(stack, stacks_dir)
    if loaded.spec.platform == "aws":
        err.print(f"error: {loaded.path}: platform 'aws' has no Ansible inventory (EKS nodes)", style="red")
        raise typer.Exit(EXIT_BAD_INPUT)
    from gpucluster.onprem.inventory import HEADER, INVENTORY_FILE
    from gpucluster.output import write_file

    target = (out_dir or Path("build") / loaded.name / "ansible") / INVENTORY_FILE
    try:
        write_file(target, _render_files(loaded.spec)[f"ansible/{INVENTORY_FILE}"], ours=HEADER.encode())
    except (OSError, FileExistsError) as error:
        err.print(f"error: cannot write {target}: {error}", style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    out.print(f"{loaded.name} -> {target}", highlight=False)


@app.command()
def schema(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the field reference (docs/spec.md) instead.")
    ] = False,
) -> None:
    """Print the stack file JSON Schema.

    Point your editor's YAML schema setting at it to complete and check stack files.
    """
    from gpucluster.docs import spec_json_schema, spec_markdown

    sys.stdout.write(spec_markdown() if markdown else spec_json_schema())


@app.command()
def guardian(
    mode: Annotated[
        str, typer.Option("--mode", help="kubernetes: evict pods, cordon the node; host: SIGTERM.")
    ] = "host",
    limit: Annotated[int, typer.Option("--limit", min=40, max=100, help="Act above this temperature (°C).")] = 75,
    interval: Annotated[int, typer.Option("--interval", min=1, help="Seconds between reads.")] = 30,
    node: Annotated[str | None, typer.Option("--node", envvar="NODE_NAME", help="This node (kubernetes mode).")] = None,
    metrics_address: Annotated[str, typer.Option("--metrics-address", help="Where /metrics listens.")] = "127.0.0.1",
    metrics_port: Annotated[int, typer.Option("--metrics-port", min=0, max=65535, help="0: no metrics.")] = 9824,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit (0: all cool, 1: acted).")] = False,
) -> None:
    """Thermal guardian: stop the work on any GPU hotter than --limit (seed 001). Runs until stopped."""
    import logging
    import signal

    from gpucluster.guardian import Guardian, KubernetesActions, NvmlReader, NvmlUnavailable

    if mode not in ("kubernetes", "host"):
        err.print(f"error: --mode must be 'kubernetes' or 'host', not {mode!r}", style="red")
        raise typer.Exit(EXIT_BAD_INPUT)
    if mode == "kubernetes" and not node:
        err.print("error: kubernetes mode needs --node (or NODE_NAME from the downward API)", style="red")
        raise typer.Exit(EXIT_BAD_INPUT)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        reader = NvmlReader()
    except NvmlUnavailable as error:
        err.print(f"error: {error}", style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    actions = KubernetesActions(node) if mode == "kubernetes" and node else None
    watcher = Guardian(reader, limit=limit, kubernetes=actions)
    if once:
        raise typer.Exit(EXIT_FAILED if watcher.check() else EXIT_OK)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_address, registry=watcher.metrics.registry)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, frame: stopping.append(number))
    watcher.run(interval, stop=lambda: bool(stopping))


backup_app = typer.Typer(
    help="What the stack's backups produce and how to restore from them.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(backup_app, name="backup")


@backup_app.command("list")
def backup_list(
    stack: StackOption,
    runs: Annotated[int, typer.Option("--runs", min=1, max=20, help="Upcoming runs to show per schedule.")] = 3,
    stacks_dir: StacksDirOption = None,
) -> None:
    """List every backup schedule: when it runs next (UTC), what it keeps and where it writes."""
    from datetime import UTC, datetime

    from gpucluster.backups import schedules

    loaded = _load(stack, stacks_dir)
    jobs = schedules(loaded.spec)
    if not jobs:
        out.print(f"{loaded.name}: no backups configured (see the 'backups' section of the spec)")
        return
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    table = Table("backup", "schedule", f"next {runs} runs (UTC)", "kept", title=loaded.name)
    table.add_column("destination", overflow="fold")
    for job in jobs:
        upcoming = "\n".join(run.strftime("%Y-%m-%d %H:%M") for run in job.next_runs(runs, now))
        table.add_row(job.name, job.schedule, upcoming, job.retention, job.destination)
    out.print(table)


@backup_app.command("restore")
def backup_restore(stack: StackOption, stacks_dir: StacksDirOption = None) -> None:
    """Print the stack's restore procedure: ordered steps, where each runs, the exact commands."""
    from gpucluster.backups import restore_procedure

    loaded = _load(stack, stacks_dir)
    steps = restore_procedure(loaded.spec)
    if not steps:
        out.print(f"{loaded.name}: nothing to restore from (no backups configured)")
        return
    for number, step in enumerate(steps, 1):
        out.print(f"{number}. {step.title}", style="bold", highlight=False, markup=False)
        out.print(f"   on: {step.where}", highlight=False, markup=False)
        for command in step.commands:
            out.print(f"   $ {command}", highlight=False, markup=False, soft_wrap=True)


@app.command()
def preflight(
    stack: StackOption,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile (default: the usual chain).")] = None,
    stacks_dir: StacksDirOption = None,
) -> None:
    """Check the AWS account can build the stack: instance offerings per zone, vCPU quotas, spot placement
    scores, the EKS GPU AMI and the EKS version. Read-only. Exit 1 when a check fails."""
    loaded = _load(stack, stacks_dir)
    spec = loaded.spec
    if spec.aws is None:
        err.print(
            f"error: {loaded.name} runs on {spec.platform} machines; preflight checks an AWS account", style="red"
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from gpucluster.aws.preflight import preflight as run_preflight
    from gpucluster.plan import make_plan

    try:
        session = boto3.session.Session(profile_name=profile, region_name=spec.aws.region)
        findings = run_preflight(make_plan(spec), session)
    except NoCredentialsError:
        err.print("error: no AWS credentials: set AWS_PROFILE or pass --profile, or export AWS keys", style="red")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (BotoCoreError, ClientError) as error:
        err.print(f"error: AWS refused or could not be reached: {error}", style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    styles = {"pass": "green", "warn": "yellow", "fail": "bold red"}
    table = Table("check", "subject", "status", title=f"preflight {loaded.name} ({spec.aws.region})")
    table.add_column("detail", overflow="fold", ratio=1)
    for finding in findings:
        status = f"[{styles[finding.status]}]{finding.status}[/]"
        table.add_row(finding.check, finding.subject, status, finding.detail)
    out.print(table)
    counts = {status: sum(f.status == status for f in findings) for status in styles}
    out.print(f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed", highlight=False)
    if counts["fail"]:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def preview(
    stack: StackOption,
    spot_discount: Annotated[
        float | None,
        typer.Option("--spot-discount", help="Spot price as a discount off on-demand, 0..1 (default 0.6: 40 % of it)."),
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option("--prices", help="YAML/JSON file {instance_type: {on_demand: USD/h, spot: USD/h}}."),
    ] = None,
    stacks_dir: StacksDirOption = None,
) -> None:
    """Show every resource `pulumi up` would create, and the GPU pools' cost at min/desired/max.

    Runs the Pulumi program offline (mocks; no credentials, nothing created). Costs use the catalog's
    on-demand prices and an assumed spot discount, or the prices in --prices.
    """
    loaded = _load(stack, stacks_dir)
    from gpucluster.aws.cost import DEFAULT_SPOT_DISCOUNT, PriceFileError, load_prices, pool_costs

    discount = DEFAULT_SPOT_DISCOUNT if spot_discount is None else spot_discount
    if not 0 <= discount < 1:
        err.print(f"error: --spot-discount {discount}: give a fraction from 0 up to (not including) 1", style="red")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        price_table = load_prices(prices) if prices is not None else None
    except PriceFileError as error:
        err.print(f"error: {error}", style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    import yaml

    from gpucluster.catalog import catalog
    from gpucluster.plan import make_plan
    from gpucluster.preview import resource_tree
    from gpucluster.program.offline import evaluate
    from gpucluster.program.stack import run

    config = yaml.safe_load(loaded.path.read_text(encoding="utf-8"))["config"]
    resources = evaluate(loaded.name, config, run)
    custom = sum(r.custom for r in resources)
    out.print(
        resource_tree(f"[bold]{loaded.name}[/]: {custom} resources in {len(resources) - custom} components", resources)
    )
    costs = pool_costs(make_plan(loaded.spec), discount, price_table)
    if not costs:
        return
    table = Table("pool", "instance type", "capacity", title=f"{loaded.name}: GPU pool cost (USD)")
    for size in ("min", "desired", "max"):
        table.add_column(f"{size} /h", justify="right")
    for size in ("min", "desired", "max"):
        table.add_column(f"{size} /month", justify="right")
    for cost in costs:
        sizes = [cost.sizes[size] for size in ("min", "desired", "max")]
        hourly = [f"{s.hourly:,.2f} ({s.nodes})" for s in sizes]
        table.add_row(cost.pool, cost.instance_type, cost.capacity, *hourly, *(f"{s.monthly:,.0f}" for s in sizes))
    totals = [sum(c.sizes[size].hourly for c in costs) for size in ("min", "desired", "max")]
    table.add_row("total", "", "", *(f"{t:,.2f}" for t in totals), *(f"{t * 730:,.0f}" for t in totals), style="bold")
    out.print(table)
    source = f"price file {prices}" if prices else f"catalog on-demand prices (us-east-1, as of {catalog().as_of})"
    out.print(
        f"(nodes) per size; {source}; spot assumed at {1 - discount:.0%} of on-demand unless the price file gives"
        " it; a pool is priced at its first instance type; 730 hours a month; EC2 only (no EKS, NAT, EBS, traffic).",
        highlight=False,
        markup=False,
    )


@app.command()
def provision(
    stack: StackOption,
    check: Annotated[
        bool, typer.Option("--check", help="Dry run: report what would change (ansible --check --diff).")
    ] = False,
    limit: Annotated[str | None, typer.Option("--limit", help="Only these hosts or groups (Ansible pattern).")] = None,
    tags: Annotated[str | None, typer.Option("--tags", help="Only these layers, e.g. runtime,toolkit.")] = None,
    addresses: Annotated[
        Path | None, typer.Option("--addresses", help="YAML/JSON of machine name -> address (hybrid: Pulumi's output).")
    ] = None,
    stacks_dir: StacksDirOption = None,
) -> None:
    """Converge the stack's machines with ansible/site.yml through ansible-runner, showing live progress.

    Exit 0 when every host converged, 1 when a host failed or was unreachable, 2 on bad input.
    """
    loaded = _load(stack, stacks_dir)
    import yaml
    from rich.live import Live

    from gpucluster.onprem.provision import Progress, ProvisionError
    from gpucluster.onprem.provision import provision as run_provision
    from gpucluster.plan import make_plan

    machine_addresses = None
    if addresses is not None:
        try:
            machine_addresses = yaml.safe_load(addresses.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            err.print(f"error: --addresses {addresses}: {error}", style="red", highlight=False, markup=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        if not isinstance(machine_addresses, dict) or not all(isinstance(v, str) for v in machine_addresses.values()):
            err.print(f"error: --addresses {addresses}: expected a mapping of machine name to address", style="red")
            raise typer.Exit(EXIT_BAD_INPUT)
    progress = Progress()
    try:
        with Live(_progress_table(progress), console=out, refresh_per_second=4, transient=True) as live:

            def on_event(event) -> None:
                progress.record(event)
                live.update(_progress_table(progress))

            result = run_provision(
                make_plan(loaded.spec),
                addresses=machine_addresses,
                check=check,
                limit=limit,
                tags=tags,
                on_event=on_event,
            )
    except ProvisionError as error:
        err.print(f"error: {error}", style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    recap = Table("host", "ok", "changed", "unreachable", "failed", "skipped", title=f"{loaded.name}: {result.status}")
    recap.add_column("last error", overflow="fold")
    for host, counts in result.recap.items():
        failed = counts["failures"] or counts["dark"]
        row = [str(counts[k]) for k in ("ok", "changed", "dark", "failures", "skipped")]
        recap.add_row(f"[red]{host}[/]" if failed else host, *row, progress.host(host).last_error if failed else "")
    out.print(recap)
    if not result.succeeded:
        raise typer.Exit(EXIT_FAILED)


def _progress_table(progress) -> Table:
    table = Table("host", "task", "ok", "changed", "failed", title="converging")
    for host, state in sorted(progress.hosts.items()):
        failed = state.failed + state.unreachable
        table.add_row(host, state.task, str(state.ok), str(state.changed), f"[red]{failed}[/]" if failed else "0")
    return table


def _render_files(spec) -> dict[str, bytes]:
    from gpucluster.render import render as render_bundle

    return render_bundle(spec).files()


def _write(files: dict[str, bytes], target: Path) -> None:
    from gpucluster.output import OutputDirError, write_tree

    try:
        write_tree(files, target)
    except OutputDirError as error:
        err.print(f"error: {error}", style="red", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except OSError as error:
        err.print(f"error: cannot write {target}: {error.strerror or error}", style="red", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as error:  # the last line of defence: no traceback reaches the user
        if os.environ.get("GPUCLUSTER_DEBUG"):
            raise
        err.print(f"internal error: {type(error).__name__}: {error} (set GPUCLUSTER_DEBUG=1 for details)", style="red")
        raise SystemExit(3) from None
