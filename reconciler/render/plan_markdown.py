"""A plan as a pull-request comment.

In order: a hidden marker (``<!-- reconciler-plan: STACK -->``, so a workflow
can find and update its comment), the summary counts, prevent_destroy hits,
warnings (replacements, deletions), the policy results, the monthly cost
(changed resources and the stack's totals), then a collapsible diff per
resource. The whole stays under GitHub's 65,536-character limit: when the
diffs do not fit, the rest are listed by address only, and the comment says
it was summarised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.assessment import Assessment, CostEstimate
from reconciler.plan import Action, Change, Plan
from reconciler.render import review
from reconciler.render.markdown import GITHUB_COMMENT_LIMIT, Comment, cell, fence, text
from reconciler.render.values import flatten, output_change, redact, show

SecretsOf = Callable[[str, str], Iterable[str]]
BLOCK_LIMIT = 8_000  # characters of one resource's diff before it is cut
LISTED = 30  # warnings, cost rows, unpriced addresses shown per group

__all__ = ["GITHUB_COMMENT_LIMIT", "marker", "plan_markdown"]


def marker(stack: str) -> str:
    return f"<!-- reconciler-plan: {text(stack, 100)} -->"


def _no_secrets(platform: str, kind: str) -> Iterable[str]:
    return ()


def diff_lines(c: Change, secrets: SecretsOf) -> list[str]:
    """The change as ``diff`` lines: ``+`` what will be, ``-`` what was."""
    hidden = tuple(secrets(c.platform, c.kind))
    lines = [f"# {c.reason}"] if c.reason else []
    if c.action is Action.CREATE:
        lines += [f"+ {p} = {show(v)}" for p, v in flatten(redact(c.after or {}, hidden))]
    elif c.action is Action.DELETE:
        lines += [f"- id = {show(c.id)}"] + ([f"- name = {show(c.name)}"] if c.name else [])
    else:
        before = redact({d.path: d.before for d in c.diff}, hidden)
        after = redact({d.path: d.after for d in c.diff}, hidden)
        for d in c.diff:
            mark = "  # forces replacement" if d.forces_replacement else ""
            lines += [f"- {d.path} = {show(before[d.path])}", f"+ {d.path} = {show(after[d.path])}{mark}"]
    return lines


def _block(c: Change, secrets: SecretsOf) -> str:
    lines = diff_lines(c, secrets)
    size, kept = 0, []
    for i, line in enumerate(lines):
        size += len(line) + 1
        if size > BLOCK_LIMIT:
            kept.append(f"# ... {len(lines) - i} more lines not shown (see the JSON plan)")
            break
        kept.append(line)
    what = (
        "record"
        if c.action is Action.UPDATE and c.reason.startswith("changed out of band")
        else c.action.value
    )
    return "\n".join(
        [
            f"<details><summary><code>{c.symbol} {c.address}</code> {what} ({c.platform} {c.kind})</summary>",
            "",
            fence(kept, "diff"),
            "</details>",
        ]
    )


def _summary(plan: Plan) -> str:
    n = plan.counts()
    if plan.refresh_only:
        return "\n".join(
            [
                "**Refresh only:** applying this plan records the live values in state and changes "
                "nothing on the platforms.",
                "",
                "| to record | to forget |",
                "|---:|---:|",
                f"| {n['update']} | {n['delete']} |",
            ]
        )
    return "\n".join(
        [
            "| create | update | replace | delete |",
            "|---:|---:|---:|---:|",
            f"| {n['create']} | {n['update']} | {n['replace']} | {n['delete']} |",
        ]
    )


def _alerts(comment: Comment, kind: str, title: str, items: Iterable[str]) -> None:
    listed = list(items)
    if not listed:
        return
    comment.add(f"> [!{kind}]\n> **{title}**")
    comment.items([f"> - {text(i, 500)}" for i in listed[:LISTED]])
    if len(listed) > LISTED:
        comment.add(f"> - ... and {len(listed) - LISTED} more")
    comment.add("")


def _policy(comment: Comment, a: Assessment) -> None:
    if not a.policy:
        return
    comment.add(f"#### Policy: {review.policy_heading(a.policy)}\n")
    rows = ["| | rule | check | result |", "|---|---|---|---|"]
    for r in sorted(a.policy, key=lambda r: r.passed):
        hint = f"<br>_{cell(review.override_hint(r))}_" if not r.passed else ""
        mark = "✅ pass" if r.passed else "❌ **fail**"
        rows.append(f"| {mark} | `{cell(r.rule, 64)}` | {cell(r.summary, 300)} | {cell(r.message)}{hint} |")
    comment.items(rows, "| | | | ... and {n} more rules (see the JSON plan) |")
    comment.add("")


def _cost(comment: Comment, plan: Plan, cost: CostEstimate) -> None:
    """The cost table (called only when something is priced), then what has no known price."""
    comment.add(f"#### Monthly cost ({review.COST_BASIS})\n")
    changed = [line for c in plan.actionable if (line := cost.line(c.address)) is not None]
    priced = sorted(
        (line for line in changed if line.priced), key=lambda line: -abs(line.monthly_difference or 0.0)
    )
    rows = [
        "| resource | model | region | spec | capacity | billing | hourly "
        "| monthly before | monthly after | difference |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for line in priced[:LISTED]:
        before, after, diff = review.cost_row(line)
        basis = " | ".join(cell(part, 80) for part in review.basis_cells(line))
        hourly = review.hourly(line)
        rows.append(f"| `{line.address}` | {basis} | {hourly} | {before} | {after} | {diff} |")
    if len(priced) > LISTED:
        rows.append(f"| ... and {len(priced) - LISTED} more changed resources | | | | | | | | | |")
    rows.append(
        "| **all priced resources** | | | | | | "
        f"| **{review.money(cost.monthly_before)}** "
        f"| **{review.money(cost.monthly_after)}** "
        f"| **{review.money(cost.monthly_difference, sign=True)}** |"
    )
    comment.items(rows)
    for reason, addresses in review.unpriced_groups(cost.unpriced):
        shown = ", ".join(f"`{a}`" for a in addresses[:LISTED])
        more = f" and {len(addresses) - LISTED} more" if len(addresses) > LISTED else ""
        comment.add(f"\nPrice unknown, not in the totals ({text(reason, 300)}): {shown}{more}")
    comment.add("")


def _changes(comment: Comment, plan: Plan, secrets: SecretsOf) -> int:
    """Diffs while they fit, then addresses only; returns how many diffs were shown in full."""
    changes = plan.actionable
    if not changes:
        return 0
    comment.add("#### Changes\n")
    shown = 0
    for c in changes:
        if not comment.add(_block(c, secrets) + "\n"):
            break
        shown += 1
    rest = changes[shown:]
    if rest:
        comment.summarised = True
        comment.add(f"**{len(rest)} more changes, by address only (comment size limit):**\n")
        comment.items([f"- `{c.symbol} {c.address}` {c.action.value}" for c in rest])
    return shown


def plan_markdown(plan: Plan, secrets: SecretsOf = _no_secrets, *, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The pull-request comment for ``plan``; never longer than ``limit`` characters."""
    comment = Comment(limit)
    comment.add(marker(plan.stack))
    kind = "refresh-only plan" if plan.refresh_only else "plan"
    comment.add(f"### reconciler {kind} for `{cell(plan.stack, 64)}`\n")
    if not plan.has_changes:
        comment.add(
            "No changes. The state matches the platforms; there is nothing to record.\n"
            if plan.refresh_only
            else "No changes. The platforms match the stack.\n"
        )
    else:
        comment.add(_summary(plan) + "\n")
    _alerts(
        comment, "CAUTION", "Blocked by lifecycle.prevent_destroy: this plan cannot be applied", plan.blocked
    )
    _alerts(comment, "WARNING", "Warnings", plan.warnings)
    a = plan.assessment
    if a is not None:
        _policy(comment, a)
        if a.cost is not None and a.cost.priced and plan.actionable:  # nothing priced: no cost section
            _cost(comment, plan, a.cost)
    shown = _changes(comment, plan, secrets)
    if plan.output_changes:
        lines = [output_change(o.path, o.before, o.after) for o in plan.output_changes]
        comment.add("<details><summary>Changes to outputs</summary>\n\n" + fence(lines) + "\n</details>\n")
    if comment.summarised:
        total = len(plan.actionable)
        comment.force(
            f"\n_Summarised to stay under GitHub's {limit:,}-character comment limit: {shown} of {total} "
            "changes are shown in full. The saved plan (`--out`) and `reconciler plan --format json` "
            "hold all of it._"
        )
    return comment.render()
