"""Policy results and cost estimates in words: the pieces the text and markdown renderings share.

Pure: values in, strings out.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.assessment import HOURS_PER_MONTH, CostEstimate, CostLine, RuleResult, usd

COST_BASIS = f"USD; monthly = hourly price x {HOURS_PER_MONTH} hours"


def money(value: float | None, *, sign: bool = False) -> str:
    return "unknown" if value is None else usd(value, sign=sign)


def failing_count(results: Sequence[RuleResult]) -> int:
    return sum(1 for r in results if not r.passed)


def policy_heading(results: Sequence[RuleResult]) -> str:
    n, failing = len(results), failing_count(results)
    rules = f"{n} rule{'s' if n != 1 else ''}"
    return f"{rules}, {failing} failing" if failing else f"{rules}, all passing"


def override_hint(r: RuleResult) -> str:
    if r.passed:
        return ""
    if r.override:
        return f"apply refuses unless run with --allow-policy-override {r.rule}"
    return "apply refuses (this rule allows no override)"


def cost_totals(cost: CostEstimate) -> str:
    """``$0.00 -> $2,108.24 (+$2,108.24)`` over the priced resources."""
    return (
        f"{usd(cost.monthly_before)} -> {usd(cost.monthly_after)} ({usd(cost.monthly_difference, sign=True)})"
    )


def unpriced_groups(lines: Sequence[CostLine]) -> list[tuple[str, list[str]]]:
    """Unpriced lines grouped by why: ``[(reason, [addresses])]`` in first-seen order."""
    groups: dict[str, list[str]] = {}
    for line in lines:
        groups.setdefault(line.detail or "no known price", []).append(line.address)
    return list(groups.items())


def cost_row(line: CostLine) -> tuple[str, str, str]:
    """Before, after and difference of one line, as shown."""
    return (
        money(line.monthly_before),
        money(line.monthly_after),
        money(line.monthly_difference, sign=True),
    )
