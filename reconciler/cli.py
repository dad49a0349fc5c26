"""The `reconciler` command: parse flags, call reconciler.operations, render, exit.

Exit codes (Terraform's convention): 0 success / nothing to do; 1 error of any
kind, usage errors included; 2 success with changes present (plan with
--detailed-exitcode); 3 apply failed and rollback could not restore everything.
:func:`main` is the one place that turns exceptions into output and exit codes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import __version__, cost, operations, policy, timings
from reconciler.applier import ApplyReport, Event
from reconciler.assessment import Assessment
from reconciler.cli_options import lock_timeout_option, seconds, var_file_option, var_option
from reconciler.errors import (
    ApplyError,
    Interrupted,
    PolicyError,
    ReconcilerError,
    RollbackIncomplete,
    UsageError,
)
from reconciler.graph import Graph
from reconciler.interrupts import EXIT_CODES
from reconciler.plan import Plan, check_no_credentials, read_plan, write_plan
from reconciler.providers.base import Provider
from reconciler.redaction import (
    REDACTOR,
    RedactingFormatter,
    environment_secrets,
    sensitive_paths,
    stack_secrets,
)
from reconciler.render import (
    drift_json,
    drift_markdown,
    drift_text,
    json_stream,
    plan_json,
    plan_markdown,
    plan_text,
)
from reconciler.stack.spec import Stack

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ReviewFlags:
    """The policy, pricing and approval flags of plan, apply and destroy."""

    policy_files: tuple[str, ...] = ()
    pricing: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()

    def review(self, stack: Stack, saved: Assessment | None = None) -> operations.ReviewInput:
        """What to assess with: files recorded in a saved plan, then RECONCILER_PRICING, then flags.

        Every file is read now, so that a bad one is reported before any platform is called.
        """
        recorded_policy = saved.policy_files if saved else ()
        review = operations.ReviewInput(
            policy_files=tuple(dict.fromkeys([*recorded_policy, *self.policy_files])),
            pricing_files=cost.pricing_files(
                os.environ.get(cost.PRICING_ENV), self.pricing, saved.pricing_files if saved else ()
            ),
            approvals=policy.approvals_from(self.approvers, os.environ.get(policy.APPROVERS_ENV)),
        )
        review.check(stack)
        return review


def review_options(*, overrides: bool) -> Callable[[F], F]:
    """--policy, --pricing, --approve (and, for apply and destroy, --allow-policy-override)."""

    def decorate(f: F) -> F:
        options = [
            click.option(
                "--policy",
                "policy_files",
                multiple=True,
                type=click.Path(dir_okay=False),
                help="An organisation's policy file (the schema of a stack's `policy:` section). Repeatable.",
            ),
            click.option(
                "--pricing",
                multiple=True,
                type=click.Path(dir_okay=False),
                help=f"Prices merged over the shipped catalogue (also ${cost.PRICING_ENV}). Repeatable.",
            ),
            click.option(
                "--approve",
                "approvers",
                multiple=True,
                metavar="NAME",
                help=f"An approval for require_approval rules (also ${policy.APPROVERS_ENV}). Repeatable.",
            ),
        ]
        if overrides:
            options.append(
                click.option(
                    "--allow-policy-override",
                    "overrides",
                    multiple=True,
                    metavar="RULE",
                    help="Proceed although RULE fails (only rules with `override: true`). Repeatable.",
                )
            )
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


_seconds = seconds


def _load(
    path: str, variables: Sequence[str], var_files: Sequence[str]
) -> tuple[operations.StackInput, Stack]:
    inputs = operations.input_of(path, variables, var_files)
    with timings.measure("stack.load"):
        loaded = inputs.load()
    REDACTOR.add(stack_secrets(loaded.providers, loaded.backend))
    return inputs, loaded


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
    elif event.phase == "adopted":
        click.echo(f"{event.address}: adopted {event.detail}, created by an attempt whose answer was lost")
    elif event.phase == "skipped":
        click.echo(f"{event.address}: skipped (a step it depends on failed)")


def _secrets(
    plan: Plan, documented: Callable[[str, str], frozenset[str]]
) -> Callable[[str, str], frozenset[str]]:
    """Sensitive paths per (platform, kind): the documented ones and those holding a known secret."""
    found = sensitive_paths(plan, REDACTOR.values)

    def secrets(platform: str, kind: str) -> frozenset[str]:
        return documented(platform, kind) | found.get((platform, kind), frozenset())

    return secrets


def _render(
    plan: Plan, fmt: str, providers: dict[str, Provider] | Callable[[str, str], frozenset[str]]
) -> str:
    """The plan in ``fmt``: sensitive attributes hidden by path, then any known secret value scrubbed.

    Sensitive paths are those the platform documents (``KindSpec.secrets``; ``providers`` or a
    lookup of them) and those whose value holds a secret the run knows.
    """
    documented = providers if callable(providers) else operations.secrets_of(providers)
    secrets = _secrets(plan, documented)
    if fmt == "json":
        return REDACTOR.scrub(plan_json(plan, secrets))
    if fmt == "markdown":
        return REDACTOR.scrub(plan_markdown(plan, secrets))
    return REDACTOR.scrub(plan_text(plan, secrets))


class _Stream:
    """`--json`: JSON Lines on stdout (see reconciler.render.json_stream), every line scrubbed."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.counts: dict[str, int] = {}
        self.applying: json_stream.ApplyStream | None = None

    def emit(self, objects: Sequence[dict[str, Any]]) -> None:
        for obj in objects:
            click.echo(REDACTOR.scrub(json_stream.line(obj)))

    def warn(self, message: str) -> None:
        self.emit([json_stream.diagnostic(message)])

    def plan(
        self, plan: Plan, documented: Callable[[str, str], frozenset[str]], messages: Sequence[str]
    ) -> None:
        self.counts = dict(plan.counts())
        self.emit(json_stream.plan_stream(plan, self.command, _secrets(plan, documented), messages))

    def progress(self, plan: Plan) -> Callable[[Event], None]:
        self.applying = json_stream.ApplyStream(plan)
        applying = self.applying
        return lambda event: self.emit(applying.event(event))

    def result(self, exit_code: int, outputs: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.emit(
            [
                json_stream.result(
                    self.command,
                    ok=error is None,
                    exit_code=exit_code,
                    counts=self.counts,
                    outputs=json_stream.redact_outputs(outputs or {}, REDACTOR.values),
                    error=error,
                )
            ]
        )

    def run(self, command: Callable[[], int]) -> int:
        """``command()``, ending with a ``result`` line whether it succeeds or fails (then re-raised)."""
        try:
            return command()
        except ReconcilerError as exc:
            self.result(exc.exit_code, error=REDACTOR.scrub(exc.render()))
            raise
        except click.exceptions.Abort as exc:
            interrupted = isinstance(exc.__context__, KeyboardInterrupt)
            self.result(
                130 if interrupted else 1, error="Interrupted by SIGINT" if interrupted else "Aborted."
            )
            raise
        except click.ClickException as exc:
            self.result(exc.exit_code, error=REDACTOR.scrub(exc.format_message()))
            raise
        except Exception:
            self.result(1, error="reconciler failed unexpectedly (a bug); stderr has the traceback")
            raise


def _json_option(what: str) -> Callable[[F], F]:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help=f"Stream {what} as JSON Lines on stdout (one object a line; schemas/ui-stream.schema.json).",
    )


def _steps(report: ApplyReport) -> list[str]:
    return [f"{e.op} {e.address}" for e in report.done]


def _report(outcome: operations.ApplyOutcome) -> None:
    report = outcome.report
    if report.interrupted is not None:
        _report_interrupted(report)
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
        lines.append(
            f"  {step.op} {err}"
            if str(err).startswith(step.change.address)
            else f"  {step.op} {step.change.address}: {err}"
        )
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
            where = "" if str(err).startswith(step.change.address) else f"{step.change.address}: "
            lines.append(f"  undo {step.op} {where}{err}")
        if outcome.rollback.done:
            lines.append(f"  undone: {', '.join(_steps(outcome.rollback))}")
    lines.append("The state records exactly what is live; run `reconciler plan` to see what differs.")
    raise RollbackIncomplete("\n".join(lines))


def _report_interrupted(report: ApplyReport) -> None:
    """Raise Interrupted (exit 130/143) saying what was done and what is left."""
    signal_name = report.interrupted or "SIGINT"
    lines = [
        f"Interrupted by {signal_name}: {len(report.done)} done, {len(report.skipped)} not started; "
        "run apply again to continue."
    ]
    for step in report.provisioning:
        lines.append(f"  still provisioning: {step.change.address} (the next apply waits for it)")
    for step, err in report.failed:
        lines.append(f"  failed: {step.op} {step.change.address}: {err}")
    for step in report.skipped:
        lines.append(f"  not started: {step.op} {step.change.address}")
    lines.append("The state records everything done; the lock is released.")
    raise Interrupted("\n".join(lines), signal_name)


def _approve(plan: Plan, auto_approve: bool, what: str) -> None:
    if auto_approve:
        return
    # asyncio.run's own SIGINT handler only cancels the main task, which a blocking read never
    # sees: from the question on, Ctrl-C raises KeyboardInterrupt (exit 130) at once
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
    try:
        click.echo(f"Do you want to {what}? Only 'yes' will be accepted.")
        click.echo("  Enter a value: ", nl=False)
        line = sys.stdin.readline()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if not line:
        raise UsageError(
            f"no input to confirm; refusing to {what}. Use --auto-approve to {what} without a prompt"
        )
    if line.strip() != "yes":
        raise UsageError(f"{what.capitalize()} cancelled: the answer was not 'yes'; nothing was changed")


class ReconcilerGroup(click.Group):
    """The root command: the one place exceptions become messages and exit codes."""

    def main(self, args: Sequence[str] | None = None, *a: Any, **kw: Any) -> Any:
        """Run a command; every message it ends with is scrubbed of the secrets the run knows."""
        kw["standalone_mode"] = False
        REDACTOR.add(environment_secrets(os.environ))
        terminated = _on_sigterm()
        try:
            rv = super().main(list(args) if args is not None else None, *a, **kw)
            code = rv if isinstance(rv, int) else 0
        except click.exceptions.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):  # Ctrl-C outside an apply's steps
                click.echo("Interrupted by SIGINT; nothing on the platforms was changed.", err=True)
                code = EXIT_CODES["SIGINT"]
            else:
                click.echo("Aborted.", err=True)
                code = 1
        except Interrupted as exc:
            click.echo(REDACTOR.scrub(exc.render()), err=True)
            code = exc.exit_code
        except click.ClickException as exc:
            shown = io.StringIO()
            exc.show(file=shown)
            click.echo(REDACTOR.scrub(shown.getvalue()), err=True, nl=False)
            code = 1
        except ReconcilerError as exc:
            click.echo(f"Error: {REDACTOR.scrub(exc.render())}", err=True)
            code = exc.exit_code
        except Exception as exc:  # a bug: keep its traceback, but never a secret in it
            text = "".join(traceback.format_exception(exc))
            click.echo(REDACTOR.scrub(text), err=True, nl=False)
            click.echo(
                "Error: reconciler failed unexpectedly (a bug); the traceback above says where.", err=True
            )
            code = 1
        finally:
            _stop_logging()
            if terminated is not None:
                signal.signal(signal.SIGTERM, terminated)
        sys.exit(code)


def _on_sigterm() -> signal._HANDLER | None:
    """SIGTERM outside an apply's steps (which stop cleanly, see reconciler.interrupts) ends the
    command as Interrupted (exit 143), not silently; returns the handler it replaced."""

    def terminate(signum: int, frame: object) -> None:
        raise Interrupted("Interrupted by SIGTERM; nothing on the platforms was changed.", "SIGTERM")

    try:
        return signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread
        return None


class _StderrHandler(logging.Handler):
    """Writes records to the current ``sys.stderr`` (looked up per record, so it follows CliRunner)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


_HANDLER = _StderrHandler()
_HANDLER.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
#: -v: reconciler at INFO; -vv: reconciler at DEBUG and each HTTP request; -vvv: everything at DEBUG.
_LEVELS = {0: ("WARNING", "WARNING"), 1: ("INFO", "WARNING"), 2: ("DEBUG", "INFO"), 3: ("DEBUG", "DEBUG")}


def _start_logging(verbosity: int) -> None:
    ours, theirs = _LEVELS[min(verbosity, 3)]
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
    root.setLevel(theirs)
    logging.getLogger("reconciler").setLevel(ours)


def _stop_logging() -> None:
    logging.getLogger().removeHandler(_HANDLER)


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log to stderr: -v what reconciler does, -vv also each HTTP request, -vvv everything."
    " Secrets are scrubbed at every level.",
)
@click.option(
    "--timings",
    "timings_file",
    type=click.Path(dir_okay=False),
    hidden=True,
    help="Write where the time went to FILE (JSON; see reconciler.timings). For benchmarks.",
)
def cli(verbose: int, timings_file: str | None) -> None:
    """Declarative reconciler for model-serving platforms (DataArts Fabric, Model Studio, ZStack)."""
    _start_logging(verbose)
    if timings_file is not None:
        recorder = timings.start()
        click.get_current_context().call_on_close(lambda: recorder.write(Path(timings_file)))


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
@_json_option("the plan")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none.")
@click.option("--destroy", is_flag=True, help="Plan to destroy everything the state records.")
@click.option(
    "--refresh-only",
    is_flag=True,
    help="Plan to record the live values in state (accept drift); nothing on the platforms changes.",
)
@review_options(overrides=False)
@var_option
@var_file_option
@lock_timeout_option
def plan(
    stack: str,
    out: str | None,
    fmt: str,
    as_json: bool,
    detailed_exitcode: bool,
    destroy: bool,
    refresh_only: bool,
    policy_files: tuple[str, ...],
    pricing: tuple[str, ...],
    approvers: tuple[str, ...],
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Refresh and show what apply would change, with policy results and the monthly cost.

    A plan that lifecycle.prevent_destroy blocks is shown, not saved, and exits 1.
    --json streams JSON Lines instead (as --format json does, but one object a line).
    """
    flags = ReviewFlags(policy_files, pricing, approvers)
    stream = _Stream("plan") if as_json else None

    def command() -> int:
        if stream is not None and fmt != "text":
            raise UsageError("--json streams the plan; it cannot be given with --format (use one of them)")
        return _plan(stack, out, fmt, stream, detailed_exitcode, destroy, refresh_only,
                     flags, variables, var_files, lock_timeout)  # fmt: skip

    return command() if stream is None else stream.run(command)


def _plan(
    stack: str,
    out: str | None,
    fmt: str,
    stream: _Stream | None,
    detailed_exitcode: bool,
    destroy: bool,
    refresh_only: bool,
    flags: ReviewFlags,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    if destroy and refresh_only:
        raise UsageError("--destroy and --refresh-only cannot be used together")
    inputs, loaded = _load(stack, variables, var_files)
    review = flags.review(loaded)
    backend = operations.backend_for(loaded)
    if out:  # a plan that could not be saved is refused before any call
        check_no_credentials(inputs.variables, REDACTOR.values, Path(out))

    async def body(providers: dict[str, Provider]) -> tuple[Plan, str]:
        with backend.lock("reconciler plan", _seconds(lock_timeout)):
            result, _, messages = await operations.plan_async(
                loaded,
                backend,
                providers,
                destroy=destroy,
                inputs=inputs,
                refresh_only=refresh_only,
                keep_blocked=True,
            )
        if stream is None:
            for m in messages:
                click.echo(m, err=True)
        result = operations.assess(result, loaded, review)
        with timings.measure("plan.render"):
            if stream is not None:
                stream.plan(result, operations.secrets_of(providers), messages)
                return result, ""
            return result, _render(result, fmt, providers)

    result, text = operations.run(lambda: operations.with_providers(loaded, body))
    click.echo(text, nl=False)
    if result.blocked:
        raise PolicyError(
            "lifecycle.prevent_destroy blocks this plan; it was not saved:\n" + "\n".join(result.blocked)
        )
    if out:
        write_plan(result, Path(out), secrets=REDACTOR.values)
        click.echo(
            f"Saved the plan to {out}. Apply it with: reconciler apply {out}",
            err=fmt != "text" or stream is not None,
        )
    code = 2 if detailed_exitcode and result.has_changes else 0
    if stream is not None:
        stream.result(code)
    return code


def _is_plan_file(path: str) -> bool:
    """A saved plan rather than a stack: named ``*.plan``/``*.json``, or not YAML-named and JSON or empty.

    An empty or truncated plan file is still a plan file, so that it is refused as one.
    """
    if path.endswith((".yaml", ".yml")):
        return False
    if path.endswith((".plan", ".tfplan", ".json")):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(64).lstrip()
    except OSError:
        return False
    return head[:1] == b"{" or not head


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
    refresh_only: bool = False,
    flags: ReviewFlags = ReviewFlags(),
    stream: _Stream | None = None,
) -> int:
    saved = read_plan(Path(target)) if _is_plan_file(target) else None
    if saved is not None:
        if variables or var_files:
            raise UsageError(
                "a saved plan carries its variables; --var/--var-file cannot be given with a plan file"
            )
        if refresh_only and not saved.refresh_only:
            raise UsageError(f"--refresh-only: {target} is not a refresh-only plan; plan with --refresh-only")
        inputs, loaded = _load(
            saved.stack_file, [f"{k}={v}" for k, v in saved.variables.items()], saved.var_files
        )
    else:
        inputs, loaded = _load(target, variables, var_files)
    review = flags.review(loaded, saved.assessment if saved else None)
    backend = operations.backend_for(loaded)
    what = "destroy these resources" if destroy else "perform these actions"
    if parallelism < 1:
        raise UsageError("--parallelism must be at least 1")
    if stream is not None and saved is None and not auto_approve:
        raise UsageError(
            "--json needs --auto-approve (or a saved plan): a JSON stream cannot answer a prompt"
        )

    async def body(providers: dict[str, Provider]) -> operations.ApplyOutcome | None:
        with backend.lock("reconciler destroy" if destroy else "reconciler apply", _seconds(lock_timeout)):
            messages: Sequence[str] = ()
            if saved is None:
                the_plan, _, messages = await operations.plan_async(
                    loaded,
                    backend,
                    providers,
                    destroy=destroy,
                    inputs=inputs,
                    refresh_only=refresh_only,
                    keep_blocked=True,
                )
                for m in messages if stream is None else ():
                    click.echo(m, err=True)
            else:
                operations.check_saved(saved, loaded, backend)
                the_plan = saved
            the_plan = operations.assess(the_plan, loaded, review)
            if stream is None:
                click.echo(_render(the_plan, "text", providers), nl=False)
            else:
                stream.plan(the_plan, operations.secrets_of(providers), messages)
            if saved is None and not the_plan.has_changes:
                return None
            _gate(the_plan, flags.overrides, None if stream is None else stream.warn)
            if saved is None:
                _approve(the_plan, auto_approve, what)
            return await operations.apply_async(
                the_plan,
                loaded,
                backend,
                providers,
                parallelism=parallelism,
                progress=_progress if stream is None else stream.progress(the_plan),
                rollback=rollback,
                policy_overrides=flags.overrides,
                say=lambda message: click.echo(message, err=True),
            )

    outcome: operations.ApplyOutcome | None = operations.run(lambda: operations.with_providers(loaded, body))
    if stream is not None:
        report = outcome.report if outcome is not None else None
        stream.counts = json_stream.apply_counts(
            report.done if report else (),
            len(report.failed) if report else 0,
            len(report.skipped) if report else 0,
        )
    # --json: the human report goes to stderr; its error still ends the stream (with a result line)
    with contextlib.redirect_stdout(sys.stderr) if stream is not None else contextlib.nullcontext():
        if outcome is not None and (refresh_only or (saved is not None and saved.refresh_only)):
            _report_refresh(outcome)
        elif outcome is not None:
            _report(outcome)
    if stream is not None:
        recorded = operations.read_state(loaded)
        stream.result(0, dict(recorded.outputs) if recorded else {})
    elif outcome is not None or saved is not None:
        _print_outputs(loaded)
    return 0


def _gate(plan: Plan, overrides: Sequence[str], warn: Callable[[str], None] | None = None) -> None:
    """Refuse a blocked plan or one breaking policy (before any prompt); show the overrides used."""
    policy.check_blocked(plan)
    if plan.assessment is not None:
        for note in policy.enforce(plan.assessment.policy, overrides):
            if warn is None:
                click.echo(f"Warning: {note}", err=True)
            else:
                warn(note)


def _report_refresh(outcome: operations.ApplyOutcome) -> None:
    done = outcome.report.done
    recorded = sum(1 for e in done if e.op == "record")
    forgotten = sum(1 for e in done if e.op == "forget")
    click.echo(
        f"Apply complete! Recorded the live values of {_count(recorded, 'resource')}; "
        f"forgot {_count(forgotten, 'resource')} deleted out of band. Nothing on the platforms changed."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_outputs(stack: Stack) -> None:
    state = operations.read_state(stack)
    if state and state.outputs:
        click.echo("\nOutputs:\n")
        for k, v in state.outputs.items():
            click.echo(f"{k} = {json.dumps(v)}")


@cli.command()
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--auto-approve", is_flag=True, help="Apply without asking for 'yes'.")
@click.option(
    "--parallelism",
    default=10,
    show_default=True,
    help="Steps calling the platforms at once (steps waiting for provisioning do not count).",
)
@click.option("--no-rollback", is_flag=True, help="On failure, keep what succeeded instead of undoing it.")
@_json_option("the plan and each step (needs --auto-approve or a saved plan)")
@click.option(
    "--refresh-only",
    is_flag=True,
    help="Record the live values in state (accept drift); nothing on the platforms changes.",
)
@review_options(overrides=True)
@var_option
@var_file_option
@lock_timeout_option
def apply(
    target: str,
    auto_approve: bool,
    parallelism: int,
    no_rollback: bool,
    as_json: bool,
    refresh_only: bool,
    policy_files: tuple[str, ...],
    pricing: tuple[str, ...],
    approvers: tuple[str, ...],
    overrides: tuple[str, ...],
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Apply a stack (plans first and asks) or a saved plan file (refused when stale).

    Policy rules are evaluated again; a plan breaking one is refused unless the
    rule allows an override and --allow-policy-override RULE is given.
    """
    stream = _Stream("apply") if as_json else None

    def command() -> int:
        return _apply(
            target,
            auto_approve=auto_approve,
            parallelism=parallelism,
            variables=variables,
            var_files=var_files,
            lock_timeout=lock_timeout,
            destroy=False,
            rollback=not no_rollback,
            refresh_only=refresh_only,
            flags=ReviewFlags(policy_files, pricing, approvers, overrides),
            stream=stream,
        )

    return command() if stream is None else stream.run(command)


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for 'yes'.")
@click.option("--parallelism", default=10, show_default=True)
@_json_option("the plan and each step (needs --auto-approve)")
@review_options(overrides=True)
@var_option
@var_file_option
@lock_timeout_option
def destroy(
    stack: str,
    auto_approve: bool,
    parallelism: int,
    as_json: bool,
    policy_files: tuple[str, ...],
    pricing: tuple[str, ...],
    approvers: tuple[str, ...],
    overrides: tuple[str, ...],
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Delete every resource the stack's state records (policy rules apply, as for apply)."""
    stream = _Stream("destroy") if as_json else None

    def command() -> int:
        return _apply(
            stack,
            auto_approve=auto_approve,
            parallelism=parallelism,
            variables=variables,
            var_files=var_files,
            lock_timeout=lock_timeout,
            destroy=True,
            flags=ReviewFlags(policy_files, pricing, approvers, overrides),
            stream=stream,
        )

    return command() if stream is None else stream.run(command)


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Write the report to FILE; stdout then gets a one-line summary.",
)
@var_option
@var_file_option
@lock_timeout_option
def drift(
    stack: str,
    fmt: str,
    out: str | None,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Report what changed on the platforms since the last apply, changing nothing.

    Per resource: attributes changed out of band (recorded and live values),
    resources deleted out of band, and unmanaged objects in the scopes the stack
    manages. Exit 0 when there is no drift, 2 when there is, 1 on error.
    `apply` then puts things back; `apply --refresh-only` accepts the live values.
    """
    _, loaded = _load(stack, variables, var_files)
    backend = operations.backend_for(loaded)

    async def body(providers: dict[str, Provider]) -> tuple[Any, str]:
        with backend.lock("reconciler drift", _seconds(lock_timeout)):
            report = await operations.drift_async(loaded, backend, providers)
        secrets = operations.secrets_of(providers)
        if fmt == "json":
            return report, drift_json(report, secrets)
        if fmt == "markdown":
            return report, drift_markdown(report, secrets, stack)
        return report, drift_text(report, secrets, stack)

    report, text = operations.run(lambda: operations.with_providers(loaded, body))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        n = report.counts()
        found = f"{n['changed']} changed, {n['deleted']} deleted, {n['unmanaged']} unmanaged"
        click.echo(f"{'Drift: ' + found if report.has_drift else 'No drift'}. Report written to {out}.")
    else:
        click.echo(text, nl=False)
    return 2 if report.has_drift else 0


def _documented_secrets(platform: str, kind: str) -> frozenset[str]:
    """What each platform documents as secret (``KindSpec.secrets``), without building a provider."""
    from reconciler.providers import fabric, modelstudio, zstack_schema

    known = {"fabric": fabric.KINDS, "modelstudio": modelstudio.KINDS, "zstack": zstack_schema.KINDS}
    kinds = known.get(platform, {})
    spec = kinds.get(kind)
    return spec.secrets if spec else frozenset()


@cli.command()
@click.argument("planfile", type=click.Path(dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)
@_json_option("the plan")
def show(planfile: str, fmt: str, as_json: bool) -> int:
    """Show a plan saved by `plan --out` (refused, as by apply, when corrupted or newer).

    Nothing is called and no state is read; sensitive attributes are hidden as `plan` hides them.
    """
    stream = _Stream("plan") if as_json else None

    def command() -> int:
        saved = read_plan(Path(planfile))
        if stream is None:
            click.echo(_render(saved, fmt, _documented_secrets), nl=False)
            return 0
        if fmt != "text":
            raise UsageError("--json streams the plan; it cannot be given with --format (use one of them)")
        stream.plan(saved, _documented_secrets, ())
        stream.result(0)
        return 0

    return command() if stream is None else stream.run(command)


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
    """Inspect and change the recorded state."""


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
@click.argument("lock_id")
@var_option
@var_file_option
def force_unlock(stack: str, lock_id: str, variables: tuple[str, ...], var_files: tuple[str, ...]) -> int:
    """Remove the state lock LOCK_ID (the id the lock message shows) of a run on another host
    that is gone. A lock of a dead process on this host is taken over by the next run by itself."""
    from reconciler.state import transfer

    _, loaded = _load(stack, variables, var_files)
    click.echo(transfer.force_unlock(operations.backend_for(loaded), lock_id))
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


from reconciler.cli_state import register as _register_state_commands  # noqa: E402

_register_state_commands(cli, state)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `reconciler` console script."""
    cli.main(argv, prog_name="reconciler")
