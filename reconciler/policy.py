"""Policy rules: read them, evaluate them against a plan, enforce them before an apply.

Rules come from the stack's ``policy:`` section and from ``--policy`` files
(an organisation's rules; the same schema, :class:`~reconciler.stack.models.PolicyBlock`,
validated with ``file:line`` errors like a stack). A rule makes one check on
the resources whose address matches one of its ``addresses`` globs
(:func:`fnmatch.fnmatchcase`; default ``*``):

* ``deny: [delete, replace]``: those actions are refused;
* ``require_approval: {approvers, count, actions}``: those actions need
  ``count`` of the named approvers (``--approve NAME``, ``RECONCILER_APPROVERS``);
* ``max_monthly_cost`` / ``max_monthly_increase``: caps on the estimate of
  :mod:`reconciler.cost` (resources without a known price are left out and
  named, or fail the rule with ``unknown_cost: fail``);
* ``allowed_platforms`` / ``allowed_specs`` / ``allowed_regions``: every resource
  the plan leaves in place must use one of these (specs: Fabric ``spec_code``,
  Model Studio ``deploy_spec``; regions: Fabric and Model Studio, from the
  provider block; ZStack is on-premises and has no region).

``plan`` reports every rule's result; ``apply`` refuses a plan that breaks a
rule unless the rule says ``override: true`` and ``--allow-policy-override
RULE`` is given (:func:`enforce`). Everything is pure except
:func:`load_policy_file`, which reads one file.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.assessment import CostEstimate, RuleResult, usd
from reconciler.errors import Issue, PolicyError, PolicyFileError, UsageError
from reconciler.plan import Action, Change, Plan
from reconciler.stack import models
from reconciler.stack.source import format_loc, read_yaml
from reconciler.stack.spec import Stack

APPROVERS_ENV = "RECONCILER_APPROVERS"
"""Comma-separated approver names, added to ``--approve`` ones."""

SPEC_KEYS = frozenset({"spec_code", "deploy_spec"})
SHOWN = 10  # addresses named in one message before "and N more"


@dataclass(frozen=True)
class Rule:
    """A named rule and the file it was read from."""

    name: str
    source: str
    spec: models.PolicyRule


@dataclass(frozen=True)
class Context:
    """What rules are evaluated with besides the plan."""

    approvals: frozenset[str] = frozenset()
    regions: Mapping[str, str | None] = field(default_factory=dict)
    cost: CostEstimate | None = None


# -- reading ---------------------------------------------------------------------


def _rules(block: models.PolicyBlock, source: str) -> tuple[Rule, ...]:
    return tuple(Rule(name, source, rule) for name, rule in block.rules.items())


def rules_of(stack: Stack) -> tuple[Rule, ...]:
    """The rules of the stack's ``policy:`` section (validated when the stack was loaded)."""
    if not stack.policy:
        return ()
    return _rules(models.PolicyBlock.model_validate(dict(stack.policy)), stack.file)


def load_policy_file(path: str) -> tuple[Rule, ...]:
    """Read and validate a ``--policy`` file; :class:`PolicyFileError` lists every problem with its line."""
    doc, issues = read_yaml(Path(path), path)
    if doc is None:
        raise PolicyFileError(issues)
    if not isinstance(doc.data, dict):
        what = "empty" if doc.data is None else f"a {models.describe(doc.data)}"
        raise PolicyFileError(
            [*issues, Issue(path, doc.line(()), "", f"the file is {what}; expected 'rules:'")]
        )
    try:
        block = models.PolicyBlock.model_validate(doc.data)
    except ValidationError as exc:
        for found in models.field_errors(exc, models.PolicyBlock):
            if found.loc not in doc.reported:
                line = doc.line(found.line_loc, key=found.key_line)
                issues.append(Issue(path, line, format_loc(found.loc), found.message))
        raise PolicyFileError(issues) from None
    if issues:
        raise PolicyFileError(issues)
    return _rules(block, path)


def collect(stack: Stack, files: Sequence[str]) -> tuple[Rule, ...]:
    """The stack's rules and every file's, in that order; a name used twice is an error."""
    rules = [*rules_of(stack), *(r for f in files for r in load_policy_file(f))]
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.name in seen:
            raise UsageError(
                f"policy rule '{rule.name}' is defined in both {seen[rule.name]} and {rule.source}; "
                "rename one of them"
            )
        seen[rule.name] = rule.source
    return tuple(rules)


def approvals_from(flags: Iterable[str], env_value: str | None) -> frozenset[str]:
    """``--approve`` names plus the comma-separated names of ``RECONCILER_APPROVERS``."""
    names = [*flags, *(env_value or "").split(",")]
    return frozenset(n.strip() for n in names if n.strip())


# -- evaluating ------------------------------------------------------------------


def _matches(address: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(address, g) for g in globs)


def _where(globs: Sequence[str]) -> str:
    return "all resources" if list(globs) == ["*"] else ", ".join(globs)


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _verb(action: Action) -> str:
    return {"create": "created", "update": "updated", "replace": "replaced", "delete": "deleted"}.get(
        action.value, action.value
    )


def summary(rule: models.PolicyRule) -> str:
    """The rule in words, e.g. ``no delete, replace of workspaces.*``."""
    where = _where(rule.addresses)
    if rule.deny is not None:
        return f"no {', '.join(rule.deny)} of {where}"
    if rule.require_approval is not None:
        a = rule.require_approval
        return (
            f"{', '.join(a.actions)} of {where} need {a.count} approval{'s' if a.count != 1 else ''} "
            f"from {', '.join(a.approvers)}"
        )
    if rule.max_monthly_cost is not None:
        return f"monthly cost of {where} at most {usd(rule.max_monthly_cost)}"
    if rule.max_monthly_increase is not None:
        return f"monthly cost increase of {where} at most {usd(rule.max_monthly_increase)}"
    if rule.allowed_platforms is not None:
        return f"{where} only on {', '.join(rule.allowed_platforms)}"
    if rule.allowed_specs is not None:
        return f"{where} only with specs {', '.join(rule.allowed_specs)}"
    assert rule.allowed_regions is not None
    return f"{where} only in {', '.join(rule.allowed_regions)}"


def specs_of(attrs: Any) -> tuple[str, ...]:
    """Every ``spec_code`` / ``deploy_spec`` value inside ``attrs`` (known values only)."""
    found: list[str] = []
    pending = [attrs]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key in SPEC_KEYS and isinstance(value, str):
                    found.append(value)
                elif isinstance(value, Mapping | list):
                    pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)
    return tuple(sorted(set(found)))


def _remaining(plan: Plan, globs: Sequence[str]) -> list[Change]:
    """The resources the plan leaves in place (every action but delete) whose address matches."""
    return [c for c in plan.changes if c.action is not Action.DELETE and _matches(c.address, globs)]


def _result(rule: Rule, passed: bool, message: str, addresses: Sequence[str] = ()) -> RuleResult:
    return RuleResult(
        rule=rule.name,
        source=rule.source,
        check=rule.spec.check,
        summary=summary(rule.spec),
        passed=passed,
        message=message,
        addresses=tuple(addresses),
        override=rule.spec.override,
    )


def _deny(rule: Rule, plan: Plan) -> RuleResult:
    denied = set(rule.spec.deny or ())
    hits = [
        c for c in plan.actionable if c.action.value in denied and _matches(c.address, rule.spec.addresses)
    ]
    if not hits:
        return _result(rule, True, f"nothing to {' or '.join(sorted(denied))}")
    shown = [f"{c.address} would be {_verb(c.action)}" for c in hits]
    return _result(rule, False, _listed(shown), [c.address for c in hits])


def _approval(rule: Rule, plan: Plan, approvals: frozenset[str]) -> RuleResult:
    block = rule.spec.require_approval
    assert block is not None
    wanted = set(block.actions)
    hits = [
        c for c in plan.actionable if c.action.value in wanted and _matches(c.address, rule.spec.addresses)
    ]
    if not hits:
        return _result(rule, True, "no change needs approval")
    got = sorted(approvals & set(block.approvers))
    if len(got) >= block.count:
        return _result(rule, True, f"approved by {', '.join(got)}")
    changes = _listed([f"{c.address} ({c.action.value})" for c in hits])
    message = (
        f"needs {block.count} approval{'s' if block.count != 1 else ''} from {', '.join(block.approvers)}, "
        f"has {len(got)}{' (' + ', '.join(got) + ')' if got else ''}, for {changes}; "
        "approve with --approve NAME or RECONCILER_APPROVERS"
    )
    return _result(rule, False, message, [c.address for c in hits])


def _cost(rule: Rule, cost: CostEstimate | None) -> RuleResult:
    spec = rule.spec
    if cost is None:
        return _result(rule, False, "no cost estimate was made")
    lines = [line for line in cost.lines if _matches(line.address, spec.addresses)]
    if spec.max_monthly_cost is not None:
        cap, what = spec.max_monthly_cost, "monthly cost after apply"
        known = [line for line in lines if line.monthly_after is not None]
        value = sum(line.monthly_after or 0.0 for line in known)
        unknown = [line.address for line in lines if line.monthly_after is None]
    else:
        assert spec.max_monthly_increase is not None
        cap, what = spec.max_monthly_increase, "monthly cost increase"
        value = sum(line.monthly_difference or 0.0 for line in lines if line.priced)
        unknown = [line.address for line in lines if not line.priced]
    shown = usd(value, sign=spec.max_monthly_increase is not None)
    note = f"; without a known price, not counted: {_listed(unknown)}" if unknown else ""
    if value > cap + 1e-9:
        return _result(rule, False, f"{what} {shown}, over the cap of {usd(cap)}{note}")
    if unknown and spec.unknown_cost == "fail":
        return _result(
            rule, False, f"{what} {shown} is within {usd(cap)}, but {note[2:]} (unknown_cost: fail)", unknown
        )
    return _result(rule, True, f"{what} {shown}, within {usd(cap)}{note}")


def _allowed(rule: Rule, plan: Plan, context: Context) -> RuleResult:
    spec = rule.spec
    offenders: list[tuple[str, str]] = []
    for c in _remaining(plan, spec.addresses):
        if spec.allowed_platforms is not None and c.platform not in spec.allowed_platforms:
            offenders.append((c.address, f"{c.address} is on {c.platform}"))
        elif spec.allowed_specs is not None:
            bad = [
                s
                for s in specs_of(c.after if c.after is not None else c.before)
                if s not in spec.allowed_specs
            ]
            if bad:
                offenders.append((c.address, f"{c.address} uses {', '.join(bad)}"))
        elif spec.allowed_regions is not None and c.platform != "zstack":
            region = context.regions.get(c.platform)
            if region is None:
                why = f"{c.address}: region unknown (set providers.{c.platform}.region)"
                offenders.append((c.address, why))
            elif region not in spec.allowed_regions:
                offenders.append((c.address, f"{c.address} is in {region}"))
    if offenders:
        return _result(rule, False, _listed([why for _, why in offenders]), [a for a, _ in offenders])
    return _result(rule, True, "every resource complies")


def evaluate_rule(rule: Rule, plan: Plan, context: Context) -> RuleResult:
    spec = rule.spec
    if spec.deny is not None:
        return _deny(rule, plan)
    if spec.require_approval is not None:
        return _approval(rule, plan, context.approvals)
    if spec.max_monthly_cost is not None or spec.max_monthly_increase is not None:
        return _cost(rule, context.cost)
    return _allowed(rule, plan, context)


def evaluate(plan: Plan, rules: Sequence[Rule], context: Context) -> tuple[RuleResult, ...]:
    """Every rule's result, in rule order.

    Rules govern what reconciler changes on the platforms, so a refresh-only
    plan (which only records what is already live) passes every rule.
    """
    if plan.refresh_only:
        return tuple(_result(r, True, "refresh-only: nothing on the platforms changes") for r in rules)
    return tuple(evaluate_rule(rule, plan, context) for rule in rules)


# -- enforcing -------------------------------------------------------------------


def enforce(results: Sequence[RuleResult], overrides: Collection[str]) -> tuple[str, ...]:
    """Refuse (PolicyError) unless every failing rule allows an override and was overridden.

    Returns one message per failing rule that was overridden, to be shown.
    An override naming no rule is a usage error, so that a typo never passes silently.
    """
    names = {r.rule for r in results}
    unknown = sorted(set(overrides) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise UsageError(
            f"--allow-policy-override {unknown[0]}: there is no policy rule by that name (rules: {known})"
        )
    failing = [r for r in results if not r.passed]
    refused = [r for r in failing if not (r.override and r.rule in overrides)]
    if refused:
        rules = f"{len(refused)} policy rule{'s' if len(refused) != 1 else ''}"
        lines = [f"the plan breaks {rules}; nothing was changed:"]
        for r in refused:
            lines.append(f"  rule '{r.rule}' ({r.source}): {r.summary}: {r.message}")
            if r.override:
                lines.append(f"    this rule allows an override: --allow-policy-override {r.rule}")
            elif r.rule in overrides:
                lines.append("    this rule does not allow overrides (it has no 'override: true')")
        raise PolicyError("\n".join(lines))
    return tuple(f"policy rule '{r.rule}' overridden (--allow-policy-override): {r.message}" for r in failing)


def check_blocked(plan: Plan) -> None:
    """A plan with lifecycle.prevent_destroy hits is never applied."""
    if plan.blocked:
        raise PolicyError("\n".join(plan.blocked))
