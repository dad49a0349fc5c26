"""The terminal rendering of a plan, in the shape Terraform users read every day."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.plan import Action, Change, Plan
from reconciler.render.values import flatten, redact, show

SecretsOf = Callable[[str, str], Iterable[str]]


def _no_secrets(platform: str, kind: str) -> Iterable[str]:
    return ()


def _change_lines(c: Change, secrets: SecretsOf) -> list[str]:
    hidden = tuple(secrets(c.platform, c.kind))
    head = f"  {c.symbol} {c.address} ({c.platform} {c.kind})"
    if c.action is Action.REPLACE:
        head += "  # forces replacement" if not c.reason else f"  # {c.reason}"
    elif c.reason:
        head += f"  # {c.reason}"
    lines = [head]
    if c.action is Action.CREATE:
        pairs = flatten(redact(c.after or {}, hidden))
        width = max((len(p) for p, _ in pairs), default=0)
        lines += [f"      + {p.ljust(width)} = {show(v)}" for p, v in pairs]
    elif c.action is Action.DELETE:
        if c.id:
            lines.append(f"      - id = {show(c.id)}")
    else:
        after = redact({d.path: d.after for d in c.diff}, hidden)
        before = redact({d.path: d.before for d in c.diff}, hidden)
        for d in c.diff:
            mark = "  # forces replacement" if d.forces_replacement else ""
            lines.append(f"      ~ {d.path}: {show(before[d.path])} -> {show(after[d.path])}{mark}")
    return lines


def plan_text(plan: Plan, secrets: SecretsOf = _no_secrets) -> str:
    """Every actionable change with attribute-level before -> after, then the summary line."""
    if plan.refresh_only:
        return "Refresh only: the live values will be recorded in state; nothing on the platforms changes.\n"
    if not plan.has_changes:
        return "No changes. The platforms match the stack.\n"
    lines = ["reconciler will perform the following actions:", ""] if plan.actionable else []
    for c in plan.actionable:
        lines += _change_lines(c, secrets)
        lines.append("")
    if plan.output_changes:
        lines += ["Changes to outputs:"]
        for o in plan.output_changes:
            mark = "+" if o.before is None else "-" if o.after is None else "~"
            lines.append(f"  {mark} {o.path}: {show(o.before)} -> {show(o.after)}")
        lines.append("")
    n = plan.counts()
    lines.append(
        f"Plan: {n['create']} to create, {n['update']} to update, "
        f"{n['replace']} to replace, {n['delete']} to delete."
    )
    for w in plan.warnings:
        lines.append(f"Warning: {w}")
    return "\n".join(lines) + "\n"
