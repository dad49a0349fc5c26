"""The Python API behind the CLI: open a stack's backend and providers, plan, apply, destroy.

Each function takes values and returns values; the CLI only parses flags,
calls these, renders and exits. Locks are held for the whole of a
plan-with-refresh or an apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler import cost, policy, timings
from reconciler.applier import Applier, ApplyReport, Event, now_iso
from reconciler.assessment import Assessment
from reconciler.drift import DriftReport, detect, recorded_state, refresh_only_plan
from reconciler.errors import PlanFileError, PolicyError, ReconcilerError, StateError, UsageError
from reconciler.interrupts import StopRequest, stopping_on_signals
from reconciler.plan import Action, Plan, check_current
from reconciler.planner import build_plan
from reconciler.policy import check_blocked, enforce
from reconciler.preflight import preflight
from reconciler.providers import build_provider
from reconciler.providers.base import Provider
from reconciler.refresh import recover, refresh, unmanaged_namesakes
from reconciler.rollback import restore_deposed, target_stack
from reconciler.scopes import managed_scopes, unmanaged
from reconciler.stack import load_stack
from reconciler.stack.spec import Stack
from reconciler.state.backend import Backend
from reconciler.state.document import StateDoc
from reconciler.state.history import HISTORY_KEEP
from reconciler.state.local import LocalBackend


@dataclass(frozen=True)
class StackInput:
    """How to load a stack: the file and the command-line variable overrides."""

    path: str
    variables: Mapping[str, str]
    var_files: tuple[str, ...] = ()

    def load(self) -> Stack:
        return load_stack(self.path, variables=self.variables, var_files=self.var_files)


def state_path(stack: Stack) -> Path:
    """The local state file; with another backend, where it would be (its directory holds local files
    such as the embedded emulator's store).

    A relative path is relative to the stack file's directory, never to the
    working directory: the same stack run from anywhere finds the same state.
    """
    local = stack.backend.get("local") if stack.backend else None
    path = Path(str((local or {}).get("path") or f"state/{stack.name}.json"))
    if path.is_absolute() or not stack.file:
        return path
    return Path(stack.file).parent / path


def backend_for(stack: Stack) -> Backend:
    """The stack's state backend: ``backend: {postgres: {dsn, schema}}`` or a local file (the default).

    Either keeps ``history_keep`` versions (the block's key; default ``HISTORY_KEEP``).
    """
    postgres = stack.backend.get("postgres") if stack.backend else None
    if postgres is not None:
        from reconciler.state.postgres import DEFAULT_SCHEMA, PostgresBackend  # psycopg only when used

        return PostgresBackend(
            str(postgres["dsn"]),
            stack=stack.name,
            schema=str(postgres.get("schema") or DEFAULT_SCHEMA),
            stack_file=stack.file,
            history_keep=int(postgres.get("history_keep") or HISTORY_KEEP),
        )
    local = stack.backend.get("local") if stack.backend else None
    keep = int((local or {}).get("history_keep") or HISTORY_KEEP)
    return LocalBackend(state_path(stack), stack=stack.file, history_keep=keep)


def providers_for(stack: Stack) -> dict[str, Provider]:
    """One provider per platform block the stack has (their secrets stay inside them)."""
    state_dir = state_path(stack).parent
    try:
        return {
            platform: build_provider(platform, block, state_dir=state_dir)
            for platform, block in stack.providers.items()
        }
    except OSError as exc:  # the embedded emulators keep their store in the state directory
        where = exc.filename if exc.filename is not None else state_dir
        raise StateError(
            f"{where} is not writable: [Errno {exc.errno}] {exc.strerror or exc}; the state directory "
            f"{state_dir} must be a writable directory. Fix the path or its permissions and run again"
        ) from None


def secrets_of(providers: Mapping[str, Provider]) -> Callable[[str, str], frozenset[str]]:
    def lookup(platform: str, kind: str) -> frozenset[str]:
        provider = providers.get(platform)
        spec = provider.kinds.get(kind) if provider else None
        return spec.secrets if spec else frozenset()

    return lookup


@contextmanager
def locked(backend: Backend, command: str, timeout: float = 0.0) -> Iterator[None]:
    with backend.lock(command, timeout):
        yield


async def _close(providers: Mapping[str, Provider]) -> None:
    for p in providers.values():
        await p.aclose()


async def plan_async(
    stack: Stack,
    backend: Backend,
    providers: Mapping[str, Provider],
    *,
    destroy: bool = False,
    inputs: StackInput | None = None,
    refresh_only: bool = False,
    keep_blocked: bool = False,
) -> tuple[Plan, StateDoc | None, tuple[str, ...]]:
    """Recover interrupted runs, refresh, and plan. Caller holds the lock.

    First, once the state is known to be this stack's, one cheap authenticated
    call per platform used (:func:`reconciler.preflight.preflight`): a refused
    credential or an unreachable URL fails here, even when nothing is recorded.
    ``refresh_only``: a plan that records the live values in state and changes
    nothing on the platforms (:func:`reconciler.drift.refresh_only_plan`).
    ``keep_blocked``: lifecycle.prevent_destroy hits are named in ``Plan.blocked``
    (for review) instead of raised; such a plan is never applied.
    """
    with timings.measure("state.read"):
        state = read_owned(backend, stack)
    with timings.measure("preflight"):  # a wrong credential or URL fails here, even with an empty state
        await preflight(_used(providers, stack, state))
    messages: tuple[str, ...] = ()
    if state is not None and state.journal:
        recovery = await recover(state, providers)
        messages = recovery.messages
        if recovery.state != state:
            state = recovery.state.bumped()
            backend.write(state)
    with timings.measure("refresh"):
        live = await refresh(state, providers)
    with timings.measure("plan.build"):
        plan = build_plan(
            stack,
            state,
            live,
            providers,
            destroy=destroy,
            variables=inputs.variables if inputs else {},
            var_files=inputs.var_files if inputs else (),
            created_at=now_iso(),
            keep_blocked=keep_blocked or refresh_only,
        )
    if not destroy and not refresh_only:
        with timings.measure("refresh.namesakes"):
            taken = await unmanaged_namesakes(plan, state, providers, stack.file)
        if taken:
            raise PolicyError("\n".join(taken))
    if refresh_only:
        plan = refresh_only_plan(
            stack,
            state,
            live,
            plan,
            providers,
            created_at=plan.created_at,
            variables=plan.variables,
            var_files=plan.var_files,
        )
    return plan, state, messages


def _used(providers: Mapping[str, Provider], stack: Stack, state: StateDoc | None) -> dict[str, Provider]:
    """The providers of the platforms the stack's resources or the recorded ones are on."""
    platforms = {r.platform for r in stack.resources.values()}
    platforms |= {r.platform for r in state.resources.values()} if state is not None else set()
    return {platform: p for platform, p in providers.items() if platform in platforms}


@dataclass
class ApplyOutcome:
    """What an apply did: the report of the apply itself and, when it failed, of its rollback."""

    report: ApplyReport
    rollback: ApplyReport | None = None
    rollback_plan: Plan | None = None
    rollback_error: ReconcilerError | None = None

    @property
    def restored(self) -> bool:
        return self.rollback is not None and self.rollback.ok and self.rollback_error is None


async def apply_async(
    plan: Plan,
    stack: Stack,
    backend: Backend,
    providers: Mapping[str, Provider],
    *,
    parallelism: int = 10,
    progress: Callable[[Event], None] = lambda e: None,
    rollback: bool = True,
    policy_overrides: Collection[str] = (),
    say: Callable[[str], None] = lambda message: None,
) -> ApplyOutcome:
    """Apply a plan made against the current state; on failure, undo what was done.

    SIGINT/SIGTERM during the apply stop it (:mod:`reconciler.interrupts`; ``say``
    tells the user): no rollback then, the next apply continues.

    Caller holds the lock. Rollback is one more plan (see :mod:`reconciler.rollback`):
    desired = the resources as they were, recorded = now, live = a fresh refresh.
    A plan with prevent_destroy hits, or whose assessment breaks a policy rule
    not overridden (``policy_overrides``, see :func:`reconciler.policy.enforce`),
    is refused. A refresh-only plan only writes state.
    """
    state = read_owned(backend, stack)
    _check_against(plan, stack, state)
    check_blocked(plan)
    if plan.assessment is not None:
        enforce(plan.assessment.policy, policy_overrides)
    if plan.refresh_only:
        return _record_refresh(plan, state, backend)
    backend.check_writable()  # before the first platform change: an unwritable state changes nothing
    if state is None:
        state = StateDoc.new(stack.name)
    stop = StopRequest()
    with stopping_on_signals(stop, say):
        return await _apply_then_undo(
            plan, stack, backend, providers, state, stop, parallelism, progress, rollback=rollback
        )


async def _apply_then_undo(
    plan: Plan,
    stack: Stack,
    backend: Backend,
    providers: Mapping[str, Provider],
    state: StateDoc,
    stop: StopRequest,
    parallelism: int,
    progress: Callable[[Event], None],
    *,
    rollback: bool,
) -> ApplyOutcome:
    applier = Applier(
        plan, stack, providers, backend, state, parallelism=parallelism, progress=progress, stop=stop
    )
    report = await applier.run()
    if applier.write_failure is not None:  # no rollback: it could not be recorded either
        raise applier.write_failure
    if report.interrupted is not None:  # asked to stop, not failed: the next apply goes on from here
        return ApplyOutcome(report)
    if report.ok or not rollback or applier.state.resources == state.resources:
        # nothing to undo when no step changed what the state records
        return ApplyOutcome(report)
    now = applier.state
    restored = restore_deposed(state, now)
    if restored != now:
        restored = restored.bumped()
        backend.write(restored)
    try:
        target = target_stack(state, plan, providers, stack.file)
        live = await refresh(restored, providers)
        undo = build_plan(target, restored, live, providers, created_at=now_iso())
        undoer = Applier(
            undo, target, providers, backend, restored, parallelism=parallelism, progress=progress, stop=stop
        )
        return ApplyOutcome(report, await undoer.run(), undo)
    except ReconcilerError as exc:
        return ApplyOutcome(report, None, None, exc)


def _record_refresh(plan: Plan, state: StateDoc | None, backend: Backend) -> ApplyOutcome:
    """Apply a refresh-only plan: record the live values, forget what is gone; no platform call."""
    events = [
        Event(c.address, "forget" if c.action is Action.DELETE else "record", "done") for c in plan.actionable
    ]
    if state is None:
        return ApplyOutcome(ApplyReport(done=events))
    recorded = recorded_state(plan, state)
    if recorded != state:
        recorded = recorded.bumped()
        backend.write(recorded)
    return ApplyOutcome(ApplyReport(done=events, state=recorded))


def read_owned(backend: Backend, stack: Stack) -> StateDoc | None:
    """The stored state, refused (StateError, before any call or write) when it is another stack's."""
    state = backend.read()
    if state is not None and state.stack != stack.name:
        raise StateError(
            f"{backend.describe()} holds the state of stack {state.stack!r} (lineage {state.lineage}), "
            f"not of stack {stack.name!r} ({stack.file}); nothing was called or written. Point the "
            "backend of this stack at its own state"
        )
    return state


def check_saved(plan: Plan, stack: Stack, backend: Backend) -> None:
    """Refuse a saved plan whose stack or state moved on (before its policy is looked at).

    The plan's own stack name is checked first: it needs no read, and it is the
    mistake the user made (applying a plan of another stack).
    """
    if plan.stack != stack.name:
        raise PlanFileError(f"plan was made for stack '{plan.stack}', not '{stack.name}'")
    _check_against(plan, stack, read_owned(backend, stack))


def _check_against(plan: Plan, stack: Stack, state: StateDoc | None) -> None:
    check_current(
        plan,
        stack=stack.name,
        digest=stack.digest,
        lineage=state.lineage if state else None,
        serial=state.serial if state else None,
    )


@dataclass(frozen=True)
class ReviewInput:
    """What a plan is assessed with besides the stack: policy files, pricing files, approver names."""

    policy_files: tuple[str, ...] = ()
    pricing_files: tuple[str, ...] = ()
    approvals: frozenset[str] = frozenset()

    def check(self, stack: Stack) -> None:
        """Read every file now, so that a bad one is reported before anything is called."""
        policy.collect(stack, self.policy_files)
        cost.load_pricing(self.pricing_files)


def assess(plan: Plan, stack: Stack, review: ReviewInput) -> Plan:
    """The plan with its cost estimated and every policy rule evaluated (``Plan.assessment``)."""
    catalogue = cost.load_pricing(review.pricing_files)
    rules = policy.collect(stack, review.policy_files)
    regions = {platform: cost.region_of(platform, block) for platform, block in stack.providers.items()}
    estimate = cost.estimate(plan, catalogue, regions.get("modelstudio"))
    results = policy.evaluate(plan, rules, policy.Context(review.approvals, regions, estimate))
    assessment = Assessment(
        policy=results,
        cost=estimate,
        policy_files=review.policy_files,
        pricing_files=review.pricing_files,
        approvals=tuple(sorted(review.approvals)),
    )
    return replace(plan, assessment=assessment)


async def drift_async(stack: Stack, backend: Backend, providers: Mapping[str, Provider]) -> DriftReport:
    """Refresh and compare with the state without changing anything (no recovery, no state write).

    Caller holds the lock. Reports resources changed or deleted out of band and
    unmanaged objects in the scopes the stack manages (:mod:`reconciler.scopes`).
    """
    state = read_owned(backend, stack)
    notes: list[str] = []
    if state is None:
        notes.append("no state is recorded for this stack yet: everything found in its scopes is unmanaged")
    elif state.journal_open():
        notes.append(
            "an interrupted run left unfinished steps in the state journal; objects it created may show "
            "as unmanaged. Run `reconciler plan` to resolve them"
        )
    live = await refresh(state, providers)
    plan = build_plan(stack, state, live, providers, keep_blocked=True)
    searched = managed_scopes(stack, state, plan)
    found, listing_notes = await unmanaged(searched, state, providers)
    return detect(
        stack,
        state,
        live,
        plan,
        providers,
        found,
        checked_at=now_iso(),
        scopes=tuple(dict.fromkeys(s.where for s in searched)),
        notes=(*notes, *listing_notes),
    )


def run(coro_factory: Callable[[], Any]) -> Any:
    """Run an async operation to completion (the one event loop of a CLI command)."""
    return asyncio.run(coro_factory())


async def with_providers(stack: Stack, body: Callable[[dict[str, Provider]], Any]) -> Any:
    providers = providers_for(stack)
    async with AsyncExitStack() as exits:
        exits.push_async_callback(_close, providers)
        return await body(providers)


def read_state(stack: Stack) -> StateDoc | None:
    return backend_for(stack).read()


def input_of(path: str, variables: Sequence[str], var_files: Sequence[str]) -> StackInput:
    parsed: dict[str, str] = {}
    for item in variables:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var {item!r}: expected NAME=VALUE")
        parsed[name.strip()] = value
    return StackInput(path=path, variables=parsed, var_files=tuple(var_files))
