"""A create recorded from its answer alone (the read-back failed) is completed by the next run."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from reconciler import operations
from reconciler.providers.base import Live
from reconciler.stack.spec import Deferred
from tests.fakes import FakeProvider, MemoryBackend, res, stack_of


class BriefAnswers(FakeProvider):
    """Its objects get a server-assigned ``version_id``; while ``brief``, a create answers only its id
    (as a Fabric create whose read-back failed is recorded: the desired values, no status)."""

    brief = True

    async def create(self, kind: str, desired: Mapping[str, Any], *, token: str | None = None) -> Live:
        live = await super().create(kind, desired, token=token)
        self.objects[live.id]["version_id"] = f"v-{live.id}"
        if self.brief:
            return Live(id=live.id, attributes=dict(desired), status=None, name=desired.get("name"))
        return self._live(live.id)


STACK = stack_of(
    res("models.m", {"name": "m"}),
    res(
        "deployments.d",
        {"name": "d", "model_version": Deferred(template="{{ models.m.version_id }}", refs=("models.m",))},
        refs={"model": "models.m"},
    ),
)


def apply(p: FakeProvider, b: MemoryBackend) -> operations.ApplyOutcome:
    async def go() -> operations.ApplyOutcome:
        plan, _, _ = await operations.plan_async(STACK, b, {"fake": p})  # type: ignore[arg-type]
        return await operations.apply_async(plan, STACK, b, {"fake": p}, rollback=False)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_the_next_run_reads_back_a_half_recorded_create_and_its_dependants_go_on() -> None:
    p, b = BriefAnswers(), MemoryBackend()
    first = apply(p, b)
    assert [str(e) for _, e in first.report.failed] == [
        "deployments.d: values still unknown at apply time: model_version"
    ]
    assert b.read().resources["models.m"].attributes == {"name": "m"}  # recorded from the answer alone
    p.brief = False
    second = apply(p, b)
    assert second.report.ok, second.report.failed
    state = b.read()
    model_id = state.resources["models.m"].id
    assert state.resources["models.m"].attributes["version_id"] == f"v-{model_id}"
    assert state.resources["deployments.d"].attributes["model_version"] == f"v-{model_id}"
    assert sorted(o["name"] for o in p.objects.values()) == ["d", "m"]  # nothing made twice
