"""Plan values: what will change and why, frozen, serialisable, guarded against staleness.

Purely data: building a Plan is the planner's job; carrying it out is the
applier's. A saved plan records the state lineage and serial it was made
against and the digest of the rendered stack; :func:`check_current` refuses
to apply it when either has moved on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from reconciler.errors import PlanFileError
from reconciler.providers.base import UNKNOWN

PLAN_FORMAT_VERSION = 1


class Action(StrEnum):
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"no-op": " ", "create": "+", "update": "~", "replace": "-/+", "delete": "-"}[self.value]


@dataclass(frozen=True)
class AttrChange:
    """One attribute that differs: dotted ``path``, ``before`` (live) and ``after`` (desired)."""

    path: str
    before: Any
    after: Any
    forces_replacement: bool = False


@dataclass(frozen=True)
class Change:
    """The planned action for one address.

    ``before``: live attributes (or recorded ones when not refreshed); None for a create.
    ``after``: desired attributes (values may be UNKNOWN); None for a delete.
    ``depends_on``: desired dependencies (create/update/replace) or recorded ones (delete).
    ``prior_dependants``: addresses that depended on this one in the recorded state.
    ``reason``: why, when it is not self-evident ("deleted out of band", "not in the stack").
    """

    address: str
    platform: str
    kind: str
    action: Action
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    diff: tuple[AttrChange, ...] = ()
    reason: str = ""
    id: str | None = None
    name: str | None = None
    scope: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    create_before_destroy: bool = False

    @property
    def symbol(self) -> str:
        if self.action is Action.REPLACE and self.create_before_destroy:
            return "+/-"
        return self.action.symbol


@dataclass(frozen=True)
class Plan:
    """An immutable plan.

    ``changes`` holds every resource (no-ops included) in dependency order,
    deletes last. ``lineage``/``serial`` are those of the state the plan was
    made against (None when there was no state). ``digest`` fingerprints the
    rendered stack. ``variables`` are the command-line overrides used, so that
    applying a saved plan renders the stack exactly as planned.
    """

    stack: str
    stack_file: str
    digest: str
    lineage: str | None
    serial: int | None
    changes: tuple[Change, ...]
    created_at: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    var_files: tuple[str, ...] = ()
    refresh_only: bool = False
    destroy: bool = False
    warnings: tuple[str, ...] = ()
    output_changes: tuple[AttrChange, ...] = ()
    format_version: int = PLAN_FORMAT_VERSION

    @property
    def actionable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is not Action.NOOP)

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable) or bool(self.output_changes)

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "replace": 0, "delete": 0}
        for c in self.actionable:
            out[c.action.value] += 1
        return out

    def change(self, address: str) -> Change | None:
        for c in self.changes:
            if c.address == address:
                return c
        return None


# -- serialisation -------------------------------------------------------------

_UNKNOWN_MARK = {"__unknown__": True}


def _encode(value: Any) -> Any:
    if value is UNKNOWN:
        return dict(_UNKNOWN_MARK)
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if value == _UNKNOWN_MARK:
            return UNKNOWN
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": plan.format_version,
        "stack": plan.stack,
        "stack_file": plan.stack_file,
        "digest": plan.digest,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "created_at": plan.created_at,
        "variables": dict(plan.variables),
        "var_files": list(plan.var_files),
        "refresh_only": plan.refresh_only,
        "destroy": plan.destroy,
        "warnings": list(plan.warnings),
        "output_changes": [
            {"name": o.path, "before": _encode(o.before), "after": _encode(o.after)}
            for o in plan.output_changes
        ],
        "changes": [
            {
                "address": c.address,
                "platform": c.platform,
                "kind": c.kind,
                "action": c.action.value,
                "before": _encode(c.before),
                "after": _encode(c.after),
                "diff": [
                    {
                        "path": d.path,
                        "before": _encode(d.before),
                        "after": _encode(d.after),
                        "forces_replacement": d.forces_replacement,
                    }
                    for d in c.diff
                ],
                "reason": c.reason,
                "id": c.id,
                "name": c.name,
                "scope": dict(c.scope),
                "depends_on": list(c.depends_on),
                "create_before_destroy": c.create_before_destroy,
            }
            for c in plan.changes
        ],
    }


def plan_from_dict(data: Mapping[str, Any], source: str) -> Plan:
    if not isinstance(data, Mapping):
        raise PlanFileError(f"plan file {source} is not a reconciler plan (expected a JSON object)")
    version = data.get("format_version")
    if not isinstance(version, int):
        raise PlanFileError(f"plan file {source} has no format_version; it is not a reconciler plan")
    if version > PLAN_FORMAT_VERSION:
        raise PlanFileError(
            f"plan file {source} was written by a newer reconciler (format {version}, "
            f"this one reads up to {PLAN_FORMAT_VERSION}); upgrade reconciler or plan again"
        )
    try:
        changes = tuple(
            Change(
                address=c["address"],
                platform=c["platform"],
                kind=c["kind"],
                action=Action(c["action"]),
                before=_decode(c.get("before")),
                after=_decode(c.get("after")),
                diff=tuple(
                    AttrChange(d["path"], _decode(d["before"]), _decode(d["after"]), d["forces_replacement"])
                    for d in c.get("diff", [])
                ),
                reason=c.get("reason", ""),
                id=c.get("id"),
                name=c.get("name"),
                scope=dict(c.get("scope", {})),
                depends_on=tuple(c.get("depends_on", ())),
                create_before_destroy=bool(c.get("create_before_destroy", False)),
            )
            for c in data["changes"]
        )
        return Plan(
            stack=data["stack"],
            stack_file=data["stack_file"],
            digest=data["digest"],
            lineage=data.get("lineage"),
            serial=data.get("serial"),
            changes=changes,
            created_at=data.get("created_at", ""),
            variables=dict(data.get("variables", {})),
            var_files=tuple(data.get("var_files", ())),
            refresh_only=bool(data.get("refresh_only", False)),
            destroy=bool(data.get("destroy", False)),
            warnings=tuple(data.get("warnings", ())),
            output_changes=tuple(
                AttrChange(o["name"], _decode(o["before"]), _decode(o["after"]))
                for o in data.get("output_changes", [])
            ),
            format_version=version,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(f"plan file {source} is malformed ({exc!r}); plan again with --out") from None


def write_plan(plan: Plan, path: Path) -> None:
    """Write atomically (temp file + rename), mode 0600."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(plan_to_dict(plan), indent=2, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_plan(path: Path) -> Plan:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanFileError(f"cannot read plan file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PlanFileError(f"plan file {path} is not UTF-8 text; it is not a reconciler plan") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(
            f"plan file {path} is not valid JSON (line {exc.lineno}); plan again with --out"
        ) from None
    return plan_from_dict(data, str(path))


def check_current(plan: Plan, *, stack: str, digest: str, lineage: str | None, serial: int | None) -> None:
    """Refuse a saved plan whose stack, config or state has changed since it was made."""
    if plan.stack != stack:
        raise PlanFileError(f"plan was made for stack '{plan.stack}', not '{stack}'")
    if plan.digest != digest:
        raise PlanFileError("stack configuration changed since the plan was made; run plan again")
    if plan.lineage is not None and lineage is not None and plan.lineage != lineage:
        raise PlanFileError(
            f"plan was made against state lineage {plan.lineage}, but the state has lineage {lineage}; "
            "run plan again"
        )
    if plan.lineage != lineage or plan.serial != serial:
        raise PlanFileError(
            f"plan is stale: made against state serial {plan.serial}, state is now at serial {serial}; "
            "run plan again"
        )
