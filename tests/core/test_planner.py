"""Planner laws over plain values: no network, no files."""

from __future__ import annotations

import pytest

from reconciler.errors import PolicyError
from reconciler.plan import Action
from reconciler.planner import build_plan
from reconciler.providers.base import UNKNOWN, Live
from reconciler.stack.spec import Lifecycle
from reconciler.state.document import ResourceState, StateDoc
from tests.fakes import FakeProvider, res, stack_of


def recorded(*items: tuple[str, str, dict[str, object], tuple[str, ...]]) -> StateDoc:
    doc = StateDoc.new("t")
    for address, oid, attrs, deps in items:
        doc = doc.with_resource(
            ResourceState(
                address=address, platform="fake", kind="thing", id=oid, attributes=attrs, dependencies=deps
            )
        )
    return doc


def live(oid: str, **attrs: object) -> Live:
    return Live(id=oid, attributes=attrs, status="RUNNING")


P = {"fake": FakeProvider()}


def test_empty_state_plans_creates_in_dependency_order_with_unknown_ids() -> None:
    stack = stack_of(
        res("deployments.d", {"name": "d"}, refs={"endpoint": "endpoints.e"}),
        res("endpoints.e", {"name": "e"}, refs={"workspace": "workspaces.w"}),
        res("workspaces.w", {"name": "w"}),
    )
    plan = build_plan(stack, None, {}, P)
    assert [c.address for c in plan.changes] == ["workspaces.w", "endpoints.e", "deployments.d"]
    assert all(c.action is Action.CREATE for c in plan.changes)
    assert plan.change("endpoints.e").after["workspace_id"] is UNKNOWN  # type: ignore[index,union-attr]
    assert plan.counts() == {"create": 3, "update": 0, "replace": 0, "delete": 0}


def test_matching_live_is_noop_and_server_side_fields_are_ignored() -> None:
    stack = stack_of(res("workspaces.w", {"name": "w", "description": "x"}))
    state = recorded(("workspaces.w", "id-1", {"name": "w", "description": "x"}, ()))
    plan = build_plan(
        stack, state, {"workspaces.w": live("id-1", name="w", description="x", create_time="t")}, P
    )
    assert not plan.has_changes


def test_out_of_band_change_is_an_update_with_attribute_diff() -> None:
    stack = stack_of(res("workspaces.w", {"name": "w", "description": "x"}))
    state = recorded(("workspaces.w", "id-1", {"name": "w", "description": "x"}, ()))
    plan = build_plan(stack, state, {"workspaces.w": live("id-1", name="w", description="changed")}, P)
    (change,) = plan.actionable
    assert change.action is Action.UPDATE
    assert [(d.path, d.before, d.after) for d in change.diff] == [("description", "changed", "x")]


def test_force_new_field_replaces_and_dependants_follow() -> None:
    stack = stack_of(
        res("workspaces.w", {"name": "w", "zone": "b"}),
        res("endpoints.e", {"name": "e"}, refs={"workspace": "workspaces.w"}),
    )
    state = recorded(
        ("workspaces.w", "id-1", {"name": "w", "zone": "a"}, ()),
        ("endpoints.e", "id-2", {"name": "e", "workspace_id": "id-1"}, ("workspaces.w",)),
    )
    lv = {
        "workspaces.w": live("id-1", name="w", zone="a"),
        "endpoints.e": live("id-2", name="e", workspace_id="id-1"),
    }
    plan = build_plan(stack, state, lv, P)
    w, e = plan.changes
    assert w.action is Action.REPLACE and w.diff[0].forces_replacement
    # the endpoint's workspace id becomes unknown: an update (workspace_id is not force-new for "thing")
    assert e.action is Action.UPDATE and e.diff[0].after is UNKNOWN


def test_deleted_out_of_band_is_planned_as_create() -> None:
    stack = stack_of(res("workspaces.w", {"name": "w"}))
    state = recorded(("workspaces.w", "id-1", {"name": "w"}, ()))
    plan = build_plan(stack, state, {"workspaces.w": None}, P)
    (change,) = plan.actionable
    assert change.action is Action.CREATE and "out of band" in change.reason


def test_removed_from_stack_is_deleted_dependants_first() -> None:
    stack = stack_of()
    state = recorded(
        ("workspaces.w", "id-1", {"name": "w"}, ()),
        ("endpoints.e", "id-2", {"name": "e"}, ("workspaces.w",)),
    )
    lv = {"workspaces.w": live("id-1", name="w"), "endpoints.e": live("id-2", name="e")}
    plan = build_plan(stack, state, lv, P)
    assert [(c.address, c.action) for c in plan.changes] == [
        ("endpoints.e", Action.DELETE),
        ("workspaces.w", Action.DELETE),
    ]


def test_ignore_changes_hides_a_drifted_path() -> None:
    stack = stack_of(
        res(
            "workspaces.w",
            {"name": "w", "description": "x"},
            lifecycle=Lifecycle(ignore_changes=("description",)),
        )
    )
    state = recorded(("workspaces.w", "id-1", {"name": "w", "description": "x"}, ()))
    plan = build_plan(stack, state, {"workspaces.w": live("id-1", name="w", description="other")}, P)
    assert not plan.has_changes


def test_prevent_destroy_refuses_a_replacement() -> None:
    stack = stack_of(
        res("workspaces.w", {"name": "w", "zone": "b"}, lifecycle=Lifecycle(prevent_destroy=True))
    )
    state = recorded(("workspaces.w", "id-1", {"name": "w", "zone": "a"}, ()))
    with pytest.raises(PolicyError, match="prevent_destroy"):
        build_plan(stack, state, {"workspaces.w": live("id-1", name="w", zone="a")}, P)


def test_prevent_destroy_refuses_destroy() -> None:
    stack = stack_of(res("workspaces.w", {"name": "w"}, lifecycle=Lifecycle(prevent_destroy=True)))
    state = recorded(("workspaces.w", "id-1", {"name": "w"}, ()))
    with pytest.raises(PolicyError, match=r"workspaces\.w"):
        build_plan(stack, state, {"workspaces.w": live("id-1", name="w")}, P, destroy=True)


def test_same_inputs_same_plan() -> None:
    stack = stack_of(
        res("workspaces.w", {"name": "w"}),
        res("endpoints.e", {"name": "e"}, refs={"workspace": "workspaces.w"}),
    )
    assert build_plan(stack, None, {}, P) == build_plan(stack, None, {}, P)


def test_failed_live_status_is_replaced() -> None:
    stack = stack_of(res("workspaces.w", {"name": "w"}))
    state = recorded(("workspaces.w", "id-1", {"name": "w"}, ()))
    plan = build_plan(stack, state, {"workspaces.w": Live("id-1", {"name": "w"}, status="CREATE_FAILED")}, P)
    assert plan.actionable[0].action is Action.REPLACE
