"""An update whose answer is lost is read back: sent again only while the object still differs."""

from __future__ import annotations

import asyncio

from reconciler import operations
from reconciler.stack.spec import Stack
from tests.fakes import FakeProvider, MemoryBackend, res, stack_of


def apply(stack: Stack, p: FakeProvider, b: MemoryBackend) -> operations.ApplyOutcome:
    async def go() -> operations.ApplyOutcome:
        plan, _, _ = await operations.plan_async(stack, b, {"fake": p})  # type: ignore[arg-type]
        return await operations.apply_async(plan, stack, b, {"fake": p})  # type: ignore[arg-type]

    return asyncio.run(go())


def workspace(description: str) -> Stack:
    return stack_of(res("workspaces.w", {"name": "w", "description": description}))


def updates(p: FakeProvider) -> int:
    return sum(1 for op, _ in p.calls if op == "update")


def test_an_update_that_landed_but_lost_its_answer_is_not_sent_again() -> None:
    p, b = FakeProvider(), MemoryBackend()
    assert apply(workspace("one"), p, b).report.ok
    p.lose_on.add(("update", "w"))
    outcome = apply(workspace("two"), p, b)
    assert outcome.report.ok, outcome.report.failed
    assert updates(p) == 1
    assert b.read().resources["workspaces.w"].attributes["description"] == "two"
    assert [o["description"] for o in p.objects.values()] == ["two"]


def test_an_update_lost_on_the_way_is_sent_again_and_lands() -> None:
    p, b = FakeProvider(), MemoryBackend()
    assert apply(workspace("one"), p, b).report.ok
    p.drop_on.add(("update", "w"))
    outcome = apply(workspace("two"), p, b)
    assert outcome.report.ok, outcome.report.failed
    assert updates(p) == 2
    assert [o["description"] for o in p.objects.values()] == ["two"]
    assert b.read().resources["workspaces.w"].attributes["description"] == "two"


def test_an_update_refused_by_the_platform_is_not_retried() -> None:
    p, b = FakeProvider(), MemoryBackend()
    assert apply(workspace("one"), p, b).report.ok
    p.fail_on.add(("update", "w"))
    outcome = apply(workspace("two"), p, b)
    assert not outcome.report.ok
    assert updates(p) == 1
    assert (
        str(outcome.report.failed[0][1])
        == "workspaces.w: fake update failed: HTTP 400 Fake.Refused: update of w refused"
    )
