"""Showing attribute values: JSON-like literals, unknowns, and redaction of secrets."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.providers.base import UNKNOWN

REDACTED = "(sensitive)"


def show(value: Any) -> str:
    if value is UNKNOWN:
        return "(known after apply)"
    if value is None:
        return "null"
    if isinstance(value, str) and value == REDACTED:
        return value
    return json.dumps(value, sort_keys=True, default=repr)


def redact(value: Any, secrets: Iterable[str], prefix: str = "") -> Any:
    """A copy of ``value`` with every dotted path in ``secrets`` replaced by REDACTED."""
    paths = set(secrets)
    if not paths:
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            out[k] = REDACTED if path in paths and v is not None else redact(v, paths, path)
        return out
    return value


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, leaf value) pairs in key order."""
    if isinstance(value, Mapping) and value:
        out: list[tuple[str, Any]] = []
        for k in value:
            out += flatten(value[k], f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value)]


def output_change(name: str, before: Any, after: Any) -> str:
    """One output's change: ``+ name = after`` (new), ``- name = before`` (gone), ``~ name: a -> b``."""
    if before is None:
        return f"+ {name} = {show(after)}"
    if after is None:
        return f"- {name} = {show(before)}"
    return f"~ {name}: {show(before)} -> {show(after)}"
