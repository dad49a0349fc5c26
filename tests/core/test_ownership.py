"""No create takes an object this stack cannot prove it made.

A same-named object the state never recorded belongs to someone else: the plan
refuses the create and names `reconciler import`, so neither a create retry nor
crash recovery can ever adopt it later.
"""

from __future__ import annotations

import asyncio

from reconciler.planner import build_plan
from reconciler.providers.base import KindSpec
from reconciler.refresh import unmanaged_namesakes
from reconciler.state.document import ResourceState, StateDoc
from tests.fakes import FakeProvider, res, stack_of


def namesakes(provider: FakeProvider, stack, state: StateDoc | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    providers = {"fake": provider}
    plan = build_plan(stack, state, {}, providers)
    return asyncio.run(unmanaged_namesakes(plan, state, providers, "stack.yaml"))


def test_a_create_whose_name_someone_else_uses_is_refused_naming_import() -> None:
    provider = FakeProvider()
    provider.objects["theirs-1"] = {"name": "chat", "_kind": "thing"}
    messages = namesakes(provider, stack_of(res("deployments.chat", {"name": "chat"})))
    assert messages == [
        "deployments.chat: fake thing chat (theirs-1) exists, not managed by this stack: import it with "
        "`reconciler import stack.yaml deployments.chat theirs-1`, or give the stack's object another name"
    ]


def test_names_nobody_uses_and_objects_this_state_records_pass_with_one_list_per_kind() -> None:
    provider = FakeProvider()
    provider.objects["mine-1"] = {"name": "old", "_kind": "thing", "zone": "a"}
    recorded = ResourceState(
        address="deployments.old", platform="fake", kind="thing", id="mine-1", name="old",
        scope={}, attributes={"name": "old", "zone": "a"}, status="RUNNING", dependencies=(),
    )  # fmt: skip
    state = StateDoc.new("t").with_resource(recorded)
    stack = stack_of(
        res("deployments.old", {"name": "old", "zone": "b"}),  # a replacement keeps its own name
        res("deployments.new", {"name": "new"}),
        res("deployments.other", {"name": "other"}),
    )
    assert namesakes(provider, stack, state) == []
    assert provider.calls.count(("list", "thing")) == 1


def test_kinds_made_with_a_client_chosen_id_need_no_check() -> None:
    class ClientIds(FakeProvider):
        kinds = {"thing": KindSpec(name="thing", client_id=True)}

    provider = ClientIds()
    provider.objects["theirs-1"] = {"name": "chat", "_kind": "thing"}
    assert namesakes(provider, stack_of(res("deployments.chat", {"name": "chat"}))) == []
    assert provider.calls == []
