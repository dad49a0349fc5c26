"""The terminal rendering of a plan, in the shape Terraform users read every day."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.assessment import CostEstimate
from reconciler.plan import Action, Change, Plan
from reconciler.render import review
from reconciler.render.values import flatten, output_change, redact, show

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
    """Every actionable change with attribute-level before -> after, the summary line, then the
    prevent_destroy hits, policy results and cost estimate when there are any."""
    if plan.refresh_only:
        return _refresh_only_text(plan, secrets) + _review_text(plan)
    if not plan.has_changes:
        return "No changes. The platforms match the stack.\n" + _review_text(plan)
    lines = ["reconciler will perform the following actions:", ""] if plan.actionable else []
    for c in plan.actionable:
        lines += _change_lines(c, secrets)
        lines.append("")
    for c in plan.provisioning:
        what = f"{c.address} ({c.platform} {c.kind})"
        lines.append(f"  ... {what}: still provisioning ({c.provisioning}); apply waits for it")
    if plan.provisioning:
        lines.append("")
    lines += _output_lines(plan)
    n = plan.counts()
    waiting = f" {len(plan.provisioning)} still provisioning." if plan.provisioning else ""
    lines.append(
        f"Plan: {n['create']} to create, {n['update']} to update, "
        f"{n['replace']} to replace, {n['delete']} to delete.{waiting}"
    )
    for w in plan.warnings:
        lines.append(f"Warning: {w}")
    return "\n".join(lines) + "\n" + _review_text(plan)


def _output_lines(plan: Plan) -> list[str]:
    if not plan.output_changes:
        return []
    lines = ["Changes to outputs:"]
    for o in plan.output_changes:
        lines.append(f"  {output_change(o.path, o.before, o.after)}")
    return [*lines, ""]


def _refresh_only_text(plan: Plan, secrets: SecretsOf) -> str:
    if not plan.has_changes:
        return "No changes. The state matches the platforms; there is nothing to record.\n"
    lines = ["Objects changed outside of reconciler:", ""] if plan.actionable else []
    for c in plan.actionable:
        lines += _change_lines(c, secrets)
        lines.append("")
    lines += _output_lines(plan)
    n = plan.counts()
    lines += [
        "This is a refresh-only plan: applying it records the live values in state "
        "and changes nothing on the platforms.",
        f"Refresh: {n['update']} to record, {n['delete']} to forget.",
    ]
    return "\n".join(lines) + "\n"


def _review_text(plan: Plan) -> str:
    lines: list[str] = []
    if plan.blocked:
        lines += ["", "Blocked by lifecycle.prevent_destroy (this plan cannot be applied):"]
        lines += [f"  {b}" for b in plan.blocked]
    a = plan.assessment
    if a is not None and a.policy:
        lines += ["", f"Policy ({review.policy_heading(a.policy)}):"]
        for r in a.policy:
            lines.append(f"  {'pass' if r.passed else 'FAIL'}  {r.rule}: {r.summary}: {r.message}")
            if not r.passed:
                lines.append(f"        {review.override_hint(r)}")
    if a is not None and a.cost is not None and a.cost.priced and plan.actionable:  # nothing priced: no block
        lines += _cost_lines(plan, a.cost)
    return "\n".join(lines) + "\n" if lines else ""


def _cost_lines(plan: Plan, cost: CostEstimate) -> list[str]:
    changed = [line for c in plan.actionable if (line := cost.line(c.address)) is not None]
    lines = ["", f"Monthly cost estimate ({review.COST_BASIS}):"]
    priced = [line for line in changed if line.priced]
    width = max((len(line.address) for line in priced), default=0)
    for line in priced:
        before, after, diff = review.cost_row(line)
        lines.append(
            f"  {line.address.ljust(width)}  {review.hourly(line)}/h, {before} -> {after} ({diff})/month  "
            f"{review.basis_words(line)}"
        )
    lines.append(f"  Total of the priced resources: {review.cost_totals(cost)}")
    for reason, addresses in review.unpriced_groups(cost.unpriced):
        lines.append(f"  Unknown, not in the totals ({reason}): {', '.join(addresses)}")
    return lines
