"""Rollback as one more plan: desired = the world as it was before the apply.

Pure: builds values only. The applier runs the result like any plan, so there
is no separate undo code path. Given the state before the apply and the plan
that was being applied, :func:`target_stack` describes every resource as it
was (its live attributes when the plan was made, server-side fields dropped).
A reference to another resource's server-assigned value (its id, or a
read-only attribute such as a model's ``version_id``) becomes a template
``{{ section.key.attr }}``, so that a dependency re-created by the rollback
re-points its dependants at its new id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from reconciler.plan import Plan
from reconciler.providers.base import Provider
from reconciler.stack.spec import Deferred, ResourceSpec, Stack
from reconciler.state.document import DEPOSED, ResourceState, StateDoc


def _strip(value: Any, read_only: frozenset[str], prefix: str = "") -> Any:
    if not isinstance(value, Mapping):
        return value
    out = {}
    for k, v in value.items():
        path = f"{prefix}.{k}" if prefix else str(k)
        if path in read_only or v is None:
            continue
        out[k] = _strip(v, read_only, path)
    return out


def _server_values(rs: ResourceState, read_only: frozenset[str]) -> dict[str, str]:
    """Server-assigned string values of a resource -> the attribute they come from."""
    values = {rs.id: "id"}
    for attr in sorted(read_only):
        v = rs.attributes.get(attr)
        if isinstance(v, str) and v and attr not in ("status",):
            values.setdefault(v, attr)
    return values


def _link(value: Any, sources: Mapping[str, tuple[str, str]]) -> tuple[Any, set[str]]:
    """Replace values that are another resource's server values by templates."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        refs: set[str] = set()
        for k, v in value.items():
            out[k], r = _link(v, sources)
            refs |= r
        return out, refs
    if isinstance(value, str) and value in sources:
        address, attr = sources[value]
        return Deferred(template="{{ " + f"{address}.{attr}" + " }}", refs=(address,)), {address}
    return value, set()


def target_stack(before: StateDoc, plan: Plan, providers: Mapping[str, Provider], file: str) -> Stack:
    """The stack whose plan undoes an apply: every resource that existed before, as it was."""
    live_before = {c.address: c.before for c in plan.changes}
    resources: dict[str, ResourceSpec] = {}
    kept = {
        a: rs
        for a, rs in before.resources.items()
        if "#" not in a and (a not in live_before or live_before[a] is not None)
    }
    specs = {a: providers[rs.platform].kinds[rs.kind] for a, rs in kept.items() if rs.platform in providers}
    for address, rs in kept.items():
        spec = specs.get(address)
        if spec is None:
            continue
        sources: dict[str, tuple[str, str]] = {}
        for dep in rs.dependencies:
            if dep in kept and dep in specs:
                for value, attr in _server_values(kept[dep], specs[dep].read_only).items():
                    sources[value] = (dep, attr)
        # input-only values (a Model Studio name, a Fabric public_access) are never live: the recorded ones
        attributes = spec.with_inputs(live_before.get(address) or rs.attributes, rs.attributes)
        attrs, refs = _link(_strip(attributes, spec.read_only), sources)
        section, _, key = address.partition(".")
        resources[address] = ResourceSpec(
            address=address,
            section=section,
            key=key,
            platform=rs.platform,
            kind=rs.kind,
            attrs=attrs,
            depends_on=tuple(sorted(refs | {d for d in rs.dependencies if d in kept})),
            file=file,
        )
    # an output that held a server value (an id, say) follows the object the rollback restores
    every: dict[str, tuple[str, str]] = {}
    for address, rs in kept.items():
        if address in specs:
            for value, attr in _server_values(rs, specs[address].read_only).items():
                every.setdefault(value, (address, attr))
    outputs = {name: _link(value, every)[0] for name, value in before.outputs.items()}
    digest = hashlib.sha256(
        json.dumps(sorted(resources), default=str).encode() + before.lineage.encode()
    ).hexdigest()
    return Stack(
        name=before.stack,
        file=file,
        providers={},
        backend={},
        variables={},
        resources=resources,
        outputs=outputs,
        digest=digest,
    )


def restore_deposed(before: StateDoc, now: StateDoc) -> StateDoc:
    """Where a create-before-destroy replacement left the old object alive, put it back.

    The old object becomes the address again; the new one is kept under a
    ``#new`` address that the rollback plan deletes (it is in no stack).
    """
    doc = now
    for address, rs in now.resources.items():
        if not address.endswith(DEPOSED):
            continue
        base = address[: -len(DEPOSED)]
        original = before.resources.get(base)
        if original is None or original.id != rs.id:
            continue
        current = doc.resources.get(base)
        doc = doc.without_resource(address)
        if current is not None:
            doc = doc.without_resource(base).with_resource(
                current.model_copy(update={"address": base + "#new"})
            )
        doc = doc.with_resource(rs.model_copy(update={"address": base}))
    return doc
