"""Resolving :class:`~reconciler.stack.spec.Deferred` values once other resources' attributes are known.

Pure: takes the stack and an ``address -> attributes`` mapping of applied (or
refreshed) resources and returns values. A template whose inputs are not all
known yet resolves to :data:`~reconciler.providers.base.UNKNOWN`, which the
planner shows as "(known after apply)".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.errors import Issue, StackError
from reconciler.providers.base import UNKNOWN
from reconciler.stack import templates
from reconciler.stack.spec import SECTIONS, Deferred, Stack


def referenced(value: Any) -> set[str]:
    """Addresses read by the Deferred values anywhere inside ``value``."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Deferred):
            found.update(item.refs)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found


def resolve(value: Any, stack: Stack, attributes: Mapping[str, Mapping[str, Any]]) -> Any:
    """``value`` with every Deferred inside rendered; UNKNOWN where an input is not known yet.

    ``attributes`` maps an address to the attributes of that resource, e.g.
    ``{"endpoints.infer": {"id": "ep-1", "name": "infer-dev"}}``. A Deferred
    whose address is absent, whose attribute is absent, or which reads an
    UNKNOWN value resolves to UNKNOWN. Other rendering failures (which a
    loaded stack cannot contain) raise :class:`StackError`.
    """
    ctx: dict[str, Any] | None = None

    def walk(item: Any) -> Any:
        nonlocal ctx
        if isinstance(item, Deferred):
            if ctx is None:
                ctx = templates.context(stack.variables, stack.env)
            return _render(item, stack, ctx, attributes)
        if isinstance(item, Mapping):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, tuple):
            return tuple(walk(v) for v in item)
        return item

    return walk(value)


def _render(
    deferred: Deferred, stack: Stack, ctx: Mapping[str, Any], attributes: Mapping[str, Mapping[str, Any]]
) -> Any:
    sections: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for address in deferred.refs:
        if address not in attributes:
            return UNKNOWN
        section, key = address.split(".", 1)
        sections[section][key] = templates.pending(attributes[address])
    try:
        return templates.render(deferred.template, {**ctx, **sections})
    except templates.TemplateError as exc:
        if exc.undefined:
            return UNKNOWN
        raise StackError(
            [Issue(stack.file, None, "", f"cannot render {deferred.template!r}: {exc.message}")]
        ) from None
