"""The Watcher: shared list reads, the provider's verdicts, timeouts, fallbacks; a fake clock throughout."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.errors import ProviderError
from reconciler.providers.base import KindSpec, Live, Until
from reconciler.state.document import StateDoc
from reconciler.watch import Watcher


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Lifecycles:
    """A platform whose objects become RUNNING (or FAILED) at a set time; counts its calls."""

    platform = "fake"
    kinds = {
        "slow": KindSpec("slow", asynchronous=True),
        "unlisted": KindSpec("unlisted", asynchronous=True, listable=False),
    }
    poll_interval = 1.0
    wait_timeout = 600.0

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.ready_at: dict[str, float] = {}
        self.failing: set[str] = set()
        self.hidden_from_lists: set[str] = set()
        self.list_errors: list[ProviderError] = []
        self.calls: list[tuple[str, str]] = []

    def live(self, id: str) -> Live | None:
        if id not in self.ready_at:
            return None
        due = self.clock.now >= self.ready_at[id]
        status = ("FAILED" if id in self.failing else "RUNNING") if due else "CREATING"
        return Live(id=id, attributes={"id": id, "message": f"{id} ran out of capacity"}, status=status)

    async def list(self, kind: str, scope: Mapping[str, str]) -> list[Live]:
        self.calls.append(("list", kind))
        await asyncio.sleep(0)
        if self.list_errors:
            raise self.list_errors.pop(0)
        found = (self.live(id) for id in self.ready_at if id not in self.hidden_from_lists)
        return [live for live in found if live is not None]

    async def read(self, kind: str, id: str, scope: Mapping[str, str]) -> Live | None:
        self.calls.append(("read", id))
        return self.live(id)

    async def wait(
        self, kind: str, id: str, scope: Mapping[str, str], until: Until, timeout: float
    ) -> Live | None:
        self.calls.append(("wait", id))
        return self.live(id)

    def settled(self, kind: str, id: str, live: Live | None, until: Until) -> bool:
        if until == "gone":
            return live is None
        if live is None:
            raise ProviderError("fake", f"{id} is gone while waiting for it", code="not_found")
        if live.status == "FAILED":
            raise ProviderError("fake", str(live.attributes["message"]), code="FAILED")
        return live.status == "RUNNING"

    def count(self, op: str) -> int:
        return sum(1 for o, _ in self.calls if o == op)


def _run(clock: Clock, body: Any) -> Any:
    async def main() -> Any:
        watcher = Watcher(clock=clock, sleep=clock.sleep)
        try:
            return await body(watcher)
        finally:
            await watcher.aclose()

    return asyncio.run(main())


def test_a_waiter_gets_the_object_once_it_is_ready() -> None:
    clock = Clock()
    platform = Lifecycles(clock)
    platform.ready_at["a"] = clock.now + 2.5

    async def body(watcher: Watcher) -> Live | None:
        return await watcher.wait(platform, "slow", "a", {}, "ready", 60)

    live = _run(clock, body)
    assert live is not None and live.status == "RUNNING"
    assert platform.count("read") == 0 and platform.count("wait") == 0
    # backoff from 0.2 s up to the provider's poll_interval, as provider.wait does
    assert clock.sleeps[:4] == pytest.approx([0.2, 0.4, 0.8, 1.0])


def test_a_failed_lifecycle_raises_the_platforms_error_for_that_object_only() -> None:
    clock = Clock()
    platform = Lifecycles(clock)
    for id in ("ok", "doomed"):
        platform.ready_at[id] = clock.now + 1
    platform.failing.add("doomed")

    async def body(watcher: Watcher) -> list[Any]:
        waits = [watcher.wait(platform, "slow", id, {}, "ready", 60) for id in ("ok", "doomed")]
        return await asyncio.gather(*waits, return_exceptions=True)

    ok, doomed = _run(clock, body)
    assert isinstance(ok, Live) and ok.id == "ok"
    assert isinstance(doomed, ProviderError) and doomed.code == "FAILED"
    assert "doomed ran out of capacity" in str(doomed)


def test_each_waiter_keeps_its_own_deadline() -> None:
    clock = Clock()
    platform = Lifecycles(clock)
    platform.ready_at["never"] = clock.now + 10_000
    platform.ready_at["soon"] = clock.now + 3

    async def body(watcher: Watcher) -> list[Any]:
        waits = [
            watcher.wait(platform, "slow", "never", {}, "ready", 5),
            watcher.wait(platform, "slow", "soon", {}, "ready", 60),
        ]
        return await asyncio.gather(*waits, return_exceptions=True)

    never, soon = _run(clock, body)
    assert isinstance(never, ProviderError) and never.code == "timeout"
    assert "slow never did not become ready within 5s (last status: CREATING)" in str(never)
    assert isinstance(soon, Live)


def test_an_object_missing_from_a_list_is_confirmed_by_one_read() -> None:
    clock = Clock()
    platform = Lifecycles(clock)
    platform.ready_at["shifted"] = clock.now  # ready, but a page shift hides it from the lists
    platform.hidden_from_lists.add("shifted")

    async def body(watcher: Watcher) -> Live | None:
        return await watcher.wait(platform, "slow", "shifted", {}, "ready", 60)

    live = _run(clock, body)
    assert live is not None and platform.count("read") == 1


def test_gone_and_a_kind_without_a_list() -> None:
    clock = Clock()
    platform = Lifecycles(clock)

    async def body(watcher: Watcher) -> tuple[Any, Any]:
        gone = await watcher.wait(platform, "slow", "deleted", {}, "gone", 60)
        unlisted = await watcher.wait(platform, "unlisted", "x", {}, "ready", 60)
        return gone, unlisted

    assert _run(clock, body) == (None, None)
    assert platform.count("read") == 1  # the deleted object, absent from the list, confirmed gone
    assert platform.count("wait") == 1  # the unlisted kind waits the provider's way


def test_a_retryable_list_error_delays_a_permanent_one_fails_every_waiter() -> None:
    clock = Clock()
    platform = Lifecycles(clock)
    for id in ("a", "b"):
        platform.ready_at[id] = clock.now + 1
    platform.list_errors.append(ProviderError("fake", "busy", code="Throttled", status=429, retryable=True))

    async def first(watcher: Watcher) -> list[Any]:
        return await asyncio.gather(*(watcher.wait(platform, "slow", id, {}, "ready", 60) for id in "ab"))

    assert [live.id for live in _run(clock, first)] == ["a", "b"]

    platform.ready_at = {"c": clock.now + 5, "d": clock.now + 5}
    platform.list_errors.append(ProviderError("fake", "forbidden", code="Denied", status=403))

    async def second(watcher: Watcher) -> list[Any]:
        waits = (watcher.wait(platform, "slow", id, {}, "ready", 60) for id in "cd")
        return await asyncio.gather(*waits, return_exceptions=True)

    assert [getattr(e, "code", None) for e in _run(clock, second)] == ["Denied", "Denied"]


def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    clock = Clock()
    platform = Lifecycles(clock)
    platform.ready_at = {"a": clock.now + 3, "b": clock.now + 3}

    async def body(watcher: Watcher) -> Live | None:
        a = asyncio.ensure_future(watcher.wait(platform, "slow", "a", {}, "ready", 60))
        b = asyncio.ensure_future(watcher.wait(platform, "slow", "b", {}, "ready", 60))
        await asyncio.sleep(0)
        a.cancel()
        return await b

    live = _run(clock, body)
    assert live is not None and live.id == "b"


class Batch(Lifecycles):
    """Every object stays CREATING until ``size`` objects exist: ready only if all were created at once."""

    def __init__(self, clock: Clock, size: int) -> None:
        super().__init__(clock)
        self.size = size
        self.created: list[str] = []

    def desired(self, kind: str, attrs: Mapping[str, Any], refs: Mapping[str, Any]) -> dict[str, Any]:
        return dict(attrs)

    def scope_of(self, kind: str, attributes: Mapping[str, Any]) -> dict[str, str]:
        return {}

    async def create(self, kind: str, desired: Mapping[str, Any], *, token: str | None = None) -> Live:
        id = f"id-{desired['name']}"
        self.created.append(id)
        self.ready_at[id] = 0.0
        return Live(id=id, attributes=dict(desired), status="CREATING", name=str(desired["name"]))

    def live(self, id: str) -> Live | None:
        if id not in self.ready_at:
            return None
        status = "RUNNING" if len(self.created) >= self.size else "CREATING"
        return Live(id=id, attributes={"name": id.removeprefix("id-")}, status=status, name=id)

    async def aclose(self) -> None:
        return None


def test_steps_waiting_for_readiness_leave_their_turn_to_the_next() -> None:
    from reconciler.applier import Applier
    from reconciler.planner import build_plan
    from tests.fakes import MemoryBackend, res, stack_of

    specs = [res(f"deployments.d{n}", {"name": f"d{n}"}, kind="slow") for n in range(10)]
    stack = stack_of(*specs)
    stack = type(stack)(**{**stack.__dict__, "providers": {"fake": {}}})
    platform = Batch(Clock(), size=len(specs))

    async def main() -> Any:
        plan = build_plan(stack, None, {}, {"fake": platform})
        applier = Applier(plan, stack, {"fake": platform}, MemoryBackend(), StateDoc.new("t"), parallelism=2)
        return await asyncio.wait_for(applier.run(), timeout=30)

    report = asyncio.run(main())
    # with parallelism 2, ten objects could only all exist at once because waiting holds no turn
    assert report.ok and len(platform.created) == 10
    assert platform.count("read") == 0 and platform.count("list") <= 5
