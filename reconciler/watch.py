"""Waiting for asynchronous lifecycles without polling storms: one list read serves every waiter.

I/O at the edge: a :class:`Watcher` belongs to one apply. Waiters on the same
(platform, kind, scope) form a *group*; one polling loop per group reads the
kind's list pages (``provider.list(kind, scope)``) and resolves every waiter
on them, so a hundred deployments provisioning in one workspace cost one list
read per poll, not a hundred reads. Waiting holds no call slot: between polls
the loop sleeps outside the provider's pacing gates, and the page reads
themselves are ordinary paced calls.

What "settled" means is platform knowledge, asked of the provider's pure
:meth:`~reconciler.providers.base.Provider.settled`: True when the object
reached ``until``, False while it is on its way, ProviderError (the
platform's code and message) when it never will.

Polling schedule: each waiter has its own backoff, from ``first_delay`` to the
provider's ``poll_interval``; the group polls when the earliest waiter is due
(a poll serves the others too, ahead of their turn). A new waiter is due at
once. After a poll the group rests at least ``first_delay`` and at least twice
as long as the poll took, so that polls slowed by the platform's rate limit
(pages queued behind creates) leave most of the rate to the creates.
Deadlines are per waiter: ``min(timeout, provider.wait_timeout)``.

An object missing from a list is confirmed with one ``read`` before a verdict
(pages can shift while objects come and go between page reads, so one list
may miss an object). Kinds without a list call, and providers without
``settled``, wait through ``provider.wait`` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from reconciler.errors import ProviderError
from reconciler.providers.base import Live, Provider, Until

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
GroupKey = tuple[str, str, tuple[tuple[str, str], ...]]

FIRST_DELAY = 0.2
"""Seconds before a waiter's second look; also the shortest time between two polls of one group."""


@dataclass(eq=False)
class _Waiter:
    id: str
    until: Until
    future: asyncio.Future[Live | None]
    deadline: float
    limit: float
    due: float
    delay: float
    last: str = "not read yet"


@dataclass(eq=False)
class _Group:
    provider: Provider
    kind: str
    scope: Mapping[str, str]
    waiters: dict[_Waiter, None] = field(default_factory=dict)  # insertion-ordered set
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Watcher:
    """Shared waiting for one apply; see the module docstring.

    ``clock`` (monotonic seconds) and ``sleep`` are seams for tests. ``polls``
    counts the list reads made, by group, for tests and benchmarks.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        first_delay: float = FIRST_DELAY,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.first_delay = first_delay
        self._groups: dict[GroupKey, _Group] = {}
        self.polls: dict[GroupKey, int] = {}

    async def wait(
        self, provider: Provider, kind: str, id: str, scope: Mapping[str, str], until: Until, timeout: float
    ) -> Live | None:
        """Like :meth:`Provider.wait`: the object once ready (``None`` once gone); raises ProviderError
        for a failed lifecycle, a non-retryable read error, or ``timeout`` seconds without a verdict."""
        if not _watchable(provider, kind):
            return await provider.wait(kind, id, scope, until, timeout)
        limit = min(timeout, float(getattr(provider, "wait_timeout", timeout)))
        now = self._clock()
        loop = asyncio.get_running_loop()
        waiter = _Waiter(id, until, loop.create_future(), now + limit, limit, now, self.first_delay)
        key: GroupKey = (provider.platform, kind, tuple(sorted(scope.items())))
        group = self._groups.get(key)
        if group is None or group.task is None or group.task.done():
            group = _Group(provider, kind, dict(scope))
            self._groups[key] = group
            group.waiters[waiter] = None
            group.task = asyncio.ensure_future(self._poll(key, group))
        else:
            group.waiters[waiter] = None
            group.joined.set()
        try:
            return await asyncio.shield(waiter.future)
        except asyncio.CancelledError:
            group.waiters.pop(waiter, None)
            raise

    async def aclose(self) -> None:
        """Stop every polling loop (their waiters are cancelled)."""
        tasks = [g.task for g in self._groups.values() if g.task is not None and not g.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._groups.clear()

    # -- one group's loop ----------------------------------------------------------------

    async def _poll(self, key: GroupKey, group: _Group) -> None:
        rest_until: float | None = None  # no poll before this (the group's last poll was too recent)
        try:
            while group.waiters:
                now = self._clock()
                due = min(w.due for w in group.waiters)
                if rest_until is not None:
                    due = max(due, rest_until)
                deadline = min(w.deadline for w in group.waiters)
                pause = min(due, deadline) - now
                if pause > 0:
                    group.joined.clear()
                    await self._nap(group, pause)
                    continue
                started = self._clock()
                await self._poll_once(key, group, started)
                took = self._clock() - started
                # rest at least as long as the poll took: polls never take more than half of
                # what the platform's pacing lets through, however many groups there are
                rest_until = started + max(self.first_delay, 2 * took)
        except BaseException as exc:  # cancelled, or a bug: no waiter may hang
            for waiter in group.waiters:
                if not waiter.future.done():
                    if isinstance(exc, Exception):
                        waiter.future.set_exception(exc)
                    else:
                        waiter.future.cancel()
            group.waiters.clear()
            raise

    async def _nap(self, group: _Group, pause: float) -> None:
        """Sleep ``pause`` seconds, or less when a new waiter joins (it is due at once)."""
        sleeper = asyncio.ensure_future(self._sleep(pause))
        joined = asyncio.ensure_future(group.joined.wait())
        try:
            await asyncio.wait({sleeper, joined}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, joined):
                task.cancel()

    async def _poll_once(self, key: GroupKey, group: _Group, started: float) -> None:
        """One list read, a verdict for every waiter it can give one, and the next turn of the others."""
        provider, kind = group.provider, group.kind
        self.polls[key] = self.polls.get(key, 0) + 1
        waiters = list(group.waiters)
        try:
            found = {live.id: live for live in await provider.list(kind, group.scope)}
        except ProviderError as exc:
            if not exc.retryable:
                for waiter in waiters:
                    self._resolve(group, waiter, error=exc)
                return
            for waiter in waiters:
                waiter.last = f"last error: {exc}"
        else:
            absent = [w for w in waiters if w.id not in found]
            confirmed = await asyncio.gather(
                *(provider.read(kind, w.id, group.scope) for w in absent), return_exceptions=True
            )
            seen: dict[str, Live | BaseException | None] = dict(found)
            seen.update((w.id, answer) for w, answer in zip(absent, confirmed, strict=True))
            for waiter in waiters:
                self._judge(group, waiter, seen[waiter.id])
        now = self._clock()
        cap = _cap(provider, self.first_delay)
        for waiter in waiters:
            if waiter.future.done():
                continue
            if now >= waiter.deadline:
                until, limit = waiter.until, waiter.limit
                message = f"{kind} {waiter.id} did not become {until} within {limit:g}s ({waiter.last})"
                error = ProviderError(provider.platform, message, code="timeout", operation=_operation(kind))
                self._resolve(group, waiter, error=error)
            elif waiter.due <= started:  # its turn: back off (a poll ahead of its turn is a free look)
                waiter.due = started + waiter.delay
                waiter.delay = min(waiter.delay * 2, cap)

    def _judge(self, group: _Group, waiter: _Waiter, seen: Live | BaseException | None) -> None:
        if isinstance(seen, BaseException):  # the confirming read failed
            if not isinstance(seen, ProviderError):
                raise seen
            if seen.retryable:
                waiter.last = f"last error: {seen}"
            else:
                self._resolve(group, waiter, error=seen)
            return
        try:
            settled = group.provider.settled(group.kind, waiter.id, seen, waiter.until)
        except ProviderError as exc:
            self._resolve(group, waiter, error=exc)
            return
        if settled:
            self._resolve(group, waiter, live=seen if waiter.until == "ready" else None)
        else:
            waiter.last = f"last status: {seen.status if seen else 'absent'}"

    @staticmethod
    def _resolve(
        group: _Group, waiter: _Waiter, *, live: Live | None = None, error: BaseException | None = None
    ) -> None:
        group.waiters.pop(waiter, None)
        if waiter.future.done():
            return
        if error is not None:
            waiter.future.set_exception(error)
        else:
            waiter.future.set_result(live)


def _watchable(provider: Provider, kind: str) -> bool:
    spec = provider.kinds.get(kind)
    return spec is not None and spec.listable and callable(getattr(provider, "settled", None))


def _cap(provider: Provider, first_delay: float) -> float:
    interval = getattr(provider, "poll_interval", 1.0)
    return max(first_delay, float(interval) if isinstance(interval, int | float) else 1.0)


def _operation(kind: str) -> str:
    """``WaitServiceInstance`` for ``service_instance``: how the providers name their waits."""
    return "Wait" + "".join(part.capitalize() for part in kind.split("_"))
