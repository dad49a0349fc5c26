"""create_before_destroy mixed with a plain replacement: Terraform's rule makes it apply."""

from __future__ import annotations

from reconciler.errors import ProviderError
from reconciler.plan import Action
from reconciler.stack.spec import Lifecycle
from tests.core.test_applier import converge
from tests.fakes import FakeProvider, MemoryBackend, res, stack_of


class InUseRefused(FakeProvider):
    """Refuses to delete an object another object still points at (as every platform does)."""

    async def delete(self, kind: str, id: str, scope):  # type: ignore[no-untyped-def]
        users = [o.get("name") for o in self.objects.values() if id in o.values()]
        if users:
            self.calls.append(("refused", self.objects[id].get("name", "")))
            raise ProviderError("fake", f"{id} is in use by {users}", code="InUse", status=409)
        await super().delete(kind, id, scope)


def stack(zone: str):  # type: ignore[no-untyped-def]
    cbd = Lifecycle(create_before_destroy=True)
    return stack_of(
        res("workspaces.w", {"name": "w", "zone": zone}),
        res("endpoints.e", {"name": "e", "zone": zone}, refs={"workspace": "workspaces.w"}, lifecycle=cbd),
    )


def test_a_replaced_dependency_of_a_create_before_destroy_replacement_is_created_first_too() -> None:
    provider, backend = InUseRefused(), MemoryBackend()
    converge(stack("a"), provider, backend)
    old = {rs.address: rs.id for rs in backend.read().resources.values()}
    provider.calls.clear()

    plan, report = converge(stack("b"), provider, backend)

    assert [(c.address, c.action, c.create_before_destroy) for c in plan.actionable] == [
        ("workspaces.w", Action.REPLACE, True),  # propagated from endpoints.e
        ("endpoints.e", Action.REPLACE, True),
    ]
    assert report.ok, report.failed
    ops = [(op, name) for op, name in provider.calls if op in ("create", "delete", "refused")]
    assert ops == [("create", "w"), ("create", "e"), ("delete", "e"), ("delete", "w")]
    now = backend.read().resources
    assert set(now) == {"workspaces.w", "endpoints.e"}
    assert now["endpoints.e"].attributes["workspace_id"] == now["workspaces.w"].id
    assert set(provider.objects) == {now["workspaces.w"].id, now["endpoints.e"].id}
    assert not set(old.values()) & set(provider.objects)
