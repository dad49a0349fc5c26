"""Drift: how the platforms differ from what reconciler last recorded, and accepting it into state.

Pure: no I/O. The inputs are the state (*recorded*), what refresh read
(*live*), the plan built from them (its ``after`` values say which keys the
stack manages) and the objects :mod:`reconciler.scopes` found in managed
scopes. Three kinds of drift, per resource:

* ``changed``: an attribute the stack manages differs between recorded and
  live. The comparison uses the planner's own (:func:`diff_attributes`: the
  keys the stack sets, nested; read-only paths and ``ignore_changes`` left
  out; numbers compared by value). A resource in state but no longer in the
  stack is compared on every recorded key.
* ``deleted``: recorded, but the platform no longer has it.
* ``unmanaged``: lives in a scope the stack manages but no state records it.

:func:`refresh_only_plan` turns the same comparison into a plan that records
the live values in state and changes nothing on the platforms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.plan import Action, AttrChange, Change, Plan
from reconciler.planner import diff_attributes, diff_outputs, project
from reconciler.providers.base import UNKNOWN, KindSpec, Live, Provider
from reconciler.stack.expressions import resolve
from reconciler.stack.spec import Stack
from reconciler.state.document import ResourceState, StateDoc

DriftStatus = Literal["changed", "deleted", "unmanaged"]
DRIFT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class DriftedAttribute:
    """One attribute changed out of band: dotted ``path``, ``recorded`` (state) and ``live`` values."""

    path: str
    recorded: Any
    live: Any


@dataclass(frozen=True)
class ResourceDrift:
    """One resource that drifted. ``address`` is None for an unmanaged object (no state records it)."""

    status: DriftStatus
    platform: str
    kind: str
    id: str
    address: str | None = None
    name: str | None = None
    scope: Mapping[str, str] = field(default_factory=dict)
    attributes: tuple[DriftedAttribute, ...] = ()
    where: str = ""  # unmanaged: the managed scope it was found in, in words


@dataclass(frozen=True)
class Unmanaged:
    """An object found in a managed scope (see :mod:`reconciler.scopes`)."""

    platform: str
    kind: str
    live: Live
    scope: Mapping[str, str]
    where: str


@dataclass(frozen=True)
class DriftReport:
    """What ``reconciler drift`` found: managed resources first (by address), then unmanaged ones.

    ``scopes`` describes every scope searched for unmanaged objects; ``notes``
    are things the reader should know (an interrupted run, a scope that could not be listed).
    """

    stack: str
    checked_at: str
    resources: tuple[ResourceDrift, ...]
    scopes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    format_version: int = DRIFT_FORMAT_VERSION

    def counts(self) -> dict[str, int]:
        out = {"changed": 0, "deleted": 0, "unmanaged": 0}
        for r in self.resources:
            out[r.status] += 1
        return out

    @property
    def has_drift(self) -> bool:
        return bool(self.resources)


# -- comparing -------------------------------------------------------------------


def drifted_attributes(
    recorded: Mapping[str, Any],
    live: Mapping[str, Any],
    spec: KindSpec,
    managed: Mapping[str, Any] | None,
    ignore: Sequence[str] = (),
) -> tuple[AttrChange, ...]:
    """Differences between recorded and live on the keys ``managed`` (desired attributes) sets.

    Each :class:`AttrChange` has ``before`` = recorded and ``after`` = live.
    ``managed`` None compares every recorded key. (Renderers redact secret paths.)
    """
    shape = project(recorded, managed) if managed is not None else dict(recorded)
    found = diff_attributes(shape, live, spec, ignore)  # before: live, after: recorded
    return tuple(AttrChange(d.path, d.after, d.before) for d in found)


def _gone(providers: Mapping[str, Provider], rs: ResourceState, live: Live | None) -> bool:
    provider = providers.get(rs.platform)
    if live is None or provider is None or rs.kind not in provider.kinds:
        return live is None
    return provider.kinds[rs.kind].phase(rs.id, live).absent


def _managed_shape(stack: Stack, plan: Plan | None, address: str) -> Mapping[str, Any] | None:
    change = plan.change(address) if plan is not None else None
    if address not in stack.resources or change is None or change.after is None:
        return None
    return change.after


def _compare(
    stack: Stack, plan: Plan | None, rs: ResourceState, live: Live, providers: Mapping[str, Provider]
) -> tuple[AttrChange, ...]:
    spec = providers[rs.platform].kinds[rs.kind]
    res = stack.resources.get(rs.address)
    ignore = res.lifecycle.ignore_changes if res is not None else ()
    # input-only attributes cannot be read, so they cannot drift: the recorded values stand
    seen = spec.with_inputs(live.attributes, rs.attributes)
    return drifted_attributes(rs.attributes, seen, spec, _managed_shape(stack, plan, rs.address), ignore)


def detect(
    stack: Stack,
    state: StateDoc | None,
    live: Mapping[str, Live | None],
    plan: Plan | None,
    providers: Mapping[str, Provider],
    unmanaged: Sequence[Unmanaged] = (),
    *,
    checked_at: str = "",
    scopes: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> DriftReport:
    """Compare every recorded resource with what refresh read; add the unmanaged objects.

    ``live`` maps an address to what refresh found (None: gone); an address
    missing from it was not read and is not reported.
    """
    found: list[ResourceDrift] = []
    for address, rs in sorted(state.resources.items() if state else ()):
        if address not in live:
            continue
        current = live[address]
        base = ResourceDrift("changed", rs.platform, rs.kind, rs.id, address, rs.name, dict(rs.scope))
        if current is None or _gone(providers, rs, current):
            found.append(ResourceDrift("deleted", **_fields(base)))
            continue
        diff = _compare(stack, plan, rs, current, providers)
        if diff:
            attrs = tuple(DriftedAttribute(d.path, d.before, d.after) for d in diff)
            found.append(ResourceDrift("changed", **{**_fields(base), "attributes": attrs}))
    for u in sorted(unmanaged, key=lambda u: (u.platform, u.kind, u.live.name or "", u.live.id)):
        found.append(
            ResourceDrift(
                "unmanaged", u.platform, u.kind, u.live.id, None, u.live.name, dict(u.scope), where=u.where
            )
        )
    return DriftReport(stack.name, checked_at, tuple(found), tuple(scopes), tuple(notes))


def _fields(r: ResourceDrift) -> dict[str, Any]:
    return {
        "platform": r.platform,
        "kind": r.kind,
        "id": r.id,
        "address": r.address,
        "name": r.name,
        "scope": r.scope,
    }


# -- accepting the live values -----------------------------------------------------


def refresh_only_plan(
    stack: Stack,
    state: StateDoc | None,
    live: Mapping[str, Live | None],
    plan: Plan | None,
    providers: Mapping[str, Provider],
    *,
    created_at: str = "",
    variables: Mapping[str, str] | None = None,
    var_files: Sequence[str] = (),
) -> Plan:
    """A plan that records the live values in state and changes nothing on the platforms.

    Per recorded resource: ``update`` (``before`` = recorded, ``after`` = the
    live attributes; ``diff`` lists what changed on the managed keys, recorded
    -> live) when it drifted; ``delete`` (``before`` = recorded; it is only
    forgotten) when it is gone; ``no-op`` otherwise (``after`` = live: applying
    records server-side values too). Outputs are resolved against the live values.
    Such a plan is applied by :func:`recorded_state`, never by the applier.
    """
    changes: list[Change] = []
    known: dict[str, Mapping[str, Any]] = {}
    for address, rs in state.resources.items() if state else ():
        base = Change(
            address=address,
            platform=rs.platform,
            kind=rs.kind,
            action=Action.NOOP,
            before=rs.attributes,
            after=rs.attributes,
            id=rs.id,
            name=rs.name,
            scope=dict(rs.scope),
            depends_on=tuple(rs.dependencies),
        )
        if address not in live:
            changes.append(base)
            known[address] = {**rs.attributes, "id": rs.id}
            continue
        current = live[address]
        if current is None or _gone(providers, rs, current):
            gone = {"action": Action.DELETE, "after": None}
            reason = "deleted out of band; will be forgotten"
            changes.append(Change(**{**_change_fields(base), **gone, "reason": reason}))
            continue
        known[address] = {**current.attributes, "id": rs.id}
        diff = _compare(stack, plan, rs, current, providers)
        spec = providers[rs.platform].kinds[rs.kind]
        fields = {**_change_fields(base), "after": spec.with_inputs(current.attributes, rs.attributes)}
        if diff:
            fields |= {
                "action": Action.UPDATE,
                "diff": diff,
                "reason": "changed out of band; live values recorded",
            }
        changes.append(Change(**fields))
    outputs = {k: resolve(v, stack, known) for k, v in stack.outputs.items()}
    outputs = {k: None if v is UNKNOWN else v for k, v in outputs.items()}
    output_changes = diff_outputs(outputs, state)
    return Plan(
        stack=stack.name,
        stack_file=stack.file,
        digest=stack.digest,
        lineage=state.lineage if state else None,
        serial=state.serial if state else None,
        changes=tuple(changes),
        created_at=created_at,
        variables=dict(variables or {}),
        var_files=tuple(var_files),
        refresh_only=True,
        output_changes=output_changes,
    )


def _change_fields(c: Change) -> dict[str, Any]:
    return {
        "address": c.address,
        "platform": c.platform,
        "kind": c.kind,
        "action": c.action,
        "before": c.before,
        "after": c.after,
        "diff": c.diff,
        "reason": c.reason,
        "id": c.id,
        "name": c.name,
        "scope": c.scope,
        "depends_on": c.depends_on,
    }


def recorded_state(plan: Plan, state: StateDoc) -> StateDoc:
    """The state a refresh-only plan leaves: live attributes recorded, resources gone forgotten.

    Serial is left alone (the caller bumps it when it persists).
    """
    doc = state
    for c in plan.changes:
        rs = doc.resources.get(c.address)
        if rs is None:
            continue
        if c.action is Action.DELETE:
            doc = doc.without_resource(c.address)
        elif c.after is not None:
            doc = doc.with_resource(rs.model_copy(update={"attributes": dict(c.after)}))
    outputs = dict(doc.outputs)
    for o in plan.output_changes:
        if o.after is None:
            outputs.pop(o.path, None)
        else:
            outputs[o.path] = o.after
    return doc.with_outputs(outputs)
