"""Applier behaviour with a fake provider that records call order."""

from __future__ import annotations

import asyncio

from reconciler.applier import Applier, expand
from reconciler.plan import Action
from reconciler.planner import build_plan
from reconciler.refresh import refresh
from reconciler.stack.spec import Lifecycle
from reconciler.state.document import StateDoc
from tests.fakes import FakeProvider, MemoryBackend, res, stack_of


def converge(stack, provider, backend, parallelism=10):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        state = backend.read()
        live = await refresh(state, {"fake": provider})
        plan = build_plan(stack, state, live, {"fake": provider})
        applier = Applier(
            plan, stack, {"fake": provider}, backend, state or StateDoc.new("t"), parallelism=parallelism
        )
        return plan, await applier.run()

    return asyncio.run(go())


def three_tier():  # type: ignore[no-untyped-def]
    return stack_of(
        res("workspaces.w", {"name": "w"}),
        res("endpoints.e", {"name": "e"}, refs={"workspace": "workspaces.w"}),
        res("deployments.d", {"name": "d"}, refs={"endpoint": "endpoints.e", "workspace": "workspaces.w"}),
    )


def test_apply_creates_in_order_and_records_each_step() -> None:
    p, b = FakeProvider(), MemoryBackend()
    _plan, report = converge(three_tier(), p, b)
    assert report.ok
    creates = [name for op, name in p.calls if op == "create"]
    assert creates == ["w", "e", "d"]
    doc = b.read()
    assert sorted(doc.resources) == ["deployments.d", "endpoints.e", "workspaces.w"]
    assert doc.resources["endpoints.e"].attributes["workspace_id"] == doc.resources["workspaces.w"].id
    assert doc.journal == ()
    # a state write after every step: at least intent + result per resource
    assert len(b.writes) >= 6


def test_apply_then_plan_is_empty() -> None:
    p, b = FakeProvider(), MemoryBackend()
    converge(three_tier(), p, b)
    plan, _report = converge(three_tier(), p, b)
    assert not plan.has_changes


def test_failure_stops_dependants_and_state_is_true_to_what_was_done() -> None:
    p, b = FakeProvider(), MemoryBackend()
    p.fail_on.add(("create", "e"))
    _plan, report = converge(three_tier(), p, b)
    assert not report.ok
    ((step, err),) = report.failed
    assert step.change.address == "endpoints.e"
    assert "Fake.Refused" in str(err) and "endpoints.e" in str(err)
    assert [s.change.address for s in report.skipped] == ["deployments.d"]
    assert sorted(b.read().resources) == ["workspaces.w"]
    assert set(b.read().resources["workspaces.w"].id for _ in [0]) <= set(p.objects)


def test_deletes_run_dependants_first() -> None:
    p, b = FakeProvider(), MemoryBackend()
    converge(three_tier(), p, b)
    p.calls.clear()
    converge(stack_of(), p, b)
    deletes = [name for op, name in p.calls if op == "delete"]
    assert deletes == ["d", "e", "w"]
    assert b.read().resources == {} and p.objects == {}


def test_replace_deletes_then_creates_and_create_before_destroy_reverses() -> None:
    p, b = FakeProvider(), MemoryBackend()
    converge(stack_of(res("workspaces.w", {"name": "w", "zone": "a"})), p, b)
    p.calls.clear()
    plan, report = converge(stack_of(res("workspaces.w", {"name": "w", "zone": "b"})), p, b)
    assert plan.actionable[0].action is Action.REPLACE
    assert [op for op, _ in p.calls if op in ("create", "delete")] == ["delete", "create"]
    p.calls.clear()
    cbd = Lifecycle(create_before_destroy=True)
    plan, report = converge(stack_of(res("workspaces.w", {"name": "w", "zone": "c"}, lifecycle=cbd)), p, b)
    assert report.ok
    assert [op for op, _ in p.calls if op in ("create", "delete")] == ["create", "delete"]
    assert list(b.read().resources) == ["workspaces.w"] and len(p.objects) == 1


def test_expand_orders_replace_of_dependency_after_dependant_delete() -> None:
    p, b = FakeProvider(), MemoryBackend()
    converge(three_tier(), p, b)
    stack = stack_of(
        res("workspaces.w", {"name": "w", "zone": "new"}),
        res("endpoints.e", {"name": "e", "zone": "x"}, refs={"workspace": "workspaces.w"}),
    )
    state = b.read()
    live = asyncio.run(refresh(state, {"fake": p}))
    plan = build_plan(stack, state, live, {"fake": p})
    _steps, needs = expand(plan, state)
    assert "delete deployments.d" in needs["delete endpoints.e"]
    assert "delete endpoints.e" in needs["delete workspaces.w"]
    assert "create workspaces.w" in needs["create endpoints.e"]


def test_parallelism_one_still_converges() -> None:
    p, b = FakeProvider(), MemoryBackend()
    stack = stack_of(*(res(f"workspaces.w{i}", {"name": f"w{i}"}) for i in range(25)))
    _plan, report = converge(stack, p, b, parallelism=1)
    assert report.ok and len(p.objects) == 25


def test_outputs_are_resolved_after_apply() -> None:
    from reconciler.stack.spec import Deferred

    p, b = FakeProvider(), MemoryBackend()
    stack = stack_of(
        res("workspaces.w", {"name": "w"}),
        outputs={"wid": Deferred("{{ workspaces.w.id }}", ("workspaces.w",))},
    )
    converge(stack, p, b)
    doc = b.read()
    assert doc.outputs == {"wid": doc.resources["workspaces.w"].id}
