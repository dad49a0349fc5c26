"""The Python API behind the CLI: open a stack's backend and providers, plan, apply, destroy.

Each function takes values and returns values; the CLI only parses flags,
calls these, renders and exits. Locks are held for the whole of a
plan-with-refresh or an apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.applier import Applier, ApplyReport, Event, now_iso
from reconciler.errors import ReconcilerError, UsageError
from reconciler.plan import Plan, check_current
from reconciler.planner import build_plan
from reconciler.providers import build_provider
from reconciler.providers.base import Provider
from reconciler.refresh import recover, refresh
from reconciler.rollback import restore_deposed, target_stack
from reconciler.stack import load_stack
from reconciler.stack.spec import Stack
from reconciler.state.backend import Backend
from reconciler.state.document import StateDoc
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
    local = stack.backend.get("local") if stack.backend else None
    if stack.backend and local is None:
        kinds = ", ".join(sorted(stack.backend))
        raise UsageError(
            f"{stack.file}: backend '{kinds}' is not available yet; use backend: {{local: {{path: ...}}}}"
        )
    path = (local or {}).get("path") or f"state/{stack.name}.json"
    return Path(str(path))


def backend_for(stack: Stack) -> Backend:
    return LocalBackend(state_path(stack), stack=stack.file)


def providers_for(stack: Stack) -> dict[str, Provider]:
    """One provider per platform block the stack has (their secrets stay inside them)."""
    state_dir = state_path(stack).parent
    return {
        platform: build_provider(platform, block, state_dir=state_dir)
        for platform, block in stack.providers.items()
    }


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
) -> tuple[Plan, StateDoc | None, tuple[str, ...]]:
    """Recover interrupted runs, refresh, and plan. Caller holds the lock."""
    state = backend.read()
    messages: tuple[str, ...] = ()
    if state is not None and state.journal:
        recovery = await recover(state, providers)
        messages = recovery.messages
        if recovery.state != state:
            state = recovery.state.bumped()
            backend.write(state)
    live = await refresh(state, providers)
    plan = build_plan(
        stack,
        state,
        live,
        providers,
        destroy=destroy,
        variables=inputs.variables if inputs else {},
        var_files=inputs.var_files if inputs else (),
        created_at=now_iso(),
    )
    return plan, state, messages


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
) -> ApplyOutcome:
    """Apply a plan made against the current state; on failure, undo what was done.

    Caller holds the lock. Rollback is one more plan (see :mod:`reconciler.rollback`):
    desired = the resources as they were, recorded = now, live = a fresh refresh.
    """
    state = backend.read()
    check_current(
        plan,
        stack=stack.name,
        digest=stack.digest,
        lineage=state.lineage if state else None,
        serial=state.serial if state else None,
    )
    if state is None:
        state = StateDoc.new(stack.name)
    applier = Applier(plan, stack, providers, backend, state, parallelism=parallelism, progress=progress)
    report = await applier.run()
    if report.ok or not rollback or not report.done:
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
            undo, target, providers, backend, restored, parallelism=parallelism, progress=progress
        )
        return ApplyOutcome(report, await undoer.run(), undo)
    except ReconcilerError as exc:
        return ApplyOutcome(report, None, None, exc)


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
