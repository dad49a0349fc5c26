"""The `reconciler` command: parse flags, call reconciler.operations, render, exit.

Exit codes (Terraform's convention): 0 success / nothing to do; 1 error of any
kind, usage errors included; 2 success with changes present (plan with
--detailed-exitcode); 3 apply failed and rollback could not restore everything.
:func:`main` is the one place that turns exceptions into output and exit codes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from reconciler import __version__, operations
from reconciler.applier import ApplyReport, Event
from reconciler.errors import ApplyError, ReconcilerError, RollbackIncomplete, UsageError
from reconciler.graph import Graph
from reconciler.plan import Plan, read_plan, write_plan
from reconciler.providers.base import Provider
from reconciler.render import plan_json, plan_markdown, plan_text
from reconciler.stack.spec import Stack

var_option = click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a variable.")
var_file_option = click.option(
    "--var-file",
    "var_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="YAML/JSON file of variables.",
)
lock_timeout_option = click.option(
    "--lock-timeout",
    default="0s",
    show_default=True,
    help="How long to wait for the state lock (e.g. 30s, 2m).",
)


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            break
    else:
        suffix, number = "s", text
    try:
        return float(number) * units[suffix]
    except ValueError:
        raise UsageError(f"--lock-timeout {text!r}: expected a duration like 30s, 2m or 500ms") from None


def _load(
    path: str, variables: Sequence[str], var_files: Sequence[str]
) -> tuple[operations.StackInput, Stack]:
    inputs = operations.input_of(path, variables, var_files)
    return inputs, inputs.load()


def _progress(event: Event) -> None:
    verb = {
        "create": "Creating",
        "update": "Updating",
        "delete": "Destroying",
        "delete-deposed": "Destroying deposed",
    }
    name = verb.get(event.op, event.op.capitalize())
    if event.phase == "start":
        click.echo(f"{event.address}: {name}...")
    elif event.phase == "still":
        click.echo(f"{event.address}: Still {name.lower()}... [{event.elapsed:.0f}s elapsed]")
    elif event.phase == "done":
        click.echo(f"{event.address}: {name} complete after {event.elapsed:.1f}s")
    elif event.phase == "failed":
        click.echo(f"{event.address}: {name} FAILED after {event.elapsed:.1f}s", err=True)
    elif event.phase == "skipped":
        click.echo(f"{event.address}: skipped (a step it depends on failed)")


def _render(plan: Plan, fmt: str, providers: dict[str, Provider]) -> str:
    secrets = operations.secrets_of(providers)
    if fmt == "json":
        return plan_json(plan, secrets)
    if fmt == "markdown":
        return plan_markdown(plan, secrets)
    return plan_text(plan, secrets)


def _steps(report: ApplyReport) -> list[str]:
    return [f"{e.op} {e.address}" for e in report.done]


def _report(outcome: operations.ApplyOutcome) -> None:
    report = outcome.report
    if report.ok:
        n = {"create": 0, "update": 0, "delete": 0}
        for e in report.done:
            key = "delete" if e.op.startswith("delete") or e.op == "forget" else e.op
            n[key] = n.get(key, 0) + 1
        click.echo(
            f"Apply complete! Resources: {n['create']} created, {n['update']} updated, "
            f"{n['delete']} destroyed."
        )
        return
    lines = ["Apply failed:"]
    for step, err in report.failed:
        lines.append(f"  {step.op} {step.change.address}: {err}")
    for step in report.skipped:
        lines.append(f"  not started: {step.op} {step.change.address}")
    if outcome.rollback is None and outcome.rollback_error is None:
        if report.done:
            lines.append(f"  kept (no rollback): {', '.join(_steps(report))}")
        raise ApplyError("\n".join(lines))
    lines.append(f"  finished before the failure: {', '.join(_steps(report)) or 'none'}")
    if outcome.restored:
        assert outcome.rollback is not None
        lines.append(f"Rolled back: {', '.join(_steps(outcome.rollback)) or 'nothing to undo'}.")
        lines.append("The platforms are as they were before this apply.")
        raise ApplyError("\n".join(lines))
    lines.append("Rollback could not restore everything:")
    if outcome.rollback_error is not None:
        lines.append(f"  {outcome.rollback_error}")
    if outcome.rollback is not None:
        for step, err in outcome.rollback.failed:
            lines.append(f"  undo {step.op} {step.change.address}: {err}")
        if outcome.rollback.done:
            lines.append(f"  undone: {', '.join(_steps(outcome.rollback))}")
    lines.append("The state records exactly what is live; run `reconciler plan` to see what differs.")
    raise RollbackIncomplete("\n".join(lines))


def _approve(plan: Plan, auto_approve: bool, what: str) -> None:
    if auto_approve:
        return
    click.echo(f"Do you want to {what}? Only 'yes' will be accepted.")
    click.echo("  Enter a value: ", nl=False)
    line = sys.stdin.readline()
    if not line:
        raise UsageError(
            f"no input to confirm; refusing to {what}. Use --auto-approve to {what} without a prompt"
        )
    if line.strip() != "yes":
        raise UsageError(f"{what.capitalize()} cancelled: the answer was not 'yes'; nothing was changed")


class ReconcilerGroup(click.Group):
    """The root command: the one place exceptions become messages and exit codes."""

    def main(self, args: Sequence[str] | None = None, *a: Any, **kw: Any) -> Any:
        kw["standalone_mode"] = False
        try:
            rv = super().main(list(args) if args is not None else None, *a, **kw)
            code = rv if isinstance(rv, int) else 0
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            code = 1
        except click.ClickException as exc:
            exc.show()
            code = 1
        except ReconcilerError as exc:
            click.echo(f"Error: {exc.render()}", err=True)
            code = exc.exit_code
        sys.exit(code)


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative reconciler for model-serving platforms (DataArts Fabric, Model Studio, ZStack)."""


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@var_option
@var_file_option
def validate(stack: str, variables: tuple[str, ...], var_files: tuple[str, ...]) -> int:
    """Check a stack file without calling any API. Exit 0 when valid, 1 with every error."""
    _, loaded = _load(stack, variables, var_files)
    click.echo(f"{stack}: valid ({len(loaded.resources)} resources).")
    return 0


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for `reconciler apply FILE`.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none.")
@click.option("--destroy", is_flag=True, help="Plan to destroy everything the state records.")
@var_option
@var_file_option
@lock_timeout_option
def plan(
    stack: str,
    out: str | None,
    fmt: str,
    detailed_exitcode: bool,
    destroy: bool,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Refresh and show what apply would change."""
    inputs, loaded = _load(stack, variables, var_files)
    backend = operations.backend_for(loaded)

    async def body(providers: dict[str, Provider]) -> tuple[Plan, str]:
        with backend.lock("reconciler plan", _seconds(lock_timeout)):
            result, _, messages = await operations.plan_async(
                loaded, backend, providers, destroy=destroy, inputs=inputs
            )
        for m in messages:
            click.echo(m, err=True)
        return result, _render(result, fmt, providers)

    result, text = operations.run(lambda: operations.with_providers(loaded, body))
    click.echo(text, nl=False)
    if out:
        write_plan(result, Path(out))
        click.echo(f"Saved the plan to {out}. Apply it with: reconciler apply {out}", err=fmt != "text")
    return 2 if detailed_exitcode and result.has_changes else 0


def _is_plan_file(path: str) -> bool:
    if path.endswith((".yaml", ".yml")):
        return False
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(1).strip() == "{"
    except (OSError, UnicodeDecodeError):
        return False


def _apply(
    target: str,
    *,
    auto_approve: bool,
    parallelism: int,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
    destroy: bool,
    rollback: bool = True,
) -> int:
    saved = read_plan(Path(target)) if _is_plan_file(target) else None
    if saved is not None:
        if variables or var_files:
            raise UsageError(
                "a saved plan carries its variables; --var/--var-file cannot be given with a plan file"
            )
        inputs, loaded = _load(
            saved.stack_file, [f"{k}={v}" for k, v in saved.variables.items()], saved.var_files
        )
    else:
        inputs, loaded = _load(target, variables, var_files)
    backend = operations.backend_for(loaded)
    what = "destroy these resources" if destroy else "perform these actions"
    if parallelism < 1:
        raise UsageError("--parallelism must be at least 1")

    async def body(providers: dict[str, Provider]) -> operations.ApplyOutcome | None:
        with backend.lock("reconciler destroy" if destroy else "reconciler apply", _seconds(lock_timeout)):
            if saved is None:
                the_plan, _, messages = await operations.plan_async(
                    loaded, backend, providers, destroy=destroy, inputs=inputs
                )
                for m in messages:
                    click.echo(m, err=True)
                click.echo(plan_text(the_plan, operations.secrets_of(providers)), nl=False)
                if not the_plan.has_changes:
                    return None
                _approve(the_plan, auto_approve, what)
            else:
                the_plan = saved
                click.echo(plan_text(the_plan, operations.secrets_of(providers)), nl=False)
            return await operations.apply_async(
                the_plan,
                loaded,
                backend,
                providers,
                parallelism=parallelism,
                progress=_progress,
                rollback=rollback,
            )

    outcome: operations.ApplyOutcome | None = operations.run(lambda: operations.with_providers(loaded, body))
    if outcome is not None:
        _report(outcome)
    if outcome is not None or saved is not None:
        _print_outputs(loaded)
    return 0


def _print_outputs(stack: Stack) -> None:
    state = operations.read_state(stack)
    if state and state.outputs:
        click.echo("\nOutputs:\n")
        for k, v in state.outputs.items():
            click.echo(f"{k} = {json.dumps(v)}")


@cli.command()
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--auto-approve", is_flag=True, help="Apply without asking for 'yes'.")
@click.option("--parallelism", default=10, show_default=True, help="Steps in flight at once.")
@click.option("--no-rollback", is_flag=True, help="On failure, keep what succeeded instead of undoing it.")
@var_option
@var_file_option
@lock_timeout_option
def apply(
    target: str,
    auto_approve: bool,
    parallelism: int,
    no_rollback: bool,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Apply a stack (plans first and asks) or a saved plan file (refused when stale)."""
    return _apply(
        target,
        auto_approve=auto_approve,
        parallelism=parallelism,
        variables=variables,
        var_files=var_files,
        lock_timeout=lock_timeout,
        destroy=False,
        rollback=not no_rollback,
    )


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for 'yes'.")
@click.option("--parallelism", default=10, show_default=True)
@var_option
@var_file_option
@lock_timeout_option
def destroy(
    stack: str,
    auto_approve: bool,
    parallelism: int,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Delete every resource the stack's state records."""
    return _apply(
        stack,
        auto_approve=auto_approve,
        parallelism=parallelism,
        variables=variables,
        var_files=var_files,
        lock_timeout=lock_timeout,
        destroy=True,
    )


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, output name -> value.")
@var_option
@var_file_option
def output(
    stack: str, name: str | None, as_json: bool, variables: tuple[str, ...], var_files: tuple[str, ...]
) -> int:
    """Show the stack's outputs as recorded by the last apply."""
    _, loaded = _load(stack, variables, var_files)
    state = operations.read_state(loaded)
    outputs: dict[str, Any] = dict(state.outputs) if state else {}
    if name is not None:
        if name not in outputs:
            known = ", ".join(sorted(outputs)) or "none recorded; run apply first"
            raise UsageError(f"no output named '{name}' (outputs: {known})")
        value = outputs[name]
        click.echo(json.dumps(value) if as_json or not isinstance(value, str) else value)
        return 0
    if as_json:
        click.echo(json.dumps(outputs, indent=2, sort_keys=True))
    else:
        for k in sorted(outputs):
            click.echo(f"{k} = {json.dumps(outputs[k])}")
    return 0


@cli.group()
def state() -> None:
    """Inspect the recorded state."""


@state.command("list")
@click.argument("stack", type=click.Path(dir_okay=False))
@var_option
@var_file_option
def state_list(stack: str, variables: tuple[str, ...], var_files: tuple[str, ...]) -> int:
    """Every recorded address, one a line."""
    _, loaded = _load(stack, variables, var_files)
    doc = operations.read_state(loaded)
    for address in sorted(doc.resources) if doc else []:
        click.echo(address)
    return 0


@state.command("show")
@click.argument("stack", type=click.Path(dir_okay=False))
@click.argument("address", required=False)
@var_option
@var_file_option
def state_show(
    stack: str, address: str | None, variables: tuple[str, ...], var_files: tuple[str, ...]
) -> int:
    """The recorded attributes of one address, or the whole state."""
    _, loaded = _load(stack, variables, var_files)
    doc = operations.read_state(loaded)
    if doc is None:
        raise UsageError(f"no state for stack '{loaded.name}' yet; run apply first")
    if address is None:
        click.echo(doc.to_json())
        return 0
    if address not in doc.resources:
        raise UsageError(
            f"no resource '{address}' in state (recorded: {', '.join(sorted(doc.resources)) or 'none'})"
        )
    click.echo(json.dumps(doc.resources[address].model_dump(mode="json"), indent=2, sort_keys=True))
    return 0


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid"]), default="dot", show_default=True)
@var_option
@var_file_option
def graph(stack: str, fmt: str, variables: tuple[str, ...], var_files: tuple[str, ...]) -> int:
    """The dependency graph of the stack's resources."""
    _, loaded = _load(stack, variables, var_files)
    g = Graph.build({a: r.depends_on for a, r in loaded.resources.items()})
    click.echo(g.to_dot() if fmt == "dot" else g.to_mermaid(), nl=False)
    return 0


@cli.command("force-unlock")
@click.argument("stack", type=click.Path(dir_okay=False))
@var_option
@var_file_option
def force_unlock(stack: str, variables: tuple[str, ...], var_files: tuple[str, ...]) -> int:
    """Remove a state lock left by a run that died. Check nobody is running first."""
    _, loaded = _load(stack, variables, var_files)
    holder = operations.backend_for(loaded).force_unlock()
    click.echo(f"Removed the lock ({holder.describe()})." if holder else "The state was not locked.")
    return 0


@cli.group()
def emulator() -> None:
    """The built-in platform emulators."""


@emulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--data", type=click.Path(dir_okay=False), help="Persist the emulated cloud to this JSON file.")
@click.option(
    "--provision-seconds", default=1.0, show_default=True, type=float, help="Asynchronous lifecycle delay."
)
@click.option(
    "--fabric-token", default="emulator-token", show_default=True, help="The X-Auth-Token Fabric accepts."
)
@click.option("--fabric-ak", help="An access key Fabric also accepts (SDK-HMAC-SHA256 signing).")
@click.option("--fabric-sk", help="The secret key that goes with --fabric-ak.")
@click.option(
    "--modelstudio-key", default="emulator-key", show_default=True, help="The API key Model Studio accepts."
)
@click.option("--zstack-account", default="admin", show_default=True, help="The ZStack account name.")
@click.option("--zstack-password", default="password", show_default=True, help="The ZStack account password.")
@click.option(
    "--fault-rate", default=0.0, show_default=True, type=float, help="Probability of a fault per request."
)
@click.option("--fault-kinds", default="", help="Comma-separated fault kinds to draw from (default: all).")
@click.option(
    "--latency-ms", default=0.0, show_default=True, type=float, help="Latency added to every request."
)
@click.option("--seed", type=int, help="Seed that makes the faults reproducible.")
@click.option(
    "--fail-provisioning",
    multiple=True,
    metavar="GLOB",
    help="Resources whose name matches end provisioning in the platform's failed status.",
)
def emulator_serve(
    host: str,
    port: int,
    data: str | None,
    provision_seconds: float,
    fabric_token: str,
    fabric_ak: str | None,
    fabric_sk: str | None,
    modelstudio_key: str,
    zstack_account: str,
    zstack_password: str,
    fault_rate: float,
    fault_kinds: str,
    latency_ms: float,
    seed: int | None,
    fail_provisioning: tuple[str, ...],
) -> int:
    """Serve every platform's emulated API (Fabric, Model Studio, ZStack) on one HTTP server."""
    from reconciler.emulators import EmulatorConfig
    from reconciler.emulators.app import serve
    from reconciler.emulators.faults import KINDS, FaultSettings

    if (fabric_ak is None) != (fabric_sk is None):
        raise UsageError("--fabric-ak and --fabric-sk go together")
    try:
        faults = FaultSettings(
            fault_rate=fault_rate,
            latency_ms=latency_ms,
            seed=seed,
            kinds=tuple(k.strip() for k in fault_kinds.split(",") if k.strip()) or KINDS,
            fail_provisioning=fail_provisioning,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = EmulatorConfig(
        fabric_token=fabric_token,
        provision_seconds=provision_seconds,
        data_file=Path(data) if data else None,
        fabric_ak=fabric_ak,
        fabric_sk=fabric_sk,
        modelstudio_api_key=modelstudio_key,
        zstack_account=zstack_account,
        zstack_password=zstack_password,
        faults=faults,
    )
    click.echo(f"reconciler emulator listening on http://{host}:{port}", err=True)
    serve(config, host, port)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `reconciler` console script."""
    cli.main(argv, prog_name="reconciler")
