"""Desired (stack) + recorded (state) + live (refresh) -> Plan. Pure: no I/O.

Given the same three inputs the planner returns the same Plan. Providers are
consulted only for their pure half (``kinds`` and ``desired``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import replace
from typing import Any

from reconciler.errors import PolicyError, UsageError
from reconciler.graph import Graph
from reconciler.plan import Action, AttrChange, Change, Plan
from reconciler.providers.base import UNKNOWN, KindSpec, Limit, Live, Phase, Provider, RefValue
from reconciler.stack.expressions import resolve
from reconciler.stack.spec import ResourceSpec, Stack
from reconciler.state.document import ResourceState, StateDoc


def _matches(path: str, prefixes: Iterable[str]) -> bool:
    """True when ``path`` is one of ``prefixes``, lies under one, or contains one."""
    for p in prefixes:
        if path == p or path.startswith(p + ".") or path.startswith(p + "[") or p.startswith(path + "."):
            return True
    return False


def project(live: Any, desired: Any) -> Any:
    """The part of ``live`` that ``desired`` speaks about (server-side extras dropped)."""
    if isinstance(desired, Mapping) and isinstance(live, Mapping):
        return {k: project(live.get(k), v) for k, v in desired.items()}
    return live


def _drop(value: Any, path: str) -> Any:
    """A copy of ``value`` without the dotted ``path``."""
    if not isinstance(value, Mapping):
        return value
    head, _, rest = path.partition(".")
    if head not in value:
        return value
    out = dict(value)
    if rest:
        out[head] = _drop(out[head], rest)
    else:
        del out[head]
    return out


def _dotted(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _present(value: Any) -> Any:
    return None if type(value).__name__ == "NotPresent" else value


def diff_attributes(
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    spec: KindSpec,
    ignore: Iterable[str] = (),
) -> tuple[AttrChange, ...]:
    """Attribute-level differences between live and desired, on the keys desired sets."""
    before: Any = project(live, desired)
    after: Any = dict(desired)
    for path in (*spec.read_only, *ignore):
        if path.partition(".")[0] in after:  # both sides have desired's keys: the rest drops nothing
            before = _drop(before, path)
            after = _drop(after, path)
    if before == after:
        return ()
    from deepdiff import DeepDiff  # only when something differs: importing it costs more than a no-op plan

    tree = DeepDiff(before, after, ignore_numeric_type_changes=True, view="tree")
    changes: dict[str, AttrChange] = {}
    for levels in tree.values():
        for level in levels:
            path = _dotted(level.path(output_format="list"))
            changes[path] = AttrChange(
                path=path,
                before=_present(level.t1),
                after=_present(level.t2),
                forces_replacement=_matches(path, spec.force_new),
            )
    return tuple(changes[k] for k in sorted(changes))


def _known(change: Change, live: Live | None, spec: KindSpec) -> tuple[Any, dict[str, Any]]:
    """The id and attributes a dependant may rely on once this resource is applied."""
    desired = change.after or {}
    if change.action in (Action.CREATE, Action.REPLACE) or live is None:
        attrs = {k: v for k, v in desired.items() if v is not UNKNOWN}
        return UNKNOWN, {**attrs, "id": UNKNOWN}
    attrs = {**live.attributes, **{k: v for k, v in desired.items() if v is not UNKNOWN}}
    for attribute, trigger in spec.recomputed:
        if any(_matches(d.path, (trigger,)) for d in change.diff):
            attrs[attribute] = UNKNOWN
    return live.id, {**attrs, "id": live.id}


def _phase(providers: Mapping[str, Provider], rec: ResourceState, live: Live | None) -> Phase:
    """The phase of a recorded object; without its provider (or kind) only absence is known."""
    provider = providers.get(rec.platform)
    if provider is None or rec.kind not in provider.kinds:
        return Phase.GONE if live is None else Phase.READY
    return provider.kinds[rec.kind].phase(rec.id, live)


def _provider(providers: Mapping[str, Provider], platform: str, address: str) -> Provider:
    try:
        return providers[platform]
    except KeyError:
        raise UsageError(
            f"{address}: no provider block for platform '{platform}'; add providers.{platform}"
        ) from None


def _desired_change(
    res: ResourceSpec,
    provider: Provider,
    stack: Stack,
    recorded: ResourceState | None,
    live: Live | None,
    known_attrs: Mapping[str, Mapping[str, Any]],
    known_ids: Mapping[str, Any],
) -> Change:
    spec = provider.kinds[res.kind]
    attrs = resolve(dict(res.attrs), stack, known_attrs)
    refs = {
        field: RefValue(
            address=target, id=known_ids.get(target, UNKNOWN), attributes=known_attrs.get(target, {})
        )
        for field, target in res.refs.items()
    }
    desired = provider.desired(res.kind, attrs, refs)
    name = spec.identity_of(desired)
    base = Change(
        address=res.address,
        platform=res.platform,
        kind=res.kind,
        action=Action.CREATE,
        after=desired,
        name=name,
        depends_on=res.depends_on,
        create_before_destroy=res.lifecycle.create_before_destroy,
    )
    if recorded is None:
        return _with_create_defaults(base, spec, f"{stack.name}/{res.address}")
    base = replace(base, id=recorded.id, scope=dict(recorded.scope))
    if recorded.platform != res.platform or recorded.kind != res.kind:
        reason = f"platform/kind changed from {recorded.platform}/{recorded.kind}"
        return replace(base, action=Action.REPLACE, before=recorded.attributes, reason=reason)
    phase = spec.phase(recorded.id, live)
    if phase.absent:
        created = _with_create_defaults(base, spec, f"{stack.name}/{res.address}")
        return replace(created, reason="deleted out of band; will be created again")
    if phase is Phase.FAILED:
        reason = f"live status is {live.status if live else None}; will be replaced"
        return replace(base, action=Action.REPLACE, before=live.attributes if live else None, reason=reason)
    assert live is not None  # absent phases above
    # input-only attributes are never returned: compare them with what the last apply sent
    seen = spec.with_inputs(live.attributes, recorded.attributes)
    diff = diff_attributes(desired, seen, spec, res.lifecycle.ignore_changes)
    if not diff:
        # an object an interrupted apply left on its way to ready: apply waits for it
        waiting = (live.status or "unknown") if phase is Phase.IN_PROGRESS else None
        return replace(base, action=Action.NOOP, before=live.attributes, provisioning=waiting)
    action = (
        Action.REPLACE if (not spec.updatable or any(d.forces_replacement for d in diff)) else Action.UPDATE
    )
    return replace(base, action=action, before=live.attributes, diff=diff)


def _with_create_defaults(change: Change, spec: KindSpec, seed: str) -> Change:
    """A create with the kind's identity defaults filled in where the stack left them out.

    Only creates get them: an object already made keeps what it was made with,
    so a default introduced later never shows as a change.
    """
    if spec.create_defaults is None:
        return change
    after = dict(change.after or {})
    defaults = {k: v for k, v in spec.create_defaults(seed).items() if after.get(k) is None}
    if not defaults:
        return change
    after.update(defaults)
    return replace(change, after=after, name=spec.identity_of(after))


def _propagate_create_before_destroy(changes: list[Change]) -> list[Change]:
    """Terraform's rule: the replaced resources a create_before_destroy replacement depends on are
    replaced create-before-destroy too.

    Else the dependency's old object would have to go first, while the old
    dependant (kept until its successor is ready) still uses it: the platform
    refuses that delete, and the plan never applies. ``changes`` are in
    dependency order, so walking them backwards reaches every dependant first.
    """
    by_address = {c.address: i for i, c in enumerate(changes)}
    out = list(changes)
    for i in range(len(out) - 1, -1, -1):
        c = out[i]
        if not (c.action is Action.REPLACE and c.create_before_destroy):
            continue
        for d in c.depends_on:
            j = by_address.get(d)
            if j is not None and out[j].action is Action.REPLACE and not out[j].create_before_destroy:
                out[j] = replace(out[j], create_before_destroy=True)
    return out


def _number(attributes: Mapping[str, Any] | None, path: str) -> float | None:
    value: Any = attributes
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return None if isinstance(value, bool) or not isinstance(value, int | float) else float(value)


def _direction(change: Change, path: str) -> int:
    """-1, 0 or 1: the number at ``path`` falls, stays (or is not a known number) or rises."""
    before, after = _number(change.before, path), _number(change.after, path)
    if before is None or after is None or before == after:
        return 0
    return -1 if after < before else 1


def _consumes(child: Change, parent: Change, limit: Limit) -> bool:
    """``child`` is an object of the limit's child kind on ``parent``."""
    return (
        child.platform == parent.platform
        and child.kind == limit.child
        and parent.address in child.depends_on
        and (child.after or {}).get(limit.ref) in (parent.id, UNKNOWN)
    )


def limit_order(
    changes: Iterable[Change], kinds: Mapping[str, Mapping[str, KindSpec]]
) -> tuple[tuple[str, str], ...]:
    """``(first, then)`` pairs of addresses whose updates the declared limits order.

    For every limit (:attr:`KindSpec.limits`) of a planned resource, and the updates
    of its children whose use of it changes (``kinds``: per platform, its kinds):

    * the limit falls: each such child goes first, the parent after it
      (the reverse of the dependency edge, so that the parent never goes below
      what its children use); it rises: the parent first, as the dependency
      edge has it (no pair: nothing to reverse);
    * children whose use falls go before children of the same parent whose use
      rises, so that the sum of uses never passes the limit between two calls.

    A child that uses one limit of its parent that falls and another that rises
    cannot go both before and after it: it keeps the dependency order.
    Everything else (creates, deletes, updates that leave limits and uses alone)
    keeps the order it had. Pure; the same changes give the same pairs, in order.
    """
    changes = list(changes)
    updates = [c for c in changes if c.action is Action.UPDATE]
    before_parent: dict[tuple[str, str], set[int]] = {}  # (child, parent): directions of the limits
    siblings: list[tuple[str, str]] = []
    for parent in changes:  # a parent left alone still bounds its children's trades
        if parent.action is Action.DELETE:
            continue
        spec = kinds.get(parent.platform, {}).get(parent.kind)
        for limit in spec.limits if spec is not None else ():
            moved = [(c, _direction(c, limit.use)) for c in updates if _consumes(c, parent, limit)]
            moved = [(c, d) for c, d in moved if d]
            limit_moves = _direction(parent, limit.path)
            if limit_moves:
                for c, _ in moved:
                    before_parent.setdefault((c.address, parent.address), set()).add(limit_moves)
            falling = [c.address for c, d in moved if d < 0]
            siblings += [(f, r.address) for f in falling for r, d in moved if d > 0]
    reversed_edges = [pair for pair, moves in before_parent.items() if moves == {-1}]
    out: list[tuple[str, str]] = []
    for pair in (*reversed_edges, *siblings):
        if pair not in out:
            out.append(pair)
    return tuple(out)


def ordered_by_limits(
    plan: Plan, providers: Mapping[str, Provider], needs: Mapping[str, Set[str]]
) -> dict[str, set[str]]:
    """``needs`` (for each step key, the steps that must finish first) with :func:`limit_order` in it.

    A ``(first, then)`` pair makes ``update then`` wait for ``update first`` and drops the
    opposite wait (the dependency edge a falling limit reverses). Should the pairs close a
    cycle with the other waits, ``needs`` is returned unchanged: the dependency order stands.
    """
    kinds = {name: p.kinds for name, p in providers.items()}
    out = {key: set(first) for key, first in needs.items()}
    for first, then in limit_order(plan.changes, kinds):
        a, b = f"update {first}", f"update {then}"
        if a in out and b in out:
            out[a].discard(b)
            out[b].add(a)
    if Graph.build(out).cycles():
        return {key: set(first) for key, first in needs.items()}
    return out


def diff_outputs(outputs: Mapping[str, Any], state: StateDoc | None) -> tuple[AttrChange, ...]:
    """Outputs whose planned value differs from the recorded one (unknown ones always do)."""
    before = dict(state.outputs) if state else {}
    return tuple(
        AttrChange(name, before.get(name), outputs.get(name))
        for name in sorted(set(outputs) | set(before))
        if outputs.get(name) is UNKNOWN or outputs.get(name) != before.get(name)
    )


def _delete_order(state: StateDoc, addresses: Iterable[str]) -> list[str]:
    """Dependants before dependencies, using the recorded dependencies."""
    chosen = list(addresses)
    graph = Graph.build({a: state.resources[a].dependencies for a in chosen})
    return list(reversed(graph.order()))


def build_plan(
    stack: Stack,
    state: StateDoc | None,
    live: Mapping[str, Live | None],
    providers: Mapping[str, Provider],
    *,
    destroy: bool = False,
    variables: Mapping[str, str] | None = None,
    var_files: Iterable[str] = (),
    created_at: str = "",
    keep_blocked: bool = False,
) -> Plan:
    """Diff the stack against recorded and live state.

    ``live`` maps a recorded address to what refresh found (None: gone). An
    address missing from ``live`` was not refreshed; its recorded attributes stand in.
    A replacement or delete of a resource with ``lifecycle.prevent_destroy``
    raises :class:`PolicyError`; with ``keep_blocked`` it is planned anyway and
    named in ``Plan.blocked`` (for a reviewer to see; such a plan is never applied).
    """
    recorded = dict(state.resources) if state else {}

    def live_of(address: str) -> Live | None:
        if address in live:
            return live[address]
        rs = recorded[address]
        return Live(id=rs.id, attributes=rs.attributes, status=rs.status, name=rs.name)

    changes: list[Change] = []
    warnings: list[str] = []
    blocked: list[str] = []

    def refuse(message: str) -> None:
        if not keep_blocked:
            raise PolicyError(message)
        blocked.append(message)

    known_attrs: dict[str, Mapping[str, Any]] = {}
    known_ids: dict[str, Any] = {}
    wanted = {} if destroy else dict(stack.resources)

    order = Graph.build({a: r.depends_on for a, r in wanted.items()}).order()
    for address in order:
        res = wanted[address]
        provider = _provider(providers, res.platform, address)
        if res.kind not in provider.kinds:
            raise UsageError(f"{address}: platform '{res.platform}' has no resource kind '{res.kind}'")
        rec = recorded.get(address)
        current = live_of(address) if rec else None
        change = _desired_change(res, provider, stack, rec, current, known_attrs, known_ids)
        if change.action is Action.REPLACE and res.lifecycle.prevent_destroy:
            refuse(
                f"{address}: lifecycle.prevent_destroy is set, but the plan must replace it "
                f"({', '.join(d.path for d in change.diff) or change.reason}); "
                "change the stack or remove prevent_destroy"
            )
        known_ids[address], known_attrs[address] = _known(change, current, provider.kinds[res.kind])
        changes.append(change)

    changes = _propagate_create_before_destroy(changes)
    gone = [a for a in recorded if a not in wanted]
    for address in _delete_order(state, gone) if state else []:
        rec = recorded[address]
        res_spec = stack.resources.get(address)
        if res_spec is not None and res_spec.lifecycle.prevent_destroy:
            refuse(
                f"{address}: lifecycle.prevent_destroy is set; refusing to destroy it. "
                "Remove prevent_destroy from the stack first"
            )
        current = live_of(address)
        gone_already = _phase(providers, rec, current) is Phase.GONE
        changes.append(
            Change(
                address=address,
                platform=rec.platform,
                kind=rec.kind,
                action=Action.DELETE,
                before=None if gone_already else current.attributes if current else None,
                reason="already gone; only forgotten"
                if gone_already
                else ("destroy" if destroy else "not in the stack"),
                id=rec.id,
                name=rec.name,
                scope=dict(rec.scope),
                depends_on=tuple(rec.dependencies),
            )
        )

    for c in changes:
        if c.action is Action.REPLACE:
            warnings.append(
                f"{c.address} will be replaced ({c.reason or 'a field that cannot change in place'})"
            )
        elif c.action is Action.DELETE and c.before is not None and not destroy:
            warnings.append(f"{c.address} will be deleted ({c.reason})")

    outputs = {} if destroy else {k: resolve(v, stack, known_attrs) for k, v in stack.outputs.items()}
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
        destroy=destroy,
        warnings=tuple(warnings),
        output_changes=output_changes,
        blocked=tuple(blocked),
    )
