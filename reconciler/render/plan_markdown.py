"""A plan as a pull-request comment: summary counts, then a collapsible diff per resource."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.plan import Plan
from reconciler.render.plan_text import _change_lines

GITHUB_COMMENT_LIMIT = 65_536


def plan_markdown(plan: Plan, secrets: Callable[[str, str], Iterable[str]] = lambda p, k: ()) -> str:
    n = plan.counts()
    out = [f"### reconciler plan for `{plan.stack}`", ""]
    if not plan.has_changes:
        out.append("No changes. The platforms match the stack.")
        return "\n".join(out) + "\n"
    out += [
        "| create | update | replace | delete |",
        "|---:|---:|---:|---:|",
        f"| {n['create']} | {n['update']} | {n['replace']} | {n['delete']} |",
        "",
    ]
    if plan.warnings:
        out += [f"> **Warning:** {w}" for w in plan.warnings] + [""]
    budget = GITHUB_COMMENT_LIMIT - 2_000
    used = sum(len(x) + 1 for x in out)
    for i, c in enumerate(plan.actionable):
        block = "\n".join(
            [
                f"<details><summary><code>{c.symbol} {c.address}</code> ({c.action.value})</summary>",
                "",
                "```diff",
                *_change_lines(c, secrets),
                "```",
                "</details>",
                "",
            ]
        )
        if used + len(block) > budget:
            rest = plan.actionable[i:]
            out.append(f"... and {len(rest)} more changes, not shown (comment size limit):")
            out += [f"- `{r.symbol} {r.address}`" for r in rest[:200]]
            break
        out.append(block)
        used += len(block) + 1
    return "\n".join(out) + "\n"
