"""Which platform scopes a stack manages, and what lives in them that no state records.

A scope is managed when the stack owns it or keeps resources in it:

* DataArts Fabric: each workspace the state records; its endpoints, models
  and service instances are listed;
* Model Studio: the workspace of the provider block (``providers.modelstudio.workspace``,
  else the API key's default workspace), when the stack declares or the
  state records a Model Studio deployment; its deployments are listed;
* ZStack: each model service an instance group of the stack deploys (its
  ``modelServiceUuid``; the documented group view carries no ``zoneUuid``);
  the instance groups of it are listed. Model services
  are zone-less templates kept in a model center: those in the model centers
  the stack's model services use (``modelCenterUuid``) are listed.

:func:`managed_scopes` is pure; :func:`unmanaged` lists each scope with
``provider.list`` and keeps the objects no state records (and that are not
being deleted). These platform facts live here rather than in the provider
contract because nothing else needs them yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.drift import Unmanaged
from reconciler.errors import ProviderError
from reconciler.plan import Plan
from reconciler.providers.base import Provider
from reconciler.stack.spec import Stack
from reconciler.state.document import StateDoc

#: (platform, kind of the container) -> (kinds inside it, the scope key naming the container).
CONTAINERS: Mapping[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("fabric", "workspace"): (("endpoint", "model", "service_instance"), "workspace_id"),
}
#: (platform, kind listed globally) -> the attribute whose value says which scope an object is in.
SCOPING_ATTRIBUTE: Mapping[tuple[str, str], tuple[str, str]] = {
    # the documented group view (Go SDK pkg/view) carries no zoneUuid: a group is scoped by its service
    ("zstack", "model_service_instance_group"): ("modelServiceUuid", "model service"),
    ("zstack", "model_service"): ("modelCenterUuid", "model center"),
}
#: Platforms whose whole account (or workspace) is one scope: platform -> the kind listed.
WHOLE: Mapping[str, str] = {"modelstudio": "deployment"}


@dataclass(frozen=True)
class Scope:
    """One list call: ``kind`` on ``platform`` in ``scope``, keeping objects whose
    ``attribute`` (when set) is one of ``values``. ``where`` describes it for people."""

    platform: str
    kind: str
    where: str
    scope: Mapping[str, str] = field(default_factory=dict)
    attribute: str | None = None
    values: frozenset[str] = frozenset()


def _used(stack: Stack, state: StateDoc | None, platform: str) -> bool:
    recorded = any(rs.platform == platform for rs in (state.resources.values() if state else ()))
    return recorded or any(r.platform == platform for r in stack.resources.values())


def managed_scopes(stack: Stack, state: StateDoc | None, plan: Plan | None) -> tuple[Scope, ...]:
    """Every scope to search for unmanaged objects, for the platforms the stack has a provider block for."""
    out: list[Scope] = []
    recorded = sorted(state.resources.values(), key=lambda rs: rs.address) if state else []
    for rs in recorded:
        contained = CONTAINERS.get((rs.platform, rs.kind))
        if contained is None or rs.platform not in stack.providers or "#" in rs.address:
            continue
        kinds, key = contained
        where = f"{rs.platform} {rs.kind} {rs.name or rs.id} ({rs.id})"
        out += [Scope(rs.platform, kind, where, {key: rs.id}) for kind in kinds]
    for platform, kind in WHOLE.items():
        block = stack.providers.get(platform)
        if block is not None and _used(stack, state, platform):
            workspace = block.get("workspace")
            where = f"{platform} workspace {workspace}" if workspace else f"{platform} default workspace"
            out.append(Scope(platform, kind, where))
    for (platform, kind), (attribute, noun) in SCOPING_ATTRIBUTE.items():
        if platform not in stack.providers:
            continue
        values: set[str] = set()
        for rs in recorded:
            if (rs.platform, rs.kind) == (platform, kind) and isinstance(rs.attributes.get(attribute), str):
                values.add(rs.attributes[attribute])
        for c in plan.changes if plan else ():
            wanted = (c.after or {}).get(attribute)
            if (c.platform, c.kind) == (platform, kind) and isinstance(wanted, str):
                values.add(wanted)
        if values:
            where = f"{platform} {noun}{'s' if len(values) > 1 else ''} {', '.join(sorted(values))}"
            out.append(Scope(platform, kind, where, attribute=attribute, values=frozenset(values)))
    return tuple(out)


async def _list(provider: Provider, scope: Scope) -> list[Unmanaged] | str:
    try:
        found = await provider.list(scope.kind, scope.scope)
    except ProviderError as exc:
        if exc.status in (400, 404):
            return f"could not list {scope.kind}s in {scope.where}: {exc.platform_message}"
        raise
    return [
        Unmanaged(scope.platform, scope.kind, live, dict(scope.scope), scope.where)
        for live in found
        if not provider.kinds[scope.kind].phase(live.id, live).absent
        and (scope.attribute is None or live.attributes.get(scope.attribute) in scope.values)
    ]


async def unmanaged(
    scopes: Sequence[Scope], state: StateDoc | None, providers: Mapping[str, Provider]
) -> tuple[list[Unmanaged], list[str]]:
    """Objects in ``scopes`` that no state records, and notes about scopes that could not be listed."""
    recorded = {(rs.platform, rs.kind, rs.id) for rs in (state.resources.values() if state else ())}
    usable = [s for s in scopes if s.platform in providers]
    parts = await asyncio.gather(*(_list(providers[s.platform], s) for s in usable))
    found: list[Unmanaged] = []
    notes: list[str] = []
    for part in parts:
        if isinstance(part, str):
            notes.append(part)
            continue
        found += [u for u in part if (u.platform, u.kind, u.live.id) not in recorded]
    return found, notes
