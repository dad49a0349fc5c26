"""Carry out a Plan: physical steps in dependency order, bounded parallelism, state after every step.

A plan's logical changes expand into physical steps: a replace is a delete
and a create (or, with create_before_destroy, a create and a later delete of
the deposed object). Deletes wait for the deletes of everything that depended
on them; creates and updates wait for their dependencies. Before every
mutating call the intent is journaled in state; after the answer the result
is recorded, so a killed run can be resumed (see :mod:`reconciler.recovery`).

On the first failed step no new step starts; steps in flight finish; the
steps that depended on the failed one are skipped, not reported as failures.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler import crashpoints
from reconciler.errors import ApplyError, ProviderError, ReconcilerError
from reconciler.plan import Action, Change, Plan
from reconciler.providers.base import UNKNOWN, Live, Provider, RefValue
from reconciler.stack.expressions import resolve
from reconciler.stack.spec import Stack
from reconciler.state.backend import Backend
from reconciler.state.document import JournalEntry, ResourceState, StateDoc

DEPOSED = "#deposed"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Step:
    key: str  # "<op> <address>"
    op: str  # create | update | delete | delete-deposed | forget
    change: Change


@dataclass(frozen=True)
class Event:
    """Progress of one step, for display: ``phase`` is start, still, done, failed or skipped."""

    address: str
    op: str
    phase: str
    elapsed: float = 0.0
    detail: str = ""


@dataclass
class ApplyReport:
    done: list[Event] = field(default_factory=list)
    failed: list[tuple[Step, ReconcilerError]] = field(default_factory=list)
    skipped: list[Step] = field(default_factory=list)
    state: StateDoc | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def expand(plan: Plan, state: StateDoc | None) -> tuple[dict[str, Step], dict[str, set[str]]]:
    """Physical steps of a plan and, for each, the steps that must finish first."""
    steps: dict[str, Step] = {}
    for c in plan.actionable:
        if c.action is Action.CREATE:
            ops = ["create"]
        elif c.action is Action.UPDATE:
            ops = ["update"]
        elif c.action is Action.REPLACE:
            ops = ["create", "delete-deposed"] if c.create_before_destroy else ["delete", "create"]
        else:
            ops = ["forget"] if c.before is None else ["delete"]
        for op in ops:
            steps[f"{op} {c.address}"] = Step(f"{op} {c.address}", op, c)

    recorded_dependants: dict[str, list[str]] = {}
    if state is not None:
        for rs in state.resources.values():
            for d in rs.dependencies:
                recorded_dependants.setdefault(d, []).append(rs.address)
    desired_dependants: dict[str, list[str]] = {}
    for c in plan.changes:
        if c.action is not Action.DELETE:
            for d in c.depends_on:
                desired_dependants.setdefault(d, []).append(c.address)

    needs: dict[str, set[str]] = {k: set() for k in steps}
    for key, step in steps.items():
        addr = step.change.address
        if step.op in ("create", "update"):
            for d in step.change.depends_on:
                needs[key] |= {k for k in (f"create {d}", f"update {d}") if k in steps}
            if step.op == "create" and f"delete {addr}" in steps:
                needs[key].add(f"delete {addr}")
        elif step.op in ("delete", "forget"):
            for y in recorded_dependants.get(addr, []):
                needs[key] |= {k for k in (f"delete {y}", f"update {y}", f"forget {y}") if k in steps}
        elif step.op == "delete-deposed":
            needs[key].add(f"create {addr}")
            for y in recorded_dependants.get(addr, []) + desired_dependants.get(addr, []):
                needs[key] |= {k for k in (f"create {y}", f"update {y}", f"delete {y}") if k in steps}
        needs[key].discard(key)
    return steps, needs


class Applier:
    """Runs one plan. ``progress`` receives an Event for every start, heartbeat and end."""

    def __init__(
        self,
        plan: Plan,
        stack: Stack,
        providers: Mapping[str, Provider],
        backend: Backend,
        state: StateDoc,
        *,
        parallelism: int = 10,
        progress: Callable[[Event], None] = lambda e: None,
        heartbeat: float = 10.0,
        create_attempts: int = 4,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.plan = plan
        self.stack = stack
        self.providers = providers
        self.backend = backend
        self.state = state
        self.parallelism = max(1, parallelism)
        self.progress = progress
        self.heartbeat = heartbeat
        self.create_attempts = max(1, create_attempts)
        self.sleep = sleep
        self._seq = max((e.seq for e in state.journal), default=0)

    # -- state -------------------------------------------------------------------

    def _persist(self, doc: StateDoc) -> None:
        doc = doc.bumped()
        self.backend.write(doc)
        self.state = doc
        crashpoints.reached("state-write")

    def _journal(
        self,
        step: Step,
        phase: str,
        token: str,
        *,
        id: str | None = None,
        scope: Mapping[str, str] | None = None,
        detail: str | None = None,
    ) -> None:
        self._seq += 1
        c = step.change
        entry = JournalEntry(
            seq=self._seq,
            address=c.address,
            action=step.op,
            phase=phase,  # type: ignore[arg-type]
            name=c.name,
            token=token,
            id=id,
            time=now_iso(),
            detail=detail,
            platform=c.platform,
            kind=c.kind,
            scope=dict(c.scope if scope is None else scope),
            dependencies=tuple(c.depends_on),
        )
        self._persist(self.state.with_journal(entry))

    def _record(self, change: Change, live: Live, provider: Provider, address: str | None = None) -> None:
        rs = ResourceState(
            address=address or change.address,
            platform=change.platform,
            kind=change.kind,
            id=live.id,
            name=live.name or change.name,
            scope=provider.scope_of(change.kind, live.attributes),
            attributes=dict(live.attributes),
            status=live.status,
            dependencies=tuple(change.depends_on),
        )
        self._persist(self.state.with_resource(rs))

    # -- desired values at apply time ----------------------------------------------

    def _desired(self, change: Change, provider: Provider) -> dict[str, Any]:
        res = self.stack.resources[change.address]
        known = {a: {**rs.attributes, "id": rs.id} for a, rs in self.state.resources.items()}
        attrs = resolve(dict(res.attrs), self.stack, known)
        refs = {
            f: RefValue(
                address=t,
                id=self.state.resources[t].id if t in self.state.resources else UNKNOWN,
                attributes=known.get(t, {}),
            )
            for f, t in res.refs.items()
        }
        desired = provider.desired(change.kind, attrs, refs)
        missing = [k for k, v in _flatten(desired) if v is UNKNOWN]
        if missing:
            raise ApplyError(f"{change.address}: values still unknown at apply time: {', '.join(missing)}")
        return desired

    # -- steps -------------------------------------------------------------------

    async def _run_step(self, step: Step) -> None:
        c = step.change
        provider = self.providers[c.platform]
        spec = provider.kinds[c.kind]
        timeout = float(getattr(provider, "wait_timeout", 1800.0))
        token = uuid.uuid4().hex
        if step.op == "forget":
            self._persist(self.state.without_resource(c.address))
            return
        if step.op in ("delete", "delete-deposed"):
            address = c.address + DEPOSED if step.op == "delete-deposed" else c.address
            rs = self.state.resources.get(address)
            if rs is None:
                return
            self._journal(step, "intent", token, id=rs.id)
            await provider.delete(c.kind, rs.id, rs.scope)
            if spec.asynchronous:
                await provider.wait(c.kind, rs.id, rs.scope, "gone", timeout)
            self._persist(self.state.without_resource(address))
            self._journal(step, "done", token, id=rs.id)
            return
        desired = self._desired(c, provider)
        if step.op == "create":
            if c.action is Action.REPLACE and c.create_before_destroy and c.address in self.state.resources:
                old = self.state.resources[c.address]
                deposed = old.model_copy(update={"address": c.address + DEPOSED})
                self._persist(self.state.without_resource(c.address).with_resource(deposed))
            scope = provider.scope_of(c.kind, desired)
            self._journal(step, "intent", token, scope=scope)
            live = await self._create(c, provider, desired, scope)
            self._record(c, live, provider)
            self._journal(step, "done", token, id=live.id)
        else:
            rs = self.state.resources[c.address]
            # the live attributes the plan saw (out-of-band changes included), not the recorded ones
            seen = c.before if c.before is not None else rs.attributes
            before = Live(id=rs.id, attributes=seen, status=rs.status, name=rs.name)
            self._journal(step, "intent", token, id=rs.id)
            live = await provider.update(c.kind, before, desired)
            self._record(c, live, provider)
            self._journal(step, "done", token, id=live.id)
        if spec.asynchronous:
            crashpoints.reached("wait")
            ready = await provider.wait(
                c.kind, live.id, provider.scope_of(c.kind, live.attributes), "ready", timeout
            )
            if ready is not None:
                self._record(c, ready, provider)
                await self._health_gate(c, provider, ready)

    async def _health_gate(self, c: Change, provider: Provider, live: Live) -> None:
        """A stack's health gate: one invocation must answer in time, else the step fails."""
        res = self.stack.resources.get(c.address)
        check = res.health_check if res is not None else None
        if check is None:
            return
        probe = getattr(provider, "probe", None)
        if probe is None:
            raise ApplyError(f"{c.address}: platform {c.platform} has no invocation to run a health_check with")
        self.progress(Event(c.address, "health", "start"))
        await probe(c.kind, live, check.prompt, check.timeout)

    async def _create(
        self, c: Change, provider: Provider, desired: Mapping[str, Any], scope: Mapping[str, str]
    ) -> Live:
        """Create once; after a transient failure, read the platform before any second attempt.

        A create whose answer was lost may have landed: the object is looked up by
        name and adopted if it is there, so nothing is ever created twice.
        """
        name = desired.get("name")
        for attempt in range(self.create_attempts):
            try:
                return await provider.create(c.kind, desired)
            except ProviderError as exc:
                if not exc.retryable or attempt + 1 >= self.create_attempts:
                    raise
                if isinstance(name, str):
                    found = await provider.find(c.kind, name, scope)
                    if found is not None:
                        self.progress(Event(c.address, "create", "adopted", 0.0, found.id))
                        return found
                await self.sleep(min(8.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")

    async def _tracked(self, step: Step) -> None:
        start = time.monotonic()
        self.progress(Event(step.change.address, step.op, "start"))
        task = asyncio.ensure_future(self._run_step(step))
        while True:
            done, _ = await asyncio.wait({task}, timeout=self.heartbeat)
            if done:
                break
            self.progress(Event(step.change.address, step.op, "still", time.monotonic() - start))
        task.result()
        self.progress(Event(step.change.address, step.op, "done", time.monotonic() - start))

    async def run(self) -> ApplyReport:
        steps, needs = expand(self.plan, self.state)
        report = ApplyReport()
        pending = dict(needs)
        finished: set[str] = set()
        blocked: set[str] = set()
        running: dict[asyncio.Future[None], Step] = {}
        start_times: dict[str, float] = {}
        stopping = False

        while pending or running:
            if not stopping:
                for key in [k for k, n in pending.items() if n <= finished]:
                    if len(running) >= self.parallelism:
                        break
                    del pending[key]
                    start_times[key] = time.monotonic()
                    running[asyncio.ensure_future(self._tracked(steps[key]))] = steps[key]
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                step = running.pop(fut)
                exc = fut.exception()
                elapsed = time.monotonic() - start_times[step.key]
                if exc is None:
                    finished.add(step.key)
                    report.done.append(Event(step.change.address, step.op, "done", elapsed))
                    continue
                if not isinstance(exc, ReconcilerError):
                    raise exc
                err = exc.at(step.change.address) if isinstance(exc, ProviderError) else exc
                report.failed.append((step, err))
                blocked.add(step.key)
                self.progress(Event(step.change.address, step.op, "failed", elapsed, str(err)))
                stopping = True
        for key in pending:
            report.skipped.append(steps[key])
            self.progress(Event(steps[key].change.address, steps[key].op, "skipped"))
        if report.ok:
            self._finish()
        report.state = self.state
        return report

    def _finish(self) -> None:
        known = {a: {**rs.attributes, "id": rs.id} for a, rs in self.state.resources.items()}
        outputs = {k: resolve(v, self.stack, known) for k, v in self.stack.outputs.items()}
        outputs = {} if self.plan.destroy else {k: (None if v is UNKNOWN else v) for k, v in outputs.items()}
        doc = self.state.with_outputs(outputs).cleared_journal()
        if doc != self.state:
            self._persist(doc)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value)]
