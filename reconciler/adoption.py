"""Import: record an object that already exists on a platform, found by id, at a stack address.

``reconciler import STACK ADDRESS ID`` reads the live object through the
stack's provider and records it, so that the next plan shows only how it
differs from the stack. The object's scope (for Fabric, the workspace of an
endpoint, model or service instance) comes from the resources it references,
as the state records them: import those first.

I/O at the edge: :func:`scope_for` is pure; :func:`import_resource` reads
the platform (``provider.read``) and writes the state under the lock.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.errors import UsageError
from reconciler.providers.base import UNKNOWN, Provider, RefValue
from reconciler.stack.expressions import resolve
from reconciler.stack.spec import ResourceSpec, Stack
from reconciler.state.backend import Backend
from reconciler.state.document import ResourceState, StateDoc


def scope_for(resource: ResourceSpec, stack: Stack, state: StateDoc, provider: Provider) -> dict[str, str]:
    """The scope that addresses ``resource`` on its platform, from what ``state`` records. Pure."""
    if not provider.kinds[resource.kind].scope:
        return {}
    known = {a: {**rs.attributes, "id": rs.id} for a, rs in state.resources.items()}
    refs = {
        field: RefValue(
            address=target,
            id=state.resources[target].id if target in state.resources else UNKNOWN,
            attributes=known.get(target, {}),
        )
        for field, target in resource.refs.items()
    }
    desired = provider.desired(resource.kind, resolve(dict(resource.attrs), stack, known), refs)
    try:
        return provider.scope_of(resource.kind, desired)
    except ValueError:
        missing = sorted(t for t in resource.refs.values() if t not in state.resources)
        needs = ", ".join(provider.kinds[resource.kind].scope)
        first = f"; import {missing[0]} first" if missing else ""
        raise UsageError(
            f"{resource.address}: its {needs} comes from {', '.join(missing) or 'its references'}, "
            f"which the state does not record yet{first}"
        ) from None


async def import_resource(
    stack: Stack,
    backend: Backend,
    providers: Mapping[str, Provider],
    address: str,
    id: str,
    *,
    lock_timeout: float = 0.0,
) -> ResourceState:
    """Read the object ``id`` and record it at ``address``; returns what was recorded."""
    resource = stack.resources.get(address)
    if resource is None:
        known = ", ".join(sorted(stack.resources)) or "none"
        raise UsageError(f"{address} is not a resource of stack {stack.name!r} (its resources: {known})")
    provider = providers.get(resource.platform)
    if provider is None:
        raise UsageError(f"{address}: no provider block for platform '{resource.platform}'")
    with backend.lock(f"reconciler import {address}", lock_timeout):
        state = backend.read() or StateDoc.new(stack.name)
        if state.journal_open():
            raise UsageError(
                "the state records operations an interrupted run left unfinished; "
                "run `reconciler plan` first to resolve them, then import"
            )
        if address in state.resources:
            raise UsageError(
                f"{address} is already in the state (id {state.resources[address].id}); to import another "
                f"object there, first run `reconciler state rm {stack.file} {address}`"
            )
        for other in state.resources.values():
            if other.id == id and other.platform == resource.platform and other.kind == resource.kind:
                raise UsageError(
                    f"{resource.platform} {resource.kind} {id} is already in the state as {other.address}"
                )
        scope = scope_for(resource, stack, state, provider)
        live = await provider.read(resource.kind, id, scope)
        if live is None:
            where = "".join(f", {k} {v}" for k, v in sorted(scope.items()))
            raise UsageError(f"{address}: {resource.platform} has no {resource.kind} with id {id!r}{where}")
        try:
            recorded_scope = provider.scope_of(resource.kind, live.attributes)
        except ValueError:
            recorded_scope = scope
        recorded = ResourceState(
            address=address,
            platform=resource.platform,
            kind=resource.kind,
            id=live.id,
            name=live.name,
            scope=recorded_scope,
            attributes=dict(live.attributes),
            status=live.status,
            dependencies=tuple(resource.depends_on),
        )
        backend.write(state.with_resource(recorded).bumped())
    return recorded
