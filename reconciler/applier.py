"""Carry out a Plan: physical steps in dependency order, bounded parallelism, state after every step.

A plan's logical changes expand into physical steps: a replace is a delete
and a create (or, with create_before_destroy, a create and a later delete of
the deposed object). Deletes wait for the deletes of everything that depended
on them; creates and updates wait for their dependencies. Before every
mutating call the intent is journaled in state; after the answer the result
is recorded, so a killed run can be resumed (see :func:`reconciler.refresh.recover`).

On the first failed step no new step starts; steps in flight finish; the
steps that depended on the failed one are skipped, not reported as failures.

``parallelism`` bounds the steps that are calling the platforms. A step
leaves its turn once its create, update or delete call has answered:
recording the result, waiting for the object to settle (a deployment
provisioning) and its health gate do not count. It waits on the apply's shared
:class:`~reconciler.watch.Watcher`, which reads list pages for all waiters at
once, so hundreds of deployments can provision together while calls stay
within each platform's pacing. A free turn goes to the first ready step (plan order) of
the platform with the fewest steps calling it: platforms have their own rate
limits, and a slow one must not take every turn from the others. Finding
ready steps costs O(dependants) per finished step, not a scan of everything
pending.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import crashpoints, timings
from reconciler.errors import ApplyError, ProviderError, ReconcilerError, StateError, StateWriteFailed
from reconciler.interrupts import StopRequest
from reconciler.plan import Action, Change, Plan
from reconciler.planner import diff_attributes, ordered_by_limits
from reconciler.providers.base import UNKNOWN, Live, Phase, Provider, RefValue, Until
from reconciler.refresh import find_untracked
from reconciler.stack.expressions import resolve
from reconciler.stack.spec import Stack
from reconciler.state.backend import Backend
from reconciler.state.document import DEPOSED, JournalEntry, ResourceState, StateDoc
from reconciler.watch import Watcher


class _StoppedWaiting(Exception):
    """A step stopped waiting for its object to settle because a stop was requested."""


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
    interrupted: str | None = None  # why the apply stopped early (a signal's name), if it did
    provisioning: list[Step] = field(default_factory=list)  # called and recorded, not yet settled

    @property
    def ok(self) -> bool:
        return not self.failed


def expand(plan: Plan, state: StateDoc | None) -> tuple[dict[str, Step], dict[str, set[str]]]:
    """Physical steps of a plan and, for each, the steps that must finish first."""
    steps: dict[str, Step] = {}
    for c in plan.provisioning:
        steps[f"wait {c.address}"] = Step(f"wait {c.address}", "wait", c)
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

    parked: dict[str, list[str]] = {}
    for k, s in steps.items():
        if s.op in ("delete", "forget") and "#" in s.change.address:
            parked.setdefault(s.change.address.split("#", 1)[0], []).append(k)
    needs: dict[str, set[str]] = {k: set() for k in steps}
    for key, step in steps.items():
        addr = step.change.address
        if step.op in ("create", "update"):
            for d in step.change.depends_on:
                needs[key] |= {k for k in (f"create {d}", f"update {d}", f"wait {d}") if k in steps}
            if step.op == "create":
                # the old object at this address, or one parked beside it (#deposed, #new), goes first
                needs[key] |= {k for k in (f"delete {addr}", *parked.get(addr, ())) if k in steps}
            if step.op == "update":  # dependants that go are gone first (a smaller endpoint must fit)
                for y in recorded_dependants.get(addr, []):
                    needs[key] |= {k for k in (f"delete {y}", f"forget {y}") if k in steps}
        elif step.op in ("delete", "forget"):
            # A removed resource goes after its dependants are deleted or moved off it (updated).
            # The delete half of a replacement waits only for dependants that go too: one that is
            # updated points at the replacement, so its update comes after the create, not before.
            moved = ("update",) if step.change.action is not Action.REPLACE else ()
            for y in recorded_dependants.get(addr, []):
                needs[key] |= {
                    k for k in (f"delete {y}", f"forget {y}", *(f"{m} {y}" for m in moved)) if k in steps
                }
        elif step.op == "delete-deposed":
            needs[key].add(f"create {addr}")
            for y in recorded_dependants.get(addr, []) + desired_dependants.get(addr, []):
                after = (f"create {y}", f"update {y}", f"delete {y}", f"delete-deposed {y}")
                needs[key] |= {k for k in after if k in steps}
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
        stop: StopRequest | None = None,
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
        self.stop = stop if stop is not None else StopRequest()
        self._seq = max((e.seq for e in state.journal), default=0)
        self.watcher = Watcher(sleep=sleep)
        self._written = state.serial  # the serial the backend holds
        self._writer: asyncio.Future[None] | None = None
        self.write_failure: StateWriteFailed | None = None  # the backend refused a write: stop
        self._idle = 0  # running steps done calling (recording, waiting): not counted by parallelism
        self._calling: dict[str, int] = {}  # running steps still calling, by platform: who gets a turn
        self._events: asyncio.Queue[asyncio.Future[None] | None] | None = None

    # -- state -------------------------------------------------------------------

    async def _persist(self, doc: StateDoc) -> None:
        """Make ``doc`` (serial bumped) the state; return once the backend holds it.

        Writes are group commits: one at a time, in a worker thread so that the
        event loop (every other step's HTTP) runs on while it syncs to disk, each
        carrying every change made while the previous one was under way. No step
        goes on (calls a platform after its intent, say) before its change is durable.
        """
        self.state = doc.bumped()
        if self.write_failure is not None:  # nothing is durable any more but the fallback file
            self._save_fallback(self.state)
            raise self.write_failure
        serial = self.state.serial
        while self._written < serial:
            if self._writer is None or self._writer.done():
                self._writer = asyncio.ensure_future(self._write(self.state))
            await asyncio.shield(self._writer)
        # counted per change made durable, not per physical write: how many changes a
        # group commit carries depends on timing, the changes themselves do not
        crashpoints.reached("state-write")

    async def _write(self, doc: StateDoc) -> None:
        try:
            with timings.measure("state.write"):
                await asyncio.to_thread(self.backend.write, doc)
        except (OSError, StateError) as exc:
            saved = self._save_fallback(self.state)
            where = f"it is saved in {saved}" if saved else "no fallback file could be written either"
            self.write_failure = StateWriteFailed(
                f"the state could not be written to {self.backend.describe()}: {exc}; this apply stopped "
                f"starting steps. What it did is recorded in memory and {where}. Make the state "
                f"writable, then run `reconciler state push {self.stack.file} {saved or 'FILE'}` and "
                "`reconciler apply` again"
            )
            raise self.write_failure from None
        self._written = doc.serial

    def fallback_path(self) -> Path:
        """Where the state goes when its backend cannot take it: beside the stack file."""
        return Path(self.stack.file).parent / f"{self.stack.name}.state-fallback.json"

    def _save_fallback(self, doc: StateDoc) -> Path | None:
        """Write ``doc`` to :meth:`fallback_path` (atomically, mode 0600); ``None`` when that fails too."""
        path = self.fallback_path()
        tmp = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(doc.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError:
            return None
        return path

    async def _journal(
        self,
        step: Step,
        phase: str,
        token: str,
        *,
        id: str | None = None,
        scope: Mapping[str, str] | None = None,
        detail: str | None = None,
        inputs: Mapping[str, Any] | None = None,
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
            inputs=dict(inputs or {}),
        )
        await self._persist(self.state.with_journal(entry))

    async def _record(
        self,
        change: Change,
        live: Live,
        provider: Provider,
        address: str | None = None,
        sent: Mapping[str, Any] | None = None,
    ) -> None:
        """Record ``live``; input-only attributes are the values ``sent`` (never returned by the platform)."""
        spec = provider.kinds[change.kind]
        rs = ResourceState(
            address=address or change.address,
            platform=change.platform,
            kind=change.kind,
            id=live.id,
            name=live.name or change.name,
            scope=provider.scope_of(change.kind, live.attributes),
            attributes=spec.with_inputs(live.attributes, sent or {}),
            status=live.status,
            dependencies=tuple(change.depends_on),
        )
        await self._persist(self.state.with_resource(rs))

    # -- desired values at apply time ----------------------------------------------

    def _desired(self, change: Change, provider: Provider) -> dict[str, Any]:
        res = self.stack.resources[change.address]
        known = _Recorded(self.state.resources)
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
        turn = _Turn(self, step.change.platform)
        try:
            await self._carry_out(step, turn)
        finally:
            turn.close()

    def _turn_is_free(self) -> None:
        if self._events is not None:
            self._events.put_nowait(None)  # wake the loop in _run(): another step may start

    async def _carry_out(self, step: Step, turn: _Turn) -> None:
        c = step.change
        provider = self.providers[c.platform]
        spec = provider.kinds[c.kind]
        timeout = float(getattr(provider, "wait_timeout", 1800.0))
        token = uuid.uuid4().hex
        if step.op == "forget":
            await self._persist(self.state.without_resource(c.address))
            return
        if step.op == "wait":  # left provisioning by an interrupted apply: wait, then record it ready
            held = self.state.resources[c.address]
            turn.leave()
            ready = await self._wait(provider, c.kind, held.id, held.scope, "ready", timeout)
            if ready is not None:
                if spec.list_omits:
                    ready = await provider.read(c.kind, ready.id, held.scope) or ready
                await self._record(c, ready, provider, sent=held.attributes)
            return
        if step.op in ("delete", "delete-deposed"):
            address = c.address + DEPOSED if step.op == "delete-deposed" else c.address
            rs = self.state.resources.get(address)
            if rs is None:
                return
            await self._journal(step, "intent", token, id=rs.id)
            await provider.delete(c.kind, rs.id, rs.scope)
            turn.leave()
            if spec.asynchronous:
                await self._wait(provider, c.kind, rs.id, rs.scope, "gone", timeout)
            await self._persist(self.state.without_resource(address))
            await self._journal(step, "done", token, id=rs.id)
            return
        desired = self._desired(c, provider)
        if step.op == "create":
            if c.action is Action.REPLACE and c.create_before_destroy and c.address in self.state.resources:
                old = self.state.resources[c.address]
                deposed = old.model_copy(update={"address": c.address + DEPOSED})
                await self._persist(self.state.without_resource(c.address).with_resource(deposed))
            scope = provider.scope_of(c.kind, desired)
            inputs = {k: v for k, v in spec.with_inputs({}, desired).items() if k not in spec.secrets}
            await self._journal(step, "intent", token, scope=scope, inputs=inputs)
            live = await self._create(c, provider, desired, scope, token)
            turn.leave()
            await self._record(c, live, provider, sent=desired)
            await self._journal(step, "done", token, id=live.id)
        else:
            rs = self.state.resources[c.address]
            # the live attributes the plan saw (out-of-band changes included), not the recorded ones
            seen = c.before if c.before is not None else rs.attributes
            before = Live(id=rs.id, attributes=seen, status=rs.status, name=rs.name)
            await self._journal(step, "intent", token, id=rs.id)
            live = await self._update(c, provider, before, desired)
            turn.leave()
            await self._record(c, live, provider, sent=desired)
            await self._journal(step, "done", token, id=live.id)
        if spec.asynchronous:
            crashpoints.reached("wait")
            ready = await self._wait(
                provider, c.kind, live.id, provider.scope_of(c.kind, live.attributes), "ready", timeout
            )
            if ready is not None and spec.list_omits:  # watched through brief list items: read the detail
                scope = provider.scope_of(c.kind, ready.attributes)
                ready = await provider.read(c.kind, ready.id, scope) or ready
            if ready is not None:
                await self._record(c, ready, provider, sent=desired)
                await self._health_gate(c, provider, ready)

    async def _wait(
        self, provider: Provider, kind: str, id: str, scope: Mapping[str, str], until: Until, timeout: float
    ) -> Live | None:
        """Wait on the apply's shared watcher (the step has left its turn already).

        The watcher reads list pages; where their items are brief infos, a failure
        is read again in detail, which carries the platform's own error code and message.
        """
        try:
            return await self._unless_stopped(self.watcher.wait(provider, kind, id, scope, until, timeout))
        except ProviderError:
            if not provider.kinds[kind].list_omits:
                raise
            detail = await provider.read(kind, id, scope)
            if detail is None or provider.kinds[kind].phase(id, detail) is not Phase.FAILED:
                raise
            provider.settled(kind, id, detail, until)  # raises the detailed error
            raise

    async def _unless_stopped(self, waiting: Awaitable[Live | None]) -> Live | None:
        """``waiting``'s answer, or :class:`_StoppedWaiting` once a stop is requested first."""
        task = asyncio.ensure_future(waiting)
        stopped = asyncio.ensure_future(self.stop.event().wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise _StoppedWaiting
        return task.result()

    async def _health_gate(self, c: Change, provider: Provider, live: Live) -> None:
        """A stack's health gate: one invocation must answer in time, else the step fails."""
        res = self.stack.resources.get(c.address)
        check = res.health_check if res is not None else None
        if check is None:
            return
        probe = getattr(provider, "probe", None)
        if probe is None:
            raise ApplyError(
                f"{c.address}: platform {c.platform} has no invocation to run a health_check with"
            )
        self.progress(Event(c.address, "health", "start"))
        await probe(c.kind, live, check.prompt, check.timeout)

    async def _create(
        self,
        c: Change,
        provider: Provider,
        desired: Mapping[str, Any],
        scope: Mapping[str, str],
        token: str,
    ) -> Live:
        """Create once; after a transient failure, read the platform before any second attempt.

        A create whose answer was lost may have landed: the object is looked up by
        name and adopted if it is there, so nothing is ever created twice.
        """
        name = provider.kinds[c.kind].identity_of(desired)
        for attempt in range(self.create_attempts):
            try:
                return await provider.create(c.kind, desired, token=token)
            except ProviderError as exc:
                if not exc.retryable or attempt + 1 >= self.create_attempts:
                    raise
                if isinstance(name, str):
                    recorded = {rs.id for rs in self.state.resources.values()}
                    found = await find_untracked(provider, c.kind, name, scope, recorded, token=token)
                    if found is not None:
                        self.progress(Event(c.address, "create", "adopted", 0.0, found.id))
                        return found
                await self.sleep(min(8.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")

    async def _update(self, c: Change, provider: Provider, before: Live, desired: Mapping[str, Any]) -> Live:
        """Update; after a transient failure (the answer lost), read the object and retry only
        while it still differs from ``desired``: an update that landed is not sent again."""
        spec = provider.kinds[c.kind]
        res = self.stack.resources.get(c.address)
        ignore = res.lifecycle.ignore_changes if res is not None else ()
        for attempt in range(self.create_attempts):
            try:
                return await provider.update(c.kind, before, desired)
            except ProviderError as exc:
                if not exc.retryable or attempt + 1 >= self.create_attempts:
                    raise
                scope = provider.scope_of(c.kind, {**before.attributes, **desired})
                live = await provider.read(c.kind, before.id, scope)
                if live is None:
                    raise
                seen = spec.with_inputs(live.attributes, desired)
                if not diff_attributes(desired, seen, spec, ignore):
                    return live  # it landed
                before = live
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
        with timings.measure("apply"):
            try:
                return await self._run()
            finally:
                await self.watcher.aclose()

    async def _complete_half_recorded(self) -> None:
        """Record what the plan read of objects whose create was recorded from its answer alone
        (the read-back failed: no status, fewer attributes than a read shows) when a step of this
        plan depends on them: it may need what only a read shows."""
        doc = self.state
        needed = {d for c in self.plan.actionable if c.action is not Action.DELETE for d in c.depends_on}
        for c in self.plan.changes:
            rs = doc.resources.get(c.address)
            if c.address not in needed or c.action is not Action.NOOP or c.before is None:
                continue
            if rs is None or rs.status is not None or not set(c.before) - set(rs.attributes):
                continue
            provider = self.providers.get(c.platform)
            if provider is None or c.kind not in provider.kinds:
                continue
            seen = provider.kinds[c.kind].with_inputs(c.before, rs.attributes)
            if seen != rs.attributes:
                doc = doc.with_resource(rs.model_copy(update={"attributes": seen}))
        if doc is not self.state:
            await self._persist(doc)

    async def _run(self) -> ApplyReport:
        await self._complete_half_recorded()
        steps, needs = expand(self.plan, self.state)
        needs = ordered_by_limits(self.plan, self.providers, needs)  # a smaller limit: its users first
        report = ApplyReport()
        keys = list(steps)
        order = {key: i for i, key in enumerate(keys)}
        unmet = {key: len(n) for key, n in needs.items()}
        dependants: dict[str, list[str]] = {}
        for key, n in needs.items():
            for first in n:
                dependants.setdefault(first, []).append(key)
        ready: dict[str, list[int]] = {}  # per platform, a heap: plan order

        def make_ready(key: str) -> None:
            heapq.heappush(ready.setdefault(steps[key].change.platform, []), order[key])

        def next_turn() -> str:
            """The first ready step of the platform with the fewest steps calling it (ties: plan order)."""
            platform = min(
                (p for p, heap in ready.items() if heap), key=lambda p: (self._calling.get(p, 0), ready[p][0])
            )
            return keys[heapq.heappop(ready[platform])]

        for key in keys:
            if unmet[key] == 0:
                make_ready(key)
        pending = set(keys)
        running: dict[asyncio.Future[None], Step] = {}
        start_times: dict[str, float] = {}
        stopping = False
        events: asyncio.Queue[asyncio.Future[None] | None] = asyncio.Queue()
        self._events = events
        stop_watch = asyncio.ensure_future(self.stop.event().wait())
        stop_watch.add_done_callback(lambda _: events.put_nowait(None))  # wake the loop: start nothing more

        while pending or running:
            if self.stop.requested and not stopping:
                stopping = True
                report.interrupted = self.stop.reason
            if not stopping:
                while len(running) - self._idle < self.parallelism and any(ready.values()):
                    key = next_turn()
                    platform = steps[key].change.platform
                    self._calling[platform] = self._calling.get(platform, 0) + 1
                    pending.discard(key)
                    start_times[key] = time.monotonic()
                    future = asyncio.ensure_future(self._tracked(steps[key]))
                    future.add_done_callback(events.put_nowait)
                    running[future] = steps[key]
            if not running:
                break
            batch = [await events.get()]
            while not events.empty():
                batch.append(events.get_nowait())
            for fut in batch:
                if fut is None or fut not in running:  # a step left its turn
                    continue
                step = running.pop(fut)
                platform = step.change.platform
                self._calling[platform] = self._calling.get(platform, 0) - 1
                exc = fut.exception()
                elapsed = time.monotonic() - start_times[step.key]
                if exc is None:
                    report.done.append(Event(step.change.address, step.op, "done", elapsed))
                    for later in dependants.get(step.key, ()):
                        unmet[later] -= 1
                        if unmet[later] == 0:
                            make_ready(later)
                    continue
                if isinstance(exc, _StoppedWaiting):
                    report.provisioning.append(step)
                    continue
                if not isinstance(exc, ReconcilerError):
                    raise exc
                err = exc.at(step.change.address) if isinstance(exc, ProviderError) else exc
                report.failed.append((step, err))
                self.progress(Event(step.change.address, step.op, "failed", elapsed, str(err)))
                stopping = True
        stop_watch.cancel()
        self._events = None
        if self.stop.requested and report.interrupted is None and (pending or report.provisioning):
            report.interrupted = self.stop.reason
        if pending and not report.failed and report.interrupted is None:
            # nothing failed and nothing stopped it, yet steps never became ready: a cycle
            stuck = [steps[key] for key in keys if key in pending]
            names = ", ".join(step.key for step in stuck)
            error = ApplyError(f"these steps wait on each other and cannot run (a bug in ordering): {names}")
            report.failed.append((stuck[0], error))
            self.progress(Event(stuck[0].change.address, stuck[0].op, "failed", 0.0, str(error)))
            pending.discard(stuck[0].key)
        for key in keys:
            if key in pending:
                report.skipped.append(steps[key])
                if report.interrupted is None:
                    self.progress(Event(steps[key].change.address, steps[key].op, "skipped"))
        if report.ok:  # interrupted too: every journaled call has its result by now
            await self._finish()
        report.state = self.state
        return report

    async def _finish(self) -> None:
        known = _Recorded(self.state.resources)
        outputs = {k: resolve(v, self.stack, known) for k, v in self.stack.outputs.items()}
        outputs = {} if self.plan.destroy else {k: (None if v is UNKNOWN else v) for k, v in outputs.items()}
        doc = self.state.with_outputs(outputs).cleared_journal()
        if doc != self.state:
            await self._persist(doc)


class _Turn:
    """A running step's claim on one of the apply's ``parallelism`` turns.

    Held while the step calls its platform (its intent written first); left
    once the create, update or delete call has answered, so that recording
    the result and waiting for the object to settle hold no turn.
    """

    def __init__(self, applier: Applier, platform: str) -> None:
        self.applier = applier
        self.platform = platform
        self.held = True

    def leave(self) -> None:
        if self.held:
            self.held = False
            a = self.applier
            a._idle += 1
            a._calling[self.platform] = a._calling.get(self.platform, 0) - 1
            a._turn_is_free()

    def close(self) -> None:
        """The step is over: undo :meth:`leave` (the apply's loop counts running steps itself)."""
        if not self.held:
            self.held = True
            a = self.applier
            a._idle -= 1
            a._calling[self.platform] = a._calling.get(self.platform, 0) + 1


class _Recorded(Mapping[str, Mapping[str, Any]]):
    """Recorded attributes (plus ``id``) by address, what references resolve against.

    Built per lookup: a step reads the few addresses it references, so a step
    costs the same whatever the size of the state.
    """

    def __init__(self, resources: Mapping[str, ResourceState]) -> None:
        self._resources = resources

    def __getitem__(self, address: str) -> Mapping[str, Any]:
        rs = self._resources[address]
        return {**rs.attributes, "id": rs.id}

    def __contains__(self, address: object) -> bool:
        return address in self._resources

    def __iter__(self) -> Iterator[str]:
        return iter(self._resources)

    def __len__(self) -> int:
        return len(self._resources)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value)]
