"""The machine-readable UI stream of `plan --json` and `apply --json`: one JSON object per line.

Pure: plans, progress :class:`~reconciler.applier.Event` values and outcomes in,
dicts out; the CLI writes each as one line (:func:`line`) and nothing else on
stdout. Every object has ``type``, ``@timestamp`` (ISO 8601, UTC) and
``format_version``; the types, in the order a run emits them:

``plan_summary``      the plan's counts, stack and the state serial it was made against
``resource_change``   one per resource that changes (no-ops are left out)
``diagnostic``        a warning (or, ``severity: info``, a note) at any point
``step_start``        apply: a physical step (create, update, delete, ...) begins
``step_progress``     apply: a step is still waiting (a deployment provisioning)
``step_finish``       apply: a step ended, ``status`` ok or failed (with the platform's error)
``step_skipped``      apply: a step never started because one it depends on failed
``result``            last: ok, counts, exit code, outputs, the error message when it failed

Steps of the rollback that follows a failed apply carry ``rollback: true``.
Values are redacted by attribute path exactly as the text rendering does
(:func:`reconciler.render.values.redact`); the CLI scrubs every line of the
secrets the run knows as well. ``schemas/ui-stream.schema.json`` describes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.applier import Event
from reconciler.plan import Action, Plan, plan_to_dict
from reconciler.render.values import REDACTED, flatten, redact

FORMAT_VERSION = 1

Secrets = Callable[[str, str], Iterable[str]]
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def timestamp(clock: Clock = _now) -> str:
    """ISO 8601 in UTC with microseconds, e.g. ``2025-01-31T12:00:00.123456Z``."""
    return clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message(kind: str, fields: Mapping[str, Any], clock: Clock = _now) -> dict[str, Any]:
    """One stream object: ``type``, ``@timestamp``, ``format_version``, then ``fields``."""
    return {"type": kind, "@timestamp": timestamp(clock), "format_version": FORMAT_VERSION, **fields}


def line(obj: Mapping[str, Any]) -> str:
    """``obj`` as one JSON line (no newline inside, non-ASCII kept)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def plan_summary(plan: Plan, command: str, clock: Clock = _now) -> dict[str, Any]:
    return message(
        "plan_summary",
        {
            "command": command,
            "stack": plan.stack,
            "lineage": plan.lineage,
            "serial": plan.serial,
            "destroy": plan.destroy,
            "refresh_only": plan.refresh_only,
            "has_changes": plan.has_changes,
            "counts": plan.counts(),
            "output_changes": [o.path for o in plan.output_changes],
            "blocked": list(plan.blocked),
        },
        clock,
    )


def resource_changes(
    plan: Plan, secrets: Secrets = lambda p, k: (), clock: Clock = _now
) -> list[dict[str, Any]]:
    """One ``resource_change`` per change that is not a no-op, in plan order."""
    data = plan_to_dict(plan)["changes"]
    out = []
    for change, c in zip(plan.changes, data, strict=True):
        if change.action is Action.NOOP:
            continue
        hidden = sorted(set(secrets(change.platform, change.kind)))
        changed = sorted({d.path for d in change.diff})
        if not changed and change.action is Action.CREATE:
            changed = sorted(path for path, _ in flatten(change.after or {}) if path)
        out.append(
            message(
                "resource_change",
                {
                    "address": change.address,
                    "action": change.action.value,
                    "platform": change.platform,
                    "kind": change.kind,
                    "name": change.name,
                    "id": change.id,
                    "reason": change.reason,
                    "changed": changed,
                    "forces_replacement": [d.path for d in change.diff if d.forces_replacement],
                    "before": redact(c["before"], hidden),
                    "after": redact(c["after"], hidden),
                    "sensitive": hidden,
                },
                clock,
            )
        )
    return out


def diagnostic(
    summary: str, severity: str = "warning", address: str | None = None, clock: Clock = _now
) -> dict[str, Any]:
    return message("diagnostic", {"severity": severity, "summary": summary, "address": address}, clock)


def plan_stream(
    plan: Plan,
    command: str,
    secrets: Secrets = lambda p, k: (),
    messages: Iterable[str] = (),
    clock: Clock = _now,
) -> list[dict[str, Any]]:
    """What a plan shows: summary, its changes, then its warnings and the run's messages."""
    out = [plan_summary(plan, command, clock), *resource_changes(plan, secrets, clock)]
    notes = list(dict.fromkeys([*plan.warnings, *messages]))
    out += [diagnostic(m, clock=clock) for m in notes]
    out += [diagnostic(b, severity="error", clock=clock) for b in plan.blocked]
    return out


_PROVIDER_ERROR = re.compile(
    r"^(?:(?P<address>\S+): )?(?P<platform>[a-z]+) (?:(?P<operation>.*?) )?failed: "
    r"(?:HTTP (?P<status>\d{3}) )?(?:(?P<code>[A-Za-z][\w.\-]*): )?(?P<message>.*)$",
    re.DOTALL,
)


def error_of(detail: str, platform: str | None = None) -> dict[str, Any]:
    """The platform error code, HTTP status and message of a failed step's text.

    A platform error reads ``ADDRESS: PLATFORM OPERATION failed: HTTP STATUS CODE: MESSAGE``
    (:class:`reconciler.errors.ProviderError`); any other failure keeps its whole text as
    ``message`` with a null ``code``.
    """
    m = _PROVIDER_ERROR.match(detail)
    if m is None or (platform is not None and m["platform"] != platform):
        return {"platform": platform, "code": None, "http_status": None, "message": detail}
    return {
        "platform": m["platform"],
        "code": m["code"],
        "http_status": int(m["status"]) if m["status"] else None,
        "message": m["message"],
    }


class ApplyStream:
    """Turns an apply's progress events into stream objects (it remembers which steps ran).

    After the first failed step the applier starts nothing more, so a step that starts
    after one is a step of the rollback: it and its finish carry ``rollback: true``.
    """

    def __init__(self, plan: Plan, clock: Clock = _now) -> None:
        self.clock = clock
        self._where = {c.address: (c.platform, c.kind) for c in plan.changes}
        self._failed = False
        self._rollback: set[tuple[str, str]] = set()

    def event(self, event: Event) -> list[dict[str, Any]]:
        platform, kind = self._where.get(event.address, (None, None))
        step = (event.address, event.op)
        if event.phase == "start" and self._failed:
            self._rollback.add(step)
        base = {
            "address": event.address,
            "op": event.op,
            "platform": platform,
            "kind": kind,
            "rollback": step in self._rollback,
        }
        if event.phase == "start":
            return [message("step_start", base, self.clock)]
        if event.phase == "still":
            return [
                message("step_progress", {**base, "elapsed_seconds": round(event.elapsed, 3)}, self.clock)
            ]
        if event.phase in ("done", "failed"):
            failed = event.phase == "failed"
            self._failed = self._failed or failed
            fields = {
                **base,
                "elapsed_seconds": round(event.elapsed, 3),
                "status": "failed" if failed else "ok",
                "ok": not failed,
                "error": error_of(event.detail, platform) if failed else None,
            }
            return [message("step_finish", fields, self.clock)]
        if event.phase == "skipped":
            return [message("step_skipped", {**base, "reason": "a step it depends on failed"}, self.clock)]
        if event.phase == "adopted":
            note = f"adopted {event.detail}, created by an attempt whose answer was lost"
            return [diagnostic(note, severity="info", address=event.address, clock=self.clock)]
        return [diagnostic(f"{event.phase}: {event.detail}".rstrip(": "), "info", event.address, self.clock)]


def apply_counts(done: Iterable[Event], failed: int = 0, skipped: int = 0) -> dict[str, int]:
    """What an apply did: steps created, updated, deleted (forgotten ones too), failed, skipped."""
    n = {"created": 0, "updated": 0, "deleted": 0, "failed": failed, "skipped": skipped}
    for e in done:
        if e.op == "create":
            n["created"] += 1
        elif e.op == "update":
            n["updated"] += 1
        elif e.op.startswith("delete") or e.op == "forget":
            n["deleted"] += 1
    return n


def redact_outputs(outputs: Mapping[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """Outputs, each one whose value holds a known secret replaced by ``(sensitive)``."""
    known = [s for s in secrets if s]

    def holds(value: Any) -> bool:
        text = json.dumps(value, default=str)
        return any(s in text for s in known)

    return {k: REDACTED if holds(v) else v for k, v in outputs.items()}


def result(
    command: str,
    *,
    ok: bool,
    exit_code: int,
    counts: Mapping[str, int] | None = None,
    outputs: Mapping[str, Any] | None = None,
    error: str | None = None,
    clock: Clock = _now,
) -> dict[str, Any]:
    return message(
        "result",
        {
            "command": command,
            "ok": ok,
            "exit_code": exit_code,
            "counts": dict(counts or {}),
            "outputs": dict(outputs or {}),
            "error": error,
        },
        clock,
    )
