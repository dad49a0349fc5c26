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


def hourly(line: CostLine) -> str:
    """The hourly price the plan leaves (the one it removes, for a deletion), to the tenth of a cent
    as the price tables give it (``$2.888``)."""
    gone = line.hourly_after == 0.0 and line.hourly_before
    value = line.hourly_before if gone else line.hourly_after
    if value is None:
        return "unknown"
    text = f"${value:,.3f}"
    text = text[:-1] if text.endswith("0") else text
    return f"{text} (removed)" if gone else text


def basis_cells(line: CostLine) -> tuple[str, str, str, str, str]:
    """Model, region, spec, capacity and billing of a priced line (empty when not known)."""
    b = line.basis
    return ("", "", "", "", "") if b is None else (b.model, b.region, b.spec, b.capacity, b.billing)


def basis_words(line: CostLine) -> str:
    """``qwen3-32b in ap-southeast-1, MU1 x 8, pay-as-you-go`` (the detail when the basis is unknown)."""
    b = line.basis
    if b is None:
        return line.detail
    amount = f"{b.spec} x {b.capacity}" if b.spec != "PTU" else f"PTU {b.capacity}"
    return f"{b.model} in {b.region}, {amount}, {b.billing}"
