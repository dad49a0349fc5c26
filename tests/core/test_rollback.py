"""Rollback is one more plan: after a failed apply the fake platform is as it was."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler import operations
from reconciler.stack.spec import Lifecycle, Stack
from tests.fakes import FakeProvider, MemoryBackend, res, stack_of


def apply(
    stack: Stack, p: FakeProvider, b: MemoryBackend, *, rollback: bool = True
) -> operations.ApplyOutcome:
    async def go() -> operations.ApplyOutcome:
        plan, _, _ = await operations.plan_async(stack, b, {"fake": p})  # type: ignore[arg-type]
        return await operations.apply_async(plan, stack, b, {"fake": p}, rollback=rollback)  # type: ignore[arg-type]

    return asyncio.run(go())


def snapshot(p: FakeProvider) -> dict[str, dict[str, Any]]:
    return {o["name"]: {k: v for k, v in o.items() if k != "_kind"} for o in p.objects.values()}


def base(zone: str = "z1") -> Stack:
    return stack_of(
        res("workspaces.w", {"name": "w", "description": "one", "zone": zone}),
        res("endpoints.e", {"name": "e"}, refs={"workspace": "workspaces.w"}),
    )


def test_failed_create_rolls_back_the_creates_that_finished() -> None:
    p, b = FakeProvider(), MemoryBackend()
    stack = stack_of(
        *base().resources.values(), res("deployments.d", {"name": "d"}, refs={"endpoint": "endpoints.e"})
    )
    p.fail_on.add(("create", "d"))
    outcome = apply(stack, p, b)
    assert not outcome.report.ok and outcome.restored
    assert p.objects == {}
    assert b.read().resources == {}
    assert [op for op, _ in p.calls if op in ("create", "delete")] == [
        "create",
        "create",
        "create",
        "delete",
        "delete",
    ]


def test_no_rollback_keeps_what_succeeded() -> None:
    p, b = FakeProvider(), MemoryBackend()
    stack = stack_of(
        *base().resources.values(), res("deployments.d", {"name": "d"}, refs={"endpoint": "endpoints.e"})
    )
    p.fail_on.add(("create", "d"))
    outcome = apply(stack, p, b, rollback=False)
    assert outcome.rollback is None
    assert sorted(b.read().resources) == ["endpoints.e", "workspaces.w"]
    assert len(p.objects) == 2


def test_update_is_put_back() -> None:
    p, b = FakeProvider(), MemoryBackend()
    apply(base(), p, b)
    before = snapshot(p)
    changed = stack_of(
        res("workspaces.w", {"name": "w", "description": "two", "zone": "z1"}),
        res("endpoints.e", {"name": "e"}, refs={"workspace": "workspaces.w"}),
        res("deployments.d", {"name": "d"}, refs={"endpoint": "endpoints.e"}),
    )
    p.fail_on.add(("create", "d"))
    outcome = apply(changed, p, b)
    assert outcome.restored
    assert snapshot(p) == before
    assert b.read().resources["workspaces.w"].attributes["description"] == "one"


def test_deleted_resource_is_recreated_and_dependants_repointed() -> None:
    p, b = FakeProvider(), MemoryBackend()
    apply(base(), p, b)
    old_ws = b.read().resources["workspaces.w"].id
    # the new stack drops the endpoint, replaces the workspace (zone is force-new) and adds a failing one
    changed = stack_of(
        res("workspaces.w", {"name": "w", "description": "one", "zone": "z2"}),
        res("deployments.x", {"name": "x"}, refs={"workspace": "workspaces.w"}),
    )
    p.fail_on.add(("create", "x"))
    outcome = apply(changed, p, b)
    assert outcome.restored, outcome
    doc = b.read()
    assert sorted(doc.resources) == ["endpoints.e", "workspaces.w"]
    new_ws = doc.resources["workspaces.w"].id
    assert new_ws != old_ws and new_ws in p.objects
    # the endpoint was deleted by the apply and re-created by the rollback, pointing at the live workspace
    assert doc.resources["endpoints.e"].attributes["workspace_id"] == new_ws
    assert sorted(snapshot(p)) == ["e", "w"]
    assert snapshot(p)["w"]["zone"] == "z1"


def test_create_before_destroy_gets_the_old_object_back() -> None:
    p, b = FakeProvider(), MemoryBackend()
    cbd = Lifecycle(create_before_destroy=True)
    apply(stack_of(res("workspaces.w", {"name": "w", "zone": "a"}, lifecycle=cbd)), p, b)
    old_id = b.read().resources["workspaces.w"].id
    changed = stack_of(
        res("workspaces.w", {"name": "w", "zone": "b"}, lifecycle=cbd),
        res("endpoints.e", {"name": "e"}, refs={"workspace": "workspaces.w"}),
    )
    p.fail_on.add(("create", "e"))
    outcome = apply(changed, p, b)
    assert outcome.restored
    assert list(p.objects) == [old_id]
    assert b.read().resources["workspaces.w"].id == old_id


def test_rollback_that_fails_reports_incomplete_and_state_is_true() -> None:
    p, b = FakeProvider(), MemoryBackend()
    stack = stack_of(
        *base().resources.values(), res("deployments.d", {"name": "d"}, refs={"endpoint": "endpoints.e"})
    )
    p.fail_on |= {("create", "d"), ("delete", "e")}
    outcome = apply(stack, p, b)
    assert not outcome.restored
    assert outcome.rollback is not None and outcome.rollback.failed
    live_ids = set(p.objects)
    assert {rs.id for rs in b.read().resources.values()} == live_ids


def test_lost_create_response_is_adopted_not_duplicated() -> None:
    p, b = FakeProvider(), MemoryBackend()
    p.lose_on.add(("create", "w"))
    outcome = apply(base(), p, b)
    assert outcome.report.ok
    assert sorted(snapshot(p)) == ["e", "w"] and len(p.objects) == 2
    assert b.read().resources["workspaces.w"].id in p.objects


def test_outputs_follow_the_objects_a_rollback_restores() -> None:
    from reconciler.stack.spec import Deferred

    p, b = FakeProvider(), MemoryBackend()
    outputs = {
        "wid": Deferred(template="{{ workspaces.w.id }}", refs=("workspaces.w",)),
        "zone": Deferred(template="{{ workspaces.w.zone }}", refs=("workspaces.w",)),
    }
    first = stack_of(*base().resources.values(), outputs=outputs)
    assert apply(first, p, b).report.ok
    before = b.read()
    assert before.outputs == {"wid": before.resources["workspaces.w"].id, "zone": "z1"}
    # a new zone replaces the workspace; the deployment fails; rollback re-creates the z1 workspace
    changed = stack_of(
        *base("z2").resources.values(),
        res("deployments.d", {"name": "d"}, refs={"endpoint": "endpoints.e"}),
        outputs=outputs,
    )
    p.fail_on.add(("create", "d"))
    outcome = apply(changed, p, b)
    assert outcome.restored
    after = b.read()
    restored_id = after.resources["workspaces.w"].id
    assert restored_id != before.resources["workspaces.w"].id  # a new object, as it was
    assert after.outputs == {"wid": restored_id, "zone": "z1"}
