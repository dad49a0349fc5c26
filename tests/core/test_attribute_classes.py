"""Attributes read back, input only or computed; brief list items; lifecycles; client ids.

A fake platform answers the way the real ones document: it never returns an
input-only field, its list items lack ``config`` (a brief info, as Fabric's
ListServiceInstances), and every change moves ``update_time``. Apply then plan
must be a no-op against it, and a no-op refresh must cost the list page only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.applier import Applier
from reconciler.errors import ProviderError
from reconciler.plan import Action
from reconciler.planner import build_plan
from reconciler.providers.base import KindSpec, Lifecycle, Live, Phase
from reconciler.refresh import find_untracked, recover, refresh
from reconciler.state.document import JournalEntry, ResourceState, StateDoc
from tests.fakes import FakeProvider, MemoryBackend, res, stack_of

LIFECYCLE = Lifecycle("fake", {"RUNNING": Phase.READY, "Failed": Phase.FAILED, "Deleting": Phase.DELETING})


class DocumentedFake(FakeProvider):
    """Kind "thing": ``public_access`` is input only; list items are brief (no ``config``)."""

    kinds = {
        "thing": KindSpec(
            name="thing",
            force_new=frozenset({"public_access"}),
            read_only=frozenset({"id", "update_time"}),
            input_only=frozenset({"public_access"}),
            read_back=frozenset({"name", "config"}),
            list_omits=frozenset({"config"}),
            change_marker="update_time",
            lifecycle=LIFECYCLE,
        ),
    }

    def __init__(self) -> None:
        super().__init__()
        self.clock = 0

    def _answer(self, oid: str, *, brief: bool) -> Live:
        obj = {k: v for k, v in self.objects[oid].items() if k not in ("_kind", "public_access")}
        if brief:
            obj.pop("config", None)
        status = self.objects[oid].get("_status", "RUNNING")
        return Live(id=oid, attributes=obj, status=status, name=obj["name"])

    def _live(self, oid: str) -> Live:
        return self._answer(oid, brief=False)

    async def list(self, kind: str, scope: Mapping[str, str]) -> list[Live]:
        self.calls.append(("list", kind))
        return [self._answer(i, brief=True) for i in self.objects]

    async def create(self, kind: str, desired: Mapping[str, Any], *, token: str | None = None) -> Live:
        self.clock += 1
        return await super().create(kind, {**desired, "update_time": f"t{self.clock}"})

    def change_out_of_band(self, oid: str, **attrs: Any) -> None:
        self.clock += 1
        self.objects[oid].update(attrs, update_time=f"t{self.clock}")


STACK = stack_of(res("deployments.d", {"name": "d", "public_access": True, "config": {"max": 2}}))


def apply(provider: DocumentedFake, backend: MemoryBackend) -> None:
    async def go() -> None:
        state = backend.read()
        live = await refresh(state, {"fake": provider})
        plan = build_plan(STACK, state, live, {"fake": provider})
        report = await Applier(plan, STACK, {"fake": provider}, backend, state or StateDoc.new("t")).run()
        assert report.ok

    asyncio.run(go())


def plan_now(provider: DocumentedFake, backend: MemoryBackend):  # type: ignore[no-untyped-def]
    state = backend.read()
    live = asyncio.run(refresh(state, {"fake": provider}))
    return build_plan(STACK, state, live, {"fake": provider})


def test_apply_then_plan_is_a_noop_against_documented_answers() -> None:
    provider, backend = DocumentedFake(), MemoryBackend()
    apply(provider, backend)
    recorded = backend.read().resources["deployments.d"].attributes
    assert recorded["public_access"] is True  # the value sent, since the platform never returns it
    provider.calls.clear()
    plan = plan_now(provider, backend)
    assert not plan.has_changes, [c.diff for c in plan.changes]
    assert provider.calls == [("list", "thing")]  # the brief page, and no read of the object


def test_input_only_change_is_compared_with_the_last_applied_value() -> None:
    provider, backend = DocumentedFake(), MemoryBackend()
    apply(provider, backend)
    stack = stack_of(res("deployments.d", {"name": "d", "public_access": False, "config": {"max": 2}}))
    state = backend.read()
    plan = build_plan(stack, state, asyncio.run(refresh(state, {"fake": provider})), {"fake": provider})
    (change,) = plan.actionable
    assert change.action is Action.REPLACE
    assert [(d.path, d.before, d.after) for d in change.diff] == [("public_access", True, False)]


def test_a_moved_change_marker_reads_the_detail_and_finds_drift_in_what_the_brief_lacks() -> None:
    provider, backend = DocumentedFake(), MemoryBackend()
    apply(provider, backend)
    oid = backend.read().resources["deployments.d"].id
    provider.change_out_of_band(oid, config={"max": 5})
    provider.calls.clear()
    plan = plan_now(provider, backend)
    assert ("read", oid) in provider.calls
    (change,) = plan.actionable
    assert [(d.path, d.before, d.after) for d in change.diff] == [("config.max", 5, 2)]


def test_failed_status_is_replaced_and_deleting_is_created_again() -> None:
    provider, backend = DocumentedFake(), MemoryBackend()
    apply(provider, backend)
    oid = backend.read().resources["deployments.d"].id
    provider.objects[oid]["_status"] = "Failed"
    assert plan_now(provider, backend).actionable[0].action is Action.REPLACE
    provider.objects[oid]["_status"] = "Deleting"
    change = plan_now(provider, backend).actionable[0]
    assert change.action is Action.CREATE
    assert change.reason == "deleted out of band; will be created again"


def test_an_undocumented_status_is_an_error_naming_it() -> None:
    provider, backend = DocumentedFake(), MemoryBackend()
    apply(provider, backend)
    oid = backend.read().resources["deployments.d"].id
    provider.objects[oid]["_status"] = "Hibernating"
    with pytest.raises(ProviderError) as caught:
        plan_now(provider, backend)
    assert caught.value.code == "unknown_status"
    assert "'Hibernating'" in str(caught.value)
    assert "RUNNING" in str(caught.value)


class ClientIdFake(FakeProvider):
    """A platform whose create takes a client-chosen id (ZStack ``resourceUuid``)."""

    kinds = {"thing": KindSpec(name="thing", client_id=True)}

    async def find(
        self, kind: str, name: str, scope: Mapping[str, str], *, token: str | None = None
    ) -> Live | None:
        self.calls.append(("find", token or ""))
        return self._live(token) if token in self.objects else None


def test_client_id_recovery_takes_only_the_object_made_with_our_token() -> None:
    provider = ClientIdFake()
    provider.objects["someone-elses"] = {"name": "d", "_kind": "thing"}  # a namesake, not ours
    mine = "0123456789abcdef0123456789abcdef"

    assert asyncio.run(find_untracked(provider, "thing", "d", {}, set(), token=mine)) is None
    provider.objects[mine] = {"name": "d", "_kind": "thing"}
    found = asyncio.run(find_untracked(provider, "thing", "d", {}, set(), token=mine))
    assert found is not None and found.id == mine


def test_recovery_records_the_journaled_input_only_values() -> None:
    provider = DocumentedFake()
    live = asyncio.run(provider.create("thing", {"name": "d", "public_access": True, "config": {"max": 2}}))
    entry = JournalEntry(
        seq=1, address="deployments.d", action="create", phase="intent", name="d", token="tok",
        time="2026-12-03T00:00:00Z", platform="fake", kind="thing", inputs={"public_access": True},
    )  # fmt: skip
    state = StateDoc.new("t").model_copy(update={"journal": (entry,)})
    recovered = asyncio.run(recover(state, {"fake": provider})).state
    rs: ResourceState = recovered.resources["deployments.d"]
    assert rs.id == live.id
    assert rs.attributes["public_access"] is True
    backend = MemoryBackend()
    backend.write(recovered)
    assert not plan_now(provider, backend).has_changes


def test_platform_lifecycles_map_their_documented_statuses() -> None:
    from reconciler.providers import modelstudio, zstack_schema

    group = zstack_schema.KINDS[zstack_schema.GROUP]
    deployment = modelstudio.KINDS[modelstudio.KIND]
    assert group.phase("g", Live("g", {}, status="Failed")) is Phase.FAILED  # planned for replacement
    assert group.phase("g", Live("g", {}, status="Running")) is Phase.READY
    assert group.phase("g", Live("g", {}, status="Deleting")) is Phase.DELETING
    assert deployment.phase("d", Live("d", {}, status="STOPPED")) is Phase.STOPPED
    assert deployment.phase("d", Live("d", {}, status="PENDING")) is Phase.IN_PROGRESS
    assert zstack_schema.KINDS[zstack_schema.SERVICE].phase("s", Live("s", {})) is Phase.READY  # no status
    with pytest.raises(ProviderError, match="'RUNNING'"):
        group.phase("g", Live("g", {}, status="RUNNING"))  # ZStack answers PascalCase


def test_model_studio_rpm_limit_documented_as_a_string_is_the_number_sent() -> None:
    from reconciler.providers.modelstudio import _normalise

    answer = {"deployed_model": "qwen3-8b-1a2b3c4d-chat", "model_name": "qwen3-8b", "rpm_limit": "500"}
    assert _normalise(answer)["rpm_limit"] == 500
