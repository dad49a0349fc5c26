"""Plan values: what will change and why, frozen, serialisable, guarded against staleness.

Purely data: building a Plan is the planner's job; carrying it out is the
applier's. A saved plan records the state lineage and serial it was made
against and the digest of the rendered stack; :func:`check_current` refuses
to apply it when either has moved on. A saved plan carries a ``checksum``
(sha256 of its canonical JSON): :func:`read_plan` refuses a truncated,
hand-edited or corrupted file whole, never half-reads it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from reconciler.assessment import Assessment, assessment_from_dict, assessment_to_dict
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
    ``provisioning``: a no-op whose object is still on its way to ready (its live status, e.g.
    ``CREATING``, left by an interrupted apply): apply waits for it before calling the stack
    converged, and before its dependants' steps.
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
    provisioning: str | None = None

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

    ``refresh_only``: the changes record live values in state (an update
    carries the live attributes as ``after``; a delete forgets a resource
    deleted out of band) and nothing on the platforms changes.
    ``blocked``: lifecycle.prevent_destroy hits (one message each); such a plan
    is shown but never applied. ``assessment``: policy results and cost, when
    they were evaluated.
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
    blocked: tuple[str, ...] = ()
    assessment: Assessment | None = None
    format_version: int = PLAN_FORMAT_VERSION

    @property
    def actionable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is not Action.NOOP)

    @property
    def provisioning(self) -> tuple[Change, ...]:
        """No-ops whose objects are still provisioning: apply waits for them."""
        return tuple(c for c in self.changes if c.action is Action.NOOP and c.provisioning is not None)

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable) or bool(self.output_changes) or bool(self.provisioning)

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "replace": 0, "delete": 0}
        for c in self.actionable:
            out[c.action.value] += 1
        return out

    def change(self, address: str) -> Change | None:
        """The change of ``address`` (the first, should there be two), found in O(1)."""
        return self._by_address.get(address)

    @functools.cached_property
    def _by_address(self) -> dict[str, Change]:
        """Built on first use: callers look up every address of a large plan (drift, review)."""
        index: dict[str, Change] = {}
        for c in self.changes:
            index.setdefault(c.address, c)
        return index


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
        "blocked": list(plan.blocked),
        "assessment": None if plan.assessment is None else assessment_to_dict(plan.assessment),
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
                **({"provisioning": c.provisioning} if c.provisioning is not None else {}),
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
                provisioning=c.get("provisioning"),
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
            blocked=tuple(str(b) for b in data.get("blocked", ())),
            assessment=None if data.get("assessment") is None else assessment_from_dict(data["assessment"]),
            output_changes=tuple(
                AttrChange(o["name"], _decode(o["before"]), _decode(o["after"]))
                for o in data.get("output_changes", [])
            ),
            format_version=version,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(f"plan file {source} is malformed ({exc!r}); plan again with --out") from None


CHECKSUM_FIELD = "checksum"
_CHECKSUM_PREFIX = "sha256:"


def _checksum(data: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical compact JSON of ``data`` without its checksum."""
    body = {k: v for k, v in data.items() if k != CHECKSUM_FIELD}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _CHECKSUM_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_no_credentials(
    variables: Mapping[str, str], secrets: Iterable[str], path: Path, *, text: str | None = None
) -> None:
    """Refuse (PlanFileError) a plan file that would hold a credential, without showing it.

    Called before planning with the variables alone (so that nothing is called when
    the plan could not be saved anyway), and again on the whole text being written.
    """
    for secret in (s for s in secrets if s):
        names = sorted(k for k, v in variables.items() if secret in v)
        if names or (text is not None and secret in text):
            via = f" (it comes from --var {', '.join(names)})" if names else ""
            raise PlanFileError(
                f"not saving the plan to {path}: it would contain a credential{via}; a plan file never"
                " stores credentials: pass them through the environment ({{ env.NAME }} in the provider"
                " block) instead"
            )


def write_plan(plan: Plan, path: Path, *, secrets: Iterable[str] = ()) -> None:
    """Write atomically (temp file + rename), mode 0600, with a ``checksum`` field.

    ``secrets`` are values the run knows to be credentials (provider tokens,
    keys, passwords): a plan that would contain one (say, passed as a ``--var``)
    is refused, with a message that does not show it; a plan file never
    stores credentials.
    """
    import os
    import tempfile

    data = plan_to_dict(plan)
    text = json.dumps(data, indent=2, sort_keys=True)
    check_no_credentials(plan.variables, secrets, path, text=text)
    data[CHECKSUM_FIELD] = _checksum(data)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
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
    """Read a plan written by :func:`write_plan`, whole and verified, or refuse it.

    Refused with a :class:`PlanFileError` that says what to do: an unreadable,
    empty, truncated or hand-edited file (not JSON, no checksum, or a checksum
    that does not match), and one written by a newer reconciler (checked
    before the checksum, whose rules a newer format may change). Nothing of a
    refused file is used.
    """
    again = "make a new one with `reconciler plan --out`"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanFileError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PlanFileError(
            f"plan file {path} is not UTF-8 text, so not a reconciler plan; {again}"
        ) from None
    if not text.strip():
        raise PlanFileError(f"plan file {path} is empty (truncated?); {again}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(
            f"plan file {path} is not valid JSON (line {exc.lineno}: {exc.msg}); it is truncated or was"
            f" edited by hand; {again}"
        ) from None
    except RecursionError:
        raise PlanFileError(
            f"plan file {path} is nested too deeply to be a reconciler plan; {again}"
        ) from None
    if not isinstance(data, dict):
        raise PlanFileError(f"plan file {path} is not a reconciler plan (expected a JSON object); {again}")
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > PLAN_FORMAT_VERSION:
        return plan_from_dict(data, str(path))  # refuses it, naming the format
    recorded = data.pop(CHECKSUM_FIELD, None)
    if recorded is None:
        raise PlanFileError(
            f"plan file {path} has no checksum, so it was not written whole by `reconciler plan --out`;"
            f" {again}"
        )
    if recorded != _checksum(data):
        raise PlanFileError(
            f"plan file {path} is corrupted or was edited (checksum mismatch); a saved plan is applied"
            f" exactly as it was reviewed or not at all; {again}"
        )
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
