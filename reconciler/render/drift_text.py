"""The terminal rendering of a drift report."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.drift import DriftReport, ResourceDrift
from reconciler.render.values import REDACTED, show

SecretsOf = Callable[[str, str], Iterable[str]]
SYMBOLS = {"changed": "~", "deleted": "-", "unmanaged": "?"}


def _no_secrets(platform: str, kind: str) -> Iterable[str]:
    return ()


def hidden(r: ResourceDrift, path: str, secrets: SecretsOf) -> bool:
    """True when ``path`` is (or lies under) a secret of the resource's kind."""
    return any(path == s or path.startswith((s + ".", s + "[")) for s in secrets(r.platform, r.kind))


def shown(r: ResourceDrift, path: str, value: object, secrets: SecretsOf) -> str:
    return REDACTED if hidden(r, path, secrets) else show(value)


def title(r: ResourceDrift) -> str:
    """``workspaces.main (fabric workspace ws-1)``; an unmanaged object by its name and id."""
    if r.address is not None:
        return f"{r.address} ({r.platform} {r.kind} {r.id})"
    return f"{r.platform} {r.kind} {r.name or '(no name)'} ({r.id})"


def next_steps(report: DriftReport, stack_file: str) -> list[str]:
    n = report.counts()
    out = []
    if n["changed"] or n["deleted"]:
        out.append(f"To put the platforms back as the stack says: reconciler apply {stack_file}")
        out.append(
            f"To accept the live values into state instead: reconciler apply --refresh-only {stack_file}"
        )
    if n["unmanaged"]:
        out.append(
            "Unmanaged objects are not touched by apply: delete them on the platform, "
            "or declare them in a stack (a create adopts nothing; names must not clash)"
        )
    return out


def drift_text(report: DriftReport, secrets: SecretsOf = _no_secrets, stack_file: str = "STACK") -> str:
    lines: list[str] = []
    for note in report.notes:
        lines.append(f"Note: {note}")
    if not report.has_drift:
        searched = f" Searched for unmanaged objects in: {'; '.join(report.scopes)}." if report.scopes else ""
        return "\n".join([*lines, f"No drift. The platforms match the recorded state.{searched}"]) + "\n"
    lines += [f"Drift in stack {report.stack}:", ""]
    for r in report.resources:
        what = {"changed": "changed out of band", "deleted": "deleted out of band"}.get(
            r.status, f"unmanaged, in {r.where}"
        )
        lines.append(f"  {SYMBOLS[r.status]} {title(r)}  # {what}")
        for a in r.attributes:
            lines.append(
                f"      ~ {a.path}: recorded {shown(r, a.path, a.recorded, secrets)}, "
                f"live {shown(r, a.path, a.live, secrets)}"
            )
    n = report.counts()
    lines += ["", f"Drift: {n['changed']} changed, {n['deleted']} deleted, {n['unmanaged']} unmanaged."]
    lines += next_steps(report, stack_file)
    return "\n".join(lines) + "\n"
