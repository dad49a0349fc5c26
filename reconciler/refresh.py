"""Reading the platforms: batched refresh of recorded resources and recovery of open journal entries.

I/O at the edge: everything here awaits providers. Refresh groups recorded
resources by (platform, kind, scope) and reads each group with one paged list
call, matching objects by id; kinds without a list call are read one by one.
Recovery resolves journal intents left by a killed run by asking the platform
(find by name) before anything else happens, so nothing is created twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.errors import ProviderError, UsageError
from reconciler.plan import Action, Change, Plan
from reconciler.providers.base import Live, Provider
from reconciler.state.document import ResourceState, StateDoc


def _provider(providers: Mapping[str, Provider], rs: ResourceState) -> Provider:
    try:
        return providers[rs.platform]
    except KeyError:
        raise UsageError(
            f"{rs.address} is recorded on platform '{rs.platform}', "
            f"but the stack has no providers.{rs.platform} block; "
            "add it (it is needed to read or delete the resource)"
        ) from None


async def _completed(provider: Provider, kind: str, rs: ResourceState, brief: Live | None) -> Live | None:
    """A list item made whole: what the brief lacks is recorded while its change marker stands, else read."""
    spec = provider.kinds[kind]
    if brief is None or not spec.list_omits:
        return brief
    marker = spec.change_marker
    unchanged = marker is not None and marker in rs.attributes
    if unchanged and brief.attributes.get(marker or "") == rs.attributes[marker or ""]:
        kept = {k: rs.attributes[k] for k in spec.list_omits if k in rs.attributes}
        return Live(brief.id, {**brief.attributes, **kept}, brief.status, brief.name)
    return await provider.read(kind, rs.id, rs.scope)


async def _read_group(provider: Provider, kind: str, members: list[ResourceState]) -> dict[str, Live | None]:
    scope = members[0].scope
    if provider.kinds[kind].listable:
        try:
            found = {live.id: live for live in await provider.list(kind, scope)}
        except ProviderError as exc:
            if exc.status not in (400, 404):
                raise
            # the scope itself may be gone (e.g. a workspace deleted out of band): read one by one
        else:
            briefs = [(rs, found.get(rs.id)) for rs in members]
            whole = await asyncio.gather(*(_completed(provider, kind, rs, live) for rs, live in briefs))
            return {rs.address: live for rs, live in zip(members, whole, strict=True)}
    results = await asyncio.gather(*(provider.read(kind, rs.id, rs.scope) for rs in members))
    return {rs.address: live for rs, live in zip(members, results, strict=True)}


async def refresh(state: StateDoc | None, providers: Mapping[str, Provider]) -> dict[str, Live | None]:
    """Live objects of every recorded resource (None where gone), by address."""
    if state is None:
        return {}
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[ResourceState]] = {}
    for rs in state.resources.values():
        _provider(providers, rs)
        groups.setdefault((rs.platform, rs.kind, tuple(sorted(rs.scope.items()))), []).append(rs)
    parts = await asyncio.gather(
        *(_read_group(providers[platform], kind, members) for (platform, kind, _), members in groups.items())
    )
    live: dict[str, Live | None] = {}
    for part in parts:
        live.update(part)
    return live


async def find_untracked(
    provider: Provider,
    kind: str,
    name: str,
    scope: Mapping[str, str],
    recorded: set[str],
    *,
    token: str | None = None,
) -> Live | None:
    """The object called ``name`` that no address records yet: what a create whose answer was lost made.

    Objects the state already tracks are never adopted (in a create-before-destroy
    replace the old object may carry the same name). Listable kinds are searched
    through their list, so a namesake that is tracked does not hide the new one.
    """
    spec = provider.kinds[kind]
    if spec.client_id:  # made with our client token as its id: that id, and nothing else, is ours
        live = await provider.find(kind, name, scope, token=token) if token else None
        return live if live is not None and live.id == token and live.id not in recorded else None
    if spec.listable:
        found = [
            live
            for live in await provider.list(kind, scope)
            if live.name == name and live.id not in recorded and not spec.phase(live.id, live).absent
        ]
        if found and spec.list_omits:  # a brief list item: the detail carries the rest
            return await provider.read(kind, found[0].id, scope)
        return found[0] if found else None
    live = await provider.find(kind, name, scope, token=token)
    return live if live is not None and live.id not in recorded else None


async def unmanaged_namesakes(
    plan: Plan, state: StateDoc | None, providers: Mapping[str, Provider], stack_file: str
) -> list[str]:
    """A message for each create whose identity an object this state never recorded already carries.

    Such an object is someone else's (another stack's, or made by hand): creating
    it again collides with it, and a create retry or a crash recovery that found
    it by name would take it. So the plan refuses, and names the way to adopt it
    on purpose (``reconciler import``). Kinds created with a client-chosen id
    (ZStack ``resourceUuid``) need no check: their recovery looks up that id
    only. One list call per (platform, kind, scope) with creates; a create
    whose parent is not made yet has an unknown scope, hence no namesake.
    """
    recorded = {rs.id for rs in state.resources.values()} if state else set()
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Change]] = {}
    for c in plan.changes:
        if c.action not in (Action.CREATE, Action.REPLACE) or not c.name or c.after is None:
            continue
        provider = providers.get(c.platform)
        spec = provider.kinds.get(c.kind) if provider else None
        if provider is None or spec is None or spec.client_id or not spec.listable:
            continue
        try:
            scope = provider.scope_of(c.kind, c.after)
        except ValueError:  # the parent is not made yet: its scope, and any namesake in it, cannot exist
            continue
        if all(isinstance(v, str) for v in scope.values()):
            groups.setdefault((c.platform, c.kind, tuple(sorted(scope.items()))), []).append(c)

    async def one(key: tuple[str, str, tuple[tuple[str, str], ...]], changes: list[Change]) -> list[str]:
        platform, kind, scope = key
        provider = providers[platform]
        spec = provider.kinds[kind]
        taken = {
            live.name: live
            for live in await provider.list(kind, dict(scope))
            if live.name and live.id not in recorded and not spec.phase(live.id, live).absent
        }
        return [
            f"{c.address}: {platform} {kind} {c.name} ({taken[c.name].id}) exists, not managed by this "
            f"stack: import it with `reconciler import {stack_file} {c.address} {taken[c.name].id}`, "
            "or give the stack's object another name"
            for c in changes
            if c.name in taken
        ]

    found = await asyncio.gather(*(one(key, changes) for key, changes in groups.items()))
    return [message for messages in found for message in messages]


@dataclass(frozen=True)
class Recovery:
    state: StateDoc
    messages: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.messages)


async def recover(state: StateDoc, providers: Mapping[str, Provider]) -> Recovery:
    """Resolve journal intents that never got a result (the run was killed).

    A create intent: the platform is asked for the object by name; if it exists
    it is adopted into state, else the intent is dropped (the plan will create it).
    Update and delete intents need nothing: refresh shows what happened.
    """
    messages: list[str] = []
    doc = state
    for entry in state.journal_open():
        if entry.action == "create" and entry.name and entry.platform and entry.kind:
            provider = providers.get(entry.platform)
            if provider is None:
                raise UsageError(
                    f"{entry.address}: an interrupted create on '{entry.platform}' needs its provider block"
                )
            current = doc.resources.get(entry.address)
            recorded = {rs.id for rs in doc.resources.values()}
            live = await find_untracked(
                provider, entry.kind, entry.name, entry.scope, recorded, token=entry.token
            )
            if live is not None:
                doc = doc.with_resource(
                    ResourceState(
                        address=entry.address,
                        platform=entry.platform,
                        kind=entry.kind,
                        id=live.id,
                        name=live.name or entry.name,
                        scope=provider.scope_of(entry.kind, live.attributes),
                        attributes=provider.kinds[entry.kind].with_inputs(live.attributes, entry.inputs),
                        status=live.status,
                        dependencies=entry.dependencies,
                    )
                )
                messages.append(
                    f"{entry.address}: adopted {entry.name} ({live.id}), created by an interrupted run"
                )
            elif current is not None:
                messages.append(f"{entry.address}: interrupted create of {entry.name} was already recorded")
            else:
                messages.append(
                    f"{entry.address}: interrupted create of {entry.name} did not land; it will be planned"
                )
        else:
            messages.append(f"{entry.address}: interrupted {entry.action}; refresh shows its outcome")
    if messages or state.journal:
        doc = doc.cleared_journal()
    return Recovery(state=doc, messages=tuple(messages))
