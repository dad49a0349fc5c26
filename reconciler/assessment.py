"""What a reviewer reads beside the changes: policy results and the cost estimate, as values.

Purely data, like :mod:`reconciler.plan`: :mod:`reconciler.policy` and
:mod:`reconciler.cost` compute these; a :class:`~reconciler.plan.Plan` carries
one :class:`Assessment` so that a saved plan shows what its reviewers saw.
``apply`` never trusts the saved results: it evaluates the rules again.

Money is USD. A cost is ``None`` when it is not known (no published price, an
unknown region, a value known only after apply) and never silently zero; a
resource that does not exist on one side of a change costs ``0.0`` there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

HOURS_PER_MONTH = 730
"""Monthly figures are hourly price x 730 hours (the average month Infracost and the clouds use)."""

RuleStatus = Literal["pass", "fail"]


@dataclass(frozen=True)
class RuleResult:
    """One policy rule evaluated against one plan.

    ``check`` names what the rule checks (``deny``, ``require_approval``,
    ``max_monthly_cost``, ``max_monthly_increase``, ``allowed_platforms``,
    ``allowed_specs``, ``allowed_regions``); ``summary`` says it in words.
    ``addresses`` are the resources that break the rule (empty when it passes,
    and for cost caps, which concern totals). ``override`` is whether the rule
    allows ``--allow-policy-override``. ``source`` is the file the rule is in.
    """

    rule: str
    source: str
    check: str
    summary: str
    passed: bool
    message: str
    addresses: tuple[str, ...] = ()
    override: bool = False

    @property
    def status(self) -> RuleStatus:
        return "pass" if self.passed else "fail"


@dataclass(frozen=True)
class CostBasis:
    """What one Model Studio deployment is priced as: the cost block's columns.

    ``spec`` is the model unit spec (``MU1``) or ``PTU``; ``capacity`` the
    units (``8``) or the throughput (``20,000 input + 2,000 output TPM``);
    ``billing`` ``pay-as-you-go`` (hourly) or ``subscription`` (monthly).
    """

    model: str
    region: str
    spec: str
    capacity: str
    billing: str


@dataclass(frozen=True)
class CostLine:
    """The hourly cost of one resource before and after the plan (None: not known).

    ``detail`` says how the figure was found (``qwen3-8b MU5 x 1 in cn-beijing
    at $2.888/h``) or why it is unknown (``fabric publishes no prices``).
    """

    address: str
    platform: str
    kind: str
    hourly_before: float | None
    hourly_after: float | None
    detail: str = ""
    basis: CostBasis | None = None  # of the object after the plan (before it, for a deletion)

    @property
    def monthly_before(self) -> float | None:
        return None if self.hourly_before is None else self.hourly_before * HOURS_PER_MONTH

    @property
    def monthly_after(self) -> float | None:
        return None if self.hourly_after is None else self.hourly_after * HOURS_PER_MONTH

    @property
    def priced(self) -> bool:
        """Both sides known: the line counts in the totals."""
        return self.hourly_before is not None and self.hourly_after is not None

    @property
    def monthly_difference(self) -> float | None:
        before, after = self.monthly_before, self.monthly_after
        return None if before is None or after is None else after - before


@dataclass(frozen=True)
class CostEstimate:
    """Monthly cost per resource and in total, for every resource before or after the plan.

    Totals add up the priced lines only; :attr:`unpriced` lists the others,
    which are never counted as zero. ``region`` is the Model Studio region the
    prices were looked up in (None: unknown).
    """

    lines: tuple[CostLine, ...]
    region: str | None = None
    currency: str = "USD"
    hours_per_month: int = HOURS_PER_MONTH

    @property
    def priced(self) -> tuple[CostLine, ...]:
        return tuple(line for line in self.lines if line.priced)

    @property
    def unpriced(self) -> tuple[CostLine, ...]:
        return tuple(line for line in self.lines if not line.priced)

    @property
    def monthly_before(self) -> float:
        return sum((line.monthly_before or 0.0) for line in self.priced)

    @property
    def monthly_after(self) -> float:
        return sum((line.monthly_after or 0.0) for line in self.priced)

    @property
    def monthly_difference(self) -> float:
        return self.monthly_after - self.monthly_before

    def line(self, address: str) -> CostLine | None:
        for line in self.lines:
            if line.address == address:
                return line
        return None


@dataclass(frozen=True)
class Assessment:
    """Policy results and cost of a plan, and the inputs they were computed from.

    ``policy_files`` and ``pricing_files`` are the ``--policy``/``--pricing``
    files used (the stack's own ``policy:`` section is always read), so that
    ``apply PLANFILE`` can evaluate the same rules again. ``approvals`` are the
    approver names known when the rules were evaluated.
    """

    policy: tuple[RuleResult, ...] = ()
    cost: CostEstimate | None = None
    policy_files: tuple[str, ...] = ()
    pricing_files: tuple[str, ...] = ()
    approvals: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.policy if not r.passed)


# -- serialisation -------------------------------------------------------------


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def assessment_to_dict(a: Assessment) -> dict[str, Any]:
    return {
        "policy_files": list(a.policy_files),
        "pricing_files": list(a.pricing_files),
        "approvals": list(a.approvals),
        "policy": [
            {
                "rule": r.rule,
                "source": r.source,
                "check": r.check,
                "summary": r.summary,
                "status": r.status,
                "message": r.message,
                "addresses": list(r.addresses),
                "override": r.override,
            }
            for r in a.policy
        ],
        "cost": None if a.cost is None else cost_to_dict(a.cost),
    }


def cost_to_dict(c: CostEstimate) -> dict[str, Any]:
    return {
        "currency": c.currency,
        "hours_per_month": c.hours_per_month,
        "region": c.region,
        "monthly_before": _money(c.monthly_before),
        "monthly_after": _money(c.monthly_after),
        "monthly_difference": _money(c.monthly_difference),
        "unpriced": [line.address for line in c.unpriced],
        "resources": [
            {
                "address": line.address,
                "platform": line.platform,
                "kind": line.kind,
                "hourly_before": _money(line.hourly_before),
                "hourly_after": _money(line.hourly_after),
                "monthly_before": _money(line.monthly_before),
                "monthly_after": _money(line.monthly_after),
                "monthly_difference": _money(line.monthly_difference),
                "detail": line.detail,
                "basis": None if line.basis is None else _basis_to_dict(line.basis),
            }
            for line in c.lines
        ],
    }


def _basis_to_dict(b: CostBasis) -> dict[str, str]:
    return dataclasses.asdict(b)


def _basis(data: Any) -> CostBasis | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise TypeError("a cost basis must be an object")
    return CostBasis(*(str(data[k]) for k in ("model", "region", "spec", "capacity", "billing")))


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number or null, not {value!r}")
    return float(value)


def assessment_from_dict(data: Mapping[str, Any]) -> Assessment:
    """The inverse of :func:`assessment_to_dict`; raises KeyError/TypeError/ValueError when malformed."""
    if not isinstance(data, Mapping) or not isinstance(data.get("cost") or {}, Mapping):
        raise TypeError("assessment must be an object with an optional cost object")
    cost = data.get("cost")
    return Assessment(
        policy=tuple(
            RuleResult(
                rule=str(r["rule"]),
                source=str(r["source"]),
                check=str(r["check"]),
                summary=str(r.get("summary", "")),
                passed=r["status"] == "pass",
                message=str(r["message"]),
                addresses=tuple(str(a) for a in r.get("addresses", ())),
                override=bool(r.get("override", False)),
            )
            for r in data.get("policy", ())
        ),
        cost=None
        if cost is None
        else CostEstimate(
            lines=tuple(
                CostLine(
                    address=str(line["address"]),
                    platform=str(line["platform"]),
                    kind=str(line["kind"]),
                    hourly_before=_number(line["hourly_before"]),
                    hourly_after=_number(line["hourly_after"]),
                    detail=str(line.get("detail", "")),
                    basis=_basis(line.get("basis")),
                )
                for line in cost["resources"]
            ),
            region=cost.get("region"),
            currency=str(cost.get("currency", "USD")),
            hours_per_month=int(cost.get("hours_per_month", HOURS_PER_MONTH)),
        ),
        policy_files=tuple(str(p) for p in data.get("policy_files", ())),
        pricing_files=tuple(str(p) for p in data.get("pricing_files", ())),
        approvals=tuple(str(p) for p in data.get("approvals", ())),
    )


def usd(value: float, *, sign: bool = False) -> str:
    """``$1,234.57``; with ``sign``, ``+$1.00`` / ``-$1.00`` / ``$0.00``."""
    text = f"${abs(value):,.2f}"
    if value < 0 and text != "$0.00":
        return "-" + text
    return ("+" + text) if sign and text != "$0.00" else text
