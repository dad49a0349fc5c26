"""Ordering by constraint: one apply changes a parent's limit and its children's use of it.

A Fabric endpoint reserves ``mu`` (``reserved_resource.mu.max``); its service
instances together may scale to that maximum (each its
``config.model_instance_config.resource.max``). The platform refuses an
endpoint update that lowers the maximum below what the instances use, and an
instance update that uses more than is left. So a limit that falls is lowered
after the children's updates; one that rises, before them (the dependency
order); and children whose use falls go before siblings whose use rises.

The rule is data (``KindSpec.limits``) read by :func:`reconciler.planner.limit_order`;
:func:`reconciler.planner.ordered_by_limits` puts it into the applier's step waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler.applier import Applier, ApplyReport, expand
from reconciler.plan import Action, AttrChange, Change, Plan
from reconciler.planner import build_plan, limit_order, ordered_by_limits
from reconciler.providers.base import Limit
from reconciler.providers.fabric import KINDS
from reconciler.refresh import refresh
from reconciler.stack.loader import load_stack
from reconciler.state.document import StateDoc
from tests.fakes import MemoryBackend
from tests.providers.test_fabric_provider import FakeClock, emulated

MU = "mu.llama3.8b"
FABRIC = {"fabric": KINDS}


# -- changes as the planner makes them -----------------------------------------------------


def endpoint(address: str, before: int | None, after: int, *, action: Action = Action.UPDATE) -> Change:
    def attrs(high: int) -> dict[str, Any]:
        return {"name": address, "reserved_resource": {"mu": {"spec_code": MU, "min": 0, "max": high}}}

    diff = () if before == after else (AttrChange("reserved_resource.mu.max", before, after),)
    return Change(
        address=address,
        platform="fabric",
        kind="endpoint",
        action=action,
        before=attrs(before) if before is not None else None,
        after=attrs(after),
        diff=diff,
        id=f"id-{address}",
        depends_on=("workspaces.w",),
    )


def instance(
    address: str,
    on: str,
    before: int | None,
    after: int,
    *,
    description: tuple[str, str] = ("d", "d"),
    action: Action = Action.UPDATE,
) -> Change:
    def attrs(high: int, text: str) -> dict[str, Any]:
        resource = {"spec_code": MU, "min": 1, "max": high}
        return {
            "name": address,
            "description": text,
            "endpoint_id": f"id-{on}",
            "config": {"model_instance_config": {"resource": resource}},
        }

    diff: tuple[AttrChange, ...] = ()
    if before != after:
        diff += (AttrChange("config.model_instance_config.resource.max", before, after),)
    if description[0] != description[1]:
        diff += (AttrChange("description", *description),)
    return Change(
        address=address,
        platform="fabric",
        kind="service_instance",
        action=action,
        before=attrs(before, description[0]) if before is not None else None,
        after=attrs(after, description[1]),
        diff=diff,
        id=f"id-{address}",
        depends_on=("models.m", on, "workspaces.w"),
    )


def plan_of(*changes: Change) -> Plan:
    return Plan(stack="t", stack_file="t.yaml", digest="d", lineage=None, serial=None, changes=changes)


def waits(*changes: Change) -> dict[str, set[str]]:
    """The applier's step waits for ``changes``, ordered by limits."""
    plan = plan_of(*changes)
    _steps, needs = expand(plan, None)
    return ordered_by_limits(plan, {"fabric": SimpleNamespace(kinds=KINDS)}, needs)  # type: ignore[dict-item]


# -- the declaration -----------------------------------------------------------------------


def test_the_fabric_endpoint_declares_the_limit_its_instances_consume() -> None:
    assert KINDS["endpoint"].limits == (
        Limit(
            "reserved_resource.mu.max",
            "service_instance",
            "config.model_instance_config.resource.max",
            "endpoint_id",
        ),
    )
    assert all(not spec.limits for name, spec in KINDS.items() if name != "endpoint")


def test_model_studio_and_zstack_declare_no_limits() -> None:
    from reconciler.providers.modelstudio import KINDS as MODELSTUDIO
    from reconciler.providers.zstack import KINDS as ZSTACK

    assert all(not spec.limits for spec in (*MODELSTUDIO.values(), *ZSTACK.values()))


# -- the rule ------------------------------------------------------------------------------


def test_a_lowered_limit_goes_after_the_child_that_uses_less() -> None:
    changes = (endpoint("endpoints.e", 4, 2), instance("deployments.d", "endpoints.e", 4, 2))
    assert limit_order(changes, FABRIC) == (("deployments.d", "endpoints.e"),)
    needs = waits(*changes)
    assert needs["update endpoints.e"] == {"update deployments.d"}
    assert needs["update deployments.d"] == set()


def test_a_lowered_limit_goes_after_a_child_that_uses_more_too() -> None:
    # 2 + 1 under 6, then 1 + 3 under 4: the rising child fits under the old limit, not before it falls
    changes = (
        endpoint("endpoints.e", 6, 4),
        instance("deployments.a", "endpoints.e", 2, 1),
        instance("deployments.b", "endpoints.e", 1, 3),
    )
    needs = waits(*changes)
    assert needs["update endpoints.e"] == {"update deployments.a", "update deployments.b"}
    assert needs["update deployments.b"] == {"update deployments.a"}  # the falling sibling first
    assert needs["update deployments.a"] == set()


def test_a_raised_limit_goes_first_as_the_dependency_says() -> None:
    changes = (endpoint("endpoints.e", 2, 4), instance("deployments.d", "endpoints.e", 2, 4))
    assert limit_order(changes, FABRIC) == ()
    needs = waits(*changes)
    assert needs["update deployments.d"] == {"update endpoints.e"}
    assert needs["update endpoints.e"] == set()


def test_mixed_one_limit_falls_another_rises_and_siblings_trade_units() -> None:
    changes = (
        endpoint("endpoints.down", 8, 4),
        endpoint("endpoints.up", 2, 6),
        instance("deployments.down1", "endpoints.down", 4, 2),
        instance("deployments.down2", "endpoints.down", 2, 2),  # its use stays: order unchanged
        instance("deployments.up1", "endpoints.up", 1, 4),
        instance("deployments.up2", "endpoints.up", 1, 2),
        endpoint("endpoints.same", 4, 4, action=Action.NOOP),  # the limit stays: siblings trade
        instance("deployments.same1", "endpoints.same", 3, 1),
        instance("deployments.same2", "endpoints.same", 1, 3),
    )
    assert limit_order(changes, FABRIC) == (
        ("deployments.down1", "endpoints.down"),
        ("deployments.same1", "deployments.same2"),
    )
    needs = waits(*changes)
    assert needs["update endpoints.down"] == {"update deployments.down1"}
    assert needs["update deployments.down1"] == set()
    assert needs["update deployments.down2"] == {"update endpoints.down"}
    assert needs["update endpoints.up"] == set()
    assert needs["update deployments.up1"] == needs["update deployments.up2"] == {"update endpoints.up"}
    assert needs["update deployments.same2"] == {"update deployments.same1"}


def test_unrelated_changes_keep_their_order() -> None:
    changes = (
        endpoint("endpoints.e", 4, 2),
        # on the lowered endpoint, but its use stays the same: only its description changes
        instance("deployments.words", "endpoints.e", 2, 2, description=("a", "b")),
        # a new instance on it: a create waits for the endpoint, as ever
        instance("deployments.new", "endpoints.e", None, 1, action=Action.CREATE),
        # one on another endpoint that does not change
        instance("deployments.other", "endpoints.o", 4, 2),
    )
    assert limit_order(changes, FABRIC) == ()
    plan = plan_of(*changes)
    assert waits(*changes) == expand(plan, None)[1]


def test_an_order_the_other_waits_contradict_is_dropped_whole() -> None:
    # an instance that (say, by depends_on) waits for a model whose update waits for the endpoint:
    # instance before endpoint would close a cycle, so the dependency order stands
    child = instance("deployments.d", "endpoints.e", 4, 2)
    changes = (
        endpoint("endpoints.e", 4, 2),
        Change("models.m", "fabric", "model", Action.UPDATE, {}, {}, id="id-m", depends_on=("endpoints.e",)),
        child,
    )
    assert limit_order(changes, FABRIC) == (("deployments.d", "endpoints.e"),)
    assert waits(*changes) == expand(plan_of(*changes), None)[1]


# -- on the emulator -----------------------------------------------------------------------


def stack_text(limit: int, uses: Sequence[int]) -> str:
    deployments = {
        f"d{i}": {
            "platform": "fabric",
            "workspace": "main",
            "endpoint": "infer",
            "model": "llama",
            "name": f"svc-{i}",
            "config": {"model_instance_config": {"resource": {"spec_code": MU, "min": 1, "max": use}}},
        }
        for i, use in enumerate(uses)
    }
    version = {
        "name": "v1",
        "config": {"llm_model_config": {"base_model_type": "llama3", "model_path": "obs://m"}},
    }
    doc = {
        "stack": "limits",
        "providers": {"fabric": {"url": "embedded", "token": "t"}},
        "backend": {"local": {"path": "state/limits.json"}},
        "workspaces": {"main": {"name": "ws"}},
        "endpoints": {
            "infer": {
                "workspace": "main",
                "name": "infer",
                "type": "inference",
                "reserved_resource": {"mu": {"spec_code": MU, "min": 0, "max": limit}},
            }
        },
        "models": {"llama": {"workspace": "main", "name": "llama", "type": "LLM_MODEL", "version": version}},
        "deployments": deployments,
    }
    return yaml.safe_dump(doc, sort_keys=False)


class World:
    """The in-process Fabric emulator, a fake clock, a state in memory and a stack file."""

    def __init__(self, directory: Path, provision_seconds: float = 5) -> None:
        self.clock = FakeClock()
        self.provider = emulated(provision_seconds=provision_seconds, clock=self.clock)
        self.providers = {"fabric": self.provider}
        self.backend = MemoryBackend()
        self.file = directory / "limits.yaml"

    async def plan(self, limit: int, uses: Sequence[int]) -> tuple[Any, Plan]:
        self.file.write_text(stack_text(limit, uses))
        stack = load_stack(self.file, env={})
        state = self.backend.read()
        return stack, build_plan(stack, state, await refresh(state, self.providers), self.providers)

    async def apply(self, limit: int, uses: Sequence[int]) -> ApplyReport:
        stack, plan = await self.plan(limit, uses)
        state = self.backend.read() or StateDoc.new(stack.name)
        return await Applier(plan, stack, self.providers, self.backend, state, sleep=self.clock.sleep).run()

    def run(self, *moves: tuple[int, Sequence[int]]) -> list[ApplyReport]:
        async def main() -> list[ApplyReport]:
            try:
                reports = [await self.apply(limit, uses) for limit, uses in moves]
                _, again = await self.plan(*moves[-1])
                assert not again.has_changes, [c.diff for c in again.actionable]
                return reports
            finally:
                await self.provider.aclose()

        return asyncio.run(main())


def updated(report: ApplyReport) -> list[str]:
    return [e.address for e in report.done if e.op == "update"]


def test_scaling_an_endpoint_and_its_instance_down_together_applies(tmp_path: Path) -> None:
    created, down, up = World(tmp_path).run((4, [4]), (2, [2]), (6, [5]))
    assert created.ok
    assert down.ok, down.failed
    assert updated(down) == ["deployments.d0", "endpoints.infer"]
    assert up.ok, up.failed
    assert updated(up) == ["endpoints.infer", "deployments.d0"]


def fitting(draw: st.DrawFn, count: int) -> tuple[int, list[int]]:
    """A reserved maximum and ``count`` instance maxima (each at least its min 1) that fit under it."""
    uses = draw(st.lists(st.integers(1, 4), min_size=count, max_size=count))
    return draw(st.integers(sum(uses), 12)), uses


@st.composite
def moves(draw: st.DrawFn) -> tuple[tuple[int, list[int]], tuple[int, list[int]]]:
    count = draw(st.integers(1, 3))
    return fitting(draw, count), fitting(draw, count)


@given(moves())
def test_any_valid_limits_and_uses_before_and_after_apply(
    move: tuple[tuple[int, list[int]], tuple[int, list[int]]],
) -> None:
    before, after = move
    with contextlib.ExitStack() as cleanup:
        directory = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        world = World(directory, provision_seconds=0)  # the limits are checked on each call
        first, second = world.run(before, after)
    assert first.ok, first.failed
    assert second.ok, (before, after, second.failed)
