"""Policy rules: each check passing and failing, overrides, approvals, and the file format.

Pure tests build plans from values; CLI tests run plan/apply on the embedded
emulator (no network) and check exit codes and what is said.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler import cost, policy
from reconciler.cli import cli
from reconciler.errors import PolicyError, PolicyFileError, UsageError
from reconciler.plan import Action, AttrChange, Change, Plan
from reconciler.stack import models

# -- pure: plans from values ---------------------------------------------------------------------


def change(address: str, action: Action, platform: str = "modelstudio", **after: Any) -> Change:
    kind = {"modelstudio": "deployment", "fabric": "endpoint", "zstack": "model_service"}[platform]
    before = None if action is Action.CREATE else dict(after)
    return Change(
        address=address,
        platform=platform,
        kind=kind,
        action=action,
        before=before,
        after=None if action is Action.DELETE else dict(after),
        diff=(AttrChange("capacity", 4, 8),) if action is Action.UPDATE else (),
    )


QWEN = {"model_name": "qwen3-8b", "plan": "mu", "deploy_spec": "MU5", "capacity": 1}


def a_plan(*changes: Change) -> Plan:
    return Plan(stack="t", stack_file="t.yaml", digest="d", lineage=None, serial=None, changes=changes)


def rule(name: str = "r", **spec: Any) -> policy.Rule:
    return policy.Rule(name, "org.yaml", models.PolicyRule.model_validate(spec))


def evaluate(plan: Plan, r: policy.Rule, **context: Any) -> Any:
    estimate = cost.estimate(plan, cost.load_pricing(), context.pop("region", "cn-beijing"))
    (result,) = policy.evaluate(plan, [r], policy.Context(cost=estimate, **context))
    return result


MIXED = a_plan(
    change("workspaces.main", Action.REPLACE, "fabric", name="ml"),
    change("endpoints.old", Action.DELETE, "fabric", name="old"),
    change("deployments.qwen", Action.CREATE, **QWEN),
    change("models.svc", Action.NOOP, "zstack", name="svc"),
)


def test_deny_fails_on_a_matching_delete_or_replace_and_names_them() -> None:
    failed = evaluate(MIXED, rule(deny=["delete", "replace"], addresses=["workspaces.*", "endpoints.*"]))
    assert (failed.status, failed.addresses) == ("fail", ("workspaces.main", "endpoints.old"))
    assert failed.message == "workspaces.main would be replaced, endpoints.old would be deleted"
    assert failed.summary == "no delete, replace of workspaces.*, endpoints.*"
    passed = evaluate(MIXED, rule(deny=["delete"], addresses=["deployments.*"]))
    assert (passed.status, passed.message) == ("pass", "nothing to delete")


def test_require_approval_needs_count_of_the_named_approvers() -> None:
    r = rule(
        require_approval={"approvers": ["alice", "bob", "carol"], "count": 2}, addresses=["workspaces.*"]
    )
    missing = evaluate(MIXED, r, approvals=frozenset({"alice", "mallory"}))
    assert missing.status == "fail" and missing.addresses == ("workspaces.main",)
    assert (
        "needs 2 approvals from alice, bob, carol, has 1 (alice), for workspaces.main (replace)"
        in missing.message
    )
    ok = evaluate(MIXED, r, approvals=frozenset({"alice", "carol"}))
    assert (ok.status, ok.message) == ("pass", "approved by alice, carol")
    nothing = evaluate(a_plan(change("deployments.qwen", Action.CREATE, **QWEN)), r)
    assert (nothing.status, nothing.message) == ("pass", "no change needs approval")


def test_cost_caps_use_the_seed_prices_and_name_unpriced_resources() -> None:
    # qwen3-8b MU5 x 1 in cn-beijing: $2.888/h, $2,108.24 a month
    over = evaluate(MIXED, rule(max_monthly_cost=2000))
    assert over.status == "fail"
    assert over.message.startswith("monthly cost after apply $2,108.24, over the cap of $2,000.00")
    assert "without a known price, not counted: workspaces.main, models.svc" in over.message
    under = evaluate(MIXED, rule(max_monthly_cost=2200, addresses=["deployments.*"]))
    assert (under.status, under.message) == ("pass", "monthly cost after apply $2,108.24, within $2,200.00")
    strict = evaluate(MIXED, rule(max_monthly_cost=5000, unknown_cost="fail"))
    assert strict.status == "fail" and strict.addresses == ("workspaces.main", "models.svc")
    rise = evaluate(MIXED, rule(max_monthly_increase=100, addresses=["deployments.*"]))
    assert (rise.status, rise.message) == (
        "fail",
        "monthly cost increase +$2,108.24, over the cap of $100.00",
    )
    fine = evaluate(MIXED, rule(max_monthly_increase=2108.24, addresses=["deployments.*"]))
    assert fine.status == "pass"


def test_allowed_platforms_specs_and_regions() -> None:
    platforms = evaluate(MIXED, rule(allowed_platforms=["fabric", "modelstudio"]))
    assert (platforms.status, platforms.message) == ("fail", "models.svc is on zstack")
    assert evaluate(MIXED, rule(allowed_platforms=["fabric", "modelstudio", "zstack"])).status == "pass"
    specs = evaluate(MIXED, rule(allowed_specs=["MU1"]))
    assert (specs.status, specs.message) == ("fail", "deployments.qwen uses MU5")
    fabric_spec = a_plan(
        change("endpoints.e", Action.CREATE, "fabric", reserved_resource={"mu": {"spec_code": "mu.big"}})
    )
    assert evaluate(fabric_spec, rule(allowed_specs=["mu.small"])).message == "endpoints.e uses mu.big"
    regions = rule(allowed_regions=["cn-beijing"])
    known = {"modelstudio": "cn-beijing", "fabric": None}
    result = evaluate(MIXED, regions, regions=known)
    assert result.status == "fail"  # fabric's region is unknown; zstack (on-premises) is not judged
    assert result.message == "workspaces.main: region unknown (set providers.fabric.region)"
    singapore = evaluate(MIXED, rule(allowed_regions=["cn-beijing"], addresses=["deployments.*"]),
                         regions={"modelstudio": "ap-southeast-1"})  # fmt: skip
    assert singapore.message == "deployments.qwen is in ap-southeast-1"
    assert evaluate(MIXED, rule(allowed_regions=["cn-beijing"], addresses=["deployments.*"]),
                    regions=known).status == "pass"  # fmt: skip


def test_a_refresh_only_plan_passes_every_rule() -> None:
    plan = Plan(
        stack="t", stack_file="t.yaml", digest="d", lineage="l", serial=1, refresh_only=True,
        changes=(change("endpoints.old", Action.DELETE, "fabric", name="old"),),
    )  # fmt: skip
    assert evaluate(plan, rule(deny=["delete"])).status == "pass"


def test_enforce_refuses_unless_the_rule_allows_an_override_and_it_is_given() -> None:
    soft = evaluate(MIXED, rule("soft", deny=["replace"], override=True))
    hard = evaluate(MIXED, rule("hard", deny=["delete"]))
    with pytest.raises(PolicyError) as refused:
        policy.enforce([soft, hard], [])
    text = str(refused.value)
    assert "the plan breaks 2 policy rules; nothing was changed:" in text
    assert "rule 'soft' (org.yaml): no replace of all resources: workspaces.main would be replaced" in text
    assert "this rule allows an override: --allow-policy-override soft" in text
    with pytest.raises(PolicyError, match=r"'hard'.*\n.*does not allow overrides"):
        policy.enforce([soft, hard], ["soft", "hard"])
    assert policy.enforce([soft], ["soft"]) == (
        "policy rule 'soft' overridden (--allow-policy-override): workspaces.main would be replaced",
    )
    with pytest.raises(UsageError, match="no policy rule by that name"):
        policy.enforce([soft], ["sofft"])


def test_approvals_come_from_flags_and_the_environment() -> None:
    assert policy.approvals_from(["alice"], " bob, carol ,,") == {"alice", "bob", "carol"}
    assert policy.approvals_from([], None) == frozenset()


# -- the policy file format --------------------------------------------------------------------


def test_a_policy_file_is_validated_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(
        "rules:\n"
        "  no-deletes:\n"
        "    deny: [delete, destroy]\n"
        "  two-checks:\n"
        "    max_monthly_cost: 10\n"
        "    allowed_platforms: [fabric]\n"
        "  Bad Name: {deny: [delete]}\n"
        "  approvals:\n"
        "    require_approval: {approvers: [alice], count: 2}\n"
        "    overide: true\n"
    )
    with pytest.raises(PolicyFileError) as error:
        policy.load_policy_file(str(path))
    rendered = error.value.render()
    assert rendered.startswith("the policy file is invalid (5 problems); nothing was called or written:")
    assert (
        f"{path}:3: rules.no-deletes.deny[1]: 'destroy' is not allowed; allowed: create, update," in rendered
    )
    assert f"{path}:4: rules.two-checks: a rule makes exactly one check" in rendered
    assert "(found max_monthly_cost, allowed_platforms)" in rendered
    assert f"{path}:7: rules.Bad Name: 'Bad Name' must be 1-64 characters a-z, 0-9" in rendered
    assert (
        f"{path}:9: rules.approvals.require_approval.count: is 2, but only 1 approvers are named" in rendered
    )
    assert f"{path}:10: rules.approvals.overide: unknown field; did you mean 'override'?" in rendered


def test_the_stack_policy_section_has_the_same_schema(tmp_path: Path) -> None:
    from reconciler.errors import StackError
    from reconciler.stack import load_stack

    path = tmp_path / "s.yaml"
    path.write_text("stack: s\npolicy:\n  rules:\n    r: {deny: [delete], addresses: ['bad glob']}\n")
    with pytest.raises(
        StackError, match=r"s.yaml:4: policy.rules.r.addresses\[0\]: 'bad glob' must be an address glob"
    ):
        load_stack(path)
    path.write_text("stack: s\npolicy:\n  rules:\n    r: {deny: [delete], override: true}\n")
    (r,) = policy.rules_of(load_stack(path))
    assert (r.name, r.source, r.spec.addresses, r.spec.override) == ("r", str(path), ["*"], True)


def test_a_rule_name_used_twice_is_an_error(tmp_path: Path) -> None:
    from reconciler.stack import load_stack

    (tmp_path / "s.yaml").write_text("stack: s\npolicy: {rules: {r: {deny: [delete]}}}\n")
    (tmp_path / "org.yaml").write_text("rules: {r: {deny: [replace]}}\n")
    with pytest.raises(UsageError, match="'r' is defined in both"):
        policy.collect(load_stack(tmp_path / "s.yaml"), [str(tmp_path / "org.yaml")])


# -- through the CLI (embedded emulators) ------------------------------------------------------

STACK = """\
stack: pol
providers:
  modelstudio: {{url: embedded, provision_seconds: 0, region: cn-beijing}}
backend: {{local: {{path: state/pol.json}}}}
{policy}
deployments:
  qwen:
    platform: modelstudio
    model_name: qwen3-8b
    name: qwen-chat
    plan: mu
    deploy_spec: {spec}
    capacity: {capacity}
    billing_method: POST_PAY
    suffix: chat01
"""


def run(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    import os

    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, list(args), env=dict(env or {}), catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.stdout, result.stderr


def write(cwd: Path, policy_text: str = "", spec: str = "MU5", capacity: int = 1) -> str:
    (cwd / "pol.yaml").write_text(STACK.format(policy=policy_text, spec=spec, capacity=capacity))
    return "pol.yaml"


def test_apply_refuses_a_plan_breaking_a_rule_and_an_override_lets_it_through(tmp_path: Path) -> None:
    stack = write(tmp_path, "policy: {rules: {budget: {max_monthly_cost: 1000, override: true}}}")
    code, out, _ = run(tmp_path, "plan", stack)
    assert code == 0
    assert "Policy (1 rule, 1 failing):" in out
    assert (
        "FAIL  budget: monthly cost of all resources at most $1,000.00: monthly cost after apply $2,108.24"
        in out
    )
    assert "apply refuses unless run with --allow-policy-override budget" in out

    code, _, err = run(tmp_path, "apply", stack, "--auto-approve")
    assert code == 1
    assert "the plan breaks 1 policy rule; nothing was changed:" in err
    assert "rule 'budget'" in err and "--allow-policy-override budget" in err
    assert (
        not (tmp_path / "state" / "pol.json").exists()
        or '"resources": {}' in (tmp_path / "state" / "pol.json").read_text()
    )

    code, out, err = run(tmp_path, "apply", stack, "--auto-approve", "--allow-policy-override", "budget")
    assert code == 0, err
    assert "Warning: policy rule 'budget' overridden (--allow-policy-override)" in err
    assert "Apply complete! Resources: 1 created" in out


def test_a_rule_without_override_cannot_be_overridden(tmp_path: Path) -> None:
    stack = write(tmp_path, "policy: {rules: {specs: {allowed_specs: [MU1]}}}")
    code, _, err = run(tmp_path, "apply", stack, "--auto-approve", "--allow-policy-override", "specs")
    assert code == 1
    assert "rule 'specs'" in err and "deployments.qwen uses MU5" in err
    assert "this rule does not allow overrides" in err
    code, _, err = run(tmp_path, "apply", stack, "--auto-approve", "--allow-policy-override", "spec")
    assert (
        code == 1
        and "--allow-policy-override spec: there is no policy rule by that name (rules: specs)" in err
    )


def test_an_organisation_policy_file_adds_rules_and_bad_files_fail_before_anything_runs(
    tmp_path: Path,
) -> None:
    stack = write(tmp_path)
    (tmp_path / "org.yaml").write_text("rules:\n  regions: {allowed_regions: [ap-southeast-1]}\n")
    code, out, _ = run(tmp_path, "plan", stack, "--policy", "org.yaml", "--format", "json")
    assert code == 0
    (result,) = json.loads(out)["assessment"]["policy"]
    assert result == {
        "rule": "regions", "source": "org.yaml", "check": "allowed_regions", "status": "fail",
        "summary": "all resources only in ap-southeast-1", "message": "deployments.qwen is in cn-beijing",
        "addresses": ["deployments.qwen"], "override": False,
    }  # fmt: skip
    (tmp_path / "bad.yaml").write_text("rules:\n  x: {deny: [nuke]}\n")
    code, out, err = run(tmp_path, "plan", stack, "--policy", "bad.yaml")
    assert code == 1 and out == ""
    assert "bad.yaml:2: rules.x.deny[0]: 'nuke' is not allowed" in err


def test_a_saved_plan_carries_results_and_apply_evaluates_again_with_approvals(tmp_path: Path) -> None:
    rules = "policy: {rules: {review: {require_approval: {approvers: [alice, bob], actions: [create]}}}}"
    stack = write(tmp_path, rules)
    code, out, _ = run(tmp_path, "plan", stack, "--out", "plan.json")
    assert code == 0 and "FAIL  review" in out
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["assessment"]["policy"][0]["status"] == "fail"

    code, _, err = run(tmp_path, "apply", "plan.json")
    assert code == 1 and "needs 1 approval from alice, bob, has 0" in err

    code, out, err = run(tmp_path, "apply", "plan.json", env={"RECONCILER_APPROVERS": "mallory,bob"})
    assert code == 0, err
    assert "pass  review: create of all resources need 1 approval from alice, bob: approved by bob" in out
    assert "Apply complete! Resources: 1 created" in out


def test_destroy_is_subject_to_deny_rules(tmp_path: Path) -> None:
    stack = write(tmp_path, "policy: {rules: {keep: {deny: [delete], addresses: ['deployments.*']}}}")
    assert run(tmp_path, "apply", stack, "--auto-approve")[0] == 0
    code, _, err = run(tmp_path, "destroy", stack, "--auto-approve")
    assert code == 1 and "deployments.qwen would be deleted" in err
