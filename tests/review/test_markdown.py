"""Plans for reviewers: markdown and JSON snapshots, and GitHub's comment-size limit.

The snapshots (``snapshots/``) come from a real plan against a served
emulator, with ids, timestamps, digests and ports normalised. After a
deliberate change to the output, rewrite them with
``RECONCILER_UPDATE_SNAPSHOTS=1 pytest tests/review/test_markdown.py`` and
review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from reconciler.assessment import Assessment, CostEstimate, CostLine, RuleResult
from reconciler.drift import DriftedAttribute, DriftReport, ResourceDrift
from reconciler.plan import Action, AttrChange, Change, Plan
from reconciler.render.drift_markdown import drift_markdown
from reconciler.render.markdown import GITHUB_COMMENT_LIMIT
from reconciler.render.plan_markdown import plan_markdown
from reconciler.schemas import PlanFile
from tests.review.conftest import MS_KEY, ZS_PASSWORD, Cloud

SNAPSHOTS = Path(__file__).parent / "snapshots"
MIXED = Path(__file__).resolve().parents[2] / "stacks" / "mixed.yaml"
_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # uuids (Fabric, lineage)
    r"|(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"  # ZStack uuids
    r"|(?<=qwen3-32b-)[0-9a-f]{8}(?=-)"  # the random part of a Model Studio deployed_model
)
_TIME = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?"  # ISO 8601
    r"|[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d\d:\d\d [AP]M"  # ZStack's "Nov 24, 2026 4:35:04 PM"
)
_DIGEST = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_HOST = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d+)?")  # ports, emulated instance IPs
_ELAPSED = re.compile(r'"duration": \d+')


def normalised(text: str) -> str:
    """Ids numbered in order of first appearance; times, digests and ports replaced."""
    ids: dict[str, str] = {}
    text = _DIGEST.sub("<digest>", text)
    text = _ID.sub(lambda m: ids.setdefault(m.group(), f"<id-{len(ids) + 1}>"), text)
    text = _ELAPSED.sub('"duration": "<n>"', text)
    return _HOST.sub("<host>", _TIME.sub("<time>", text))


def matches_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("RECONCILER_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with RECONCILER_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its snapshot"


POLICY = """\
policy:
  rules:
    keep-workspaces: {deny: [delete, replace], addresses: ["workspaces.*"]}
    no-surprise-replacements:
      require_approval: {approvers: [alice, bob], actions: [replace]}
      override: true
    budget: {max_monthly_cost: 100000, addresses: ["deployments.*"]}
    increase: {max_monthly_increase: 5000, override: true}
    platforms: {allowed_platforms: [fabric, modelstudio, zstack]}
"""


def mixed_stack(cloud: Cloud, *, changed: bool) -> str:
    text = (
        MIXED.read_text()
        .replace("fabric: {url: embedded,", f'fabric: {{url: "{cloud.url}",')
        .replace("modelstudio: {url: embedded,", f'modelstudio: {{url: "{cloud.url}/api/v1",')
        .replace("zstack: {url: embedded,", f'zstack: {{url: "{cloud.url}",')
    )
    if changed:
        text = text.replace("description: inference workspace", "description: reviewed workspace")
        text = text.replace(
            "resource: {spec_code: mu.llama3.8b, min: 1, max: 2}",
            "resource: {spec_code: mu.llama3.8b, min: 2, max: 2}",
        )
        text = text.replace("    capacity: 4\n", "    capacity: 8\n")
        text = text[: text.index("  qwen_zs:")] + text[text.index("outputs:") :]
        text = text.replace('  zstack_group: "{{ deployments.qwen_zs.id }}"\n', "")
        text = text.replace("backend:", POLICY + "backend:")
    (cloud.cwd / "mixed.yaml").write_text(text)
    return "mixed.yaml"


def test_markdown_and_json_plans_match_their_snapshots(cloud: Cloud) -> None:
    env = {"DASHSCOPE_API_KEY": MS_KEY, "ZSTACK_PASSWORD": ZS_PASSWORD}
    first = cloud.cli("apply", mixed_stack(cloud, changed=False), "--auto-approve", env=env)
    assert first.code == 0, first.out + first.err
    stack = mixed_stack(cloud, changed=True)

    markdown = cloud.cli("plan", stack, "--format", "markdown", "--approve", "alice", env=env)
    assert markdown.code == 0, markdown.err
    assert len(markdown.out) < GITHUB_COMMENT_LIMIT and "Summarised" not in markdown.out
    matches_snapshot("mixed_plan.md", normalised(markdown.out))

    as_json = cloud.cli("plan", stack, "--format", "json", "--detailed-exitcode", env=env)
    assert as_json.code == 2
    PlanFile.model_validate(json.loads(as_json.out))
    matches_snapshot("mixed_plan.json", normalised(as_json.out))

    nothing = cloud.cli("plan", mixed_stack(cloud, changed=False), "--format", "markdown", env=env)
    assert nothing.out.splitlines() == [
        "<!-- reconciler-plan: mixed -->",
        "### reconciler plan for `mixed`",
        "",
        "No changes. The platforms match the stack.",
        "",
    ]


# -- the size limit --------------------------------------------------------------------------------


def huge_plan(n: int) -> Plan:
    actions = [Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE]
    changes = []
    for i in range(n):
        action = actions[i % 4]
        address = f"deployments.d{i:05d}"
        attrs = {
            "model_name": "qwen3-8b",
            "plan": "mu",
            "deploy_spec": "MU1",
            "capacity": 4,
            "note": "x" * 200,
        }
        diff = (
            (AttrChange("capacity", 4, 8, action is Action.REPLACE),)
            if action in (Action.UPDATE, Action.REPLACE)
            else ()
        )
        before = None if action is Action.CREATE else attrs
        after = None if action is Action.DELETE else attrs
        changes.append(
            Change(
                address, "modelstudio", "deployment", action, before, after, diff, id=f"id-{i}", name=f"d{i}"
            )
        )
    addresses = tuple(c.address for c in changes)
    warnings = tuple(
        f"{c.address} will be deleted (not in the stack)" for c in changes if c.action is Action.DELETE
    )
    assessment = Assessment(
        policy=(
            RuleResult("keep", "org.yaml", "deny", "no delete of all resources", False,
                       "deployments.d00003 would be deleted and 1249 more", addresses, True),
            RuleResult("budget", "org.yaml", "max_monthly_cost", "monthly cost at most $1.00", True, "ok"),
        ),
        cost=CostEstimate(tuple(CostLine(a, "modelstudio", "deployment", 1.0, 2.0, "p") for a in addresses)),
    )  # fmt: skip
    blocked = tuple(f"{a}: prevent_destroy" for a in addresses[:500])
    return Plan(
        "big",
        "big.yaml",
        "d",
        "l",
        1,
        tuple(changes),
        warnings=warnings,
        blocked=blocked,
        assessment=assessment,
    )


def test_a_plan_with_thousands_of_changes_stays_under_the_comment_limit_and_says_so() -> None:
    plan = huge_plan(5_000)
    text = plan_markdown(plan)
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert "| 1250 | 1250 | 1250 | 1250 |" in text
    assert "#### Policy: 2 rules, 1 failing" in text and "#### Monthly cost" in text
    assert "... and 470 more" in text  # blocked hits beyond the first 30
    assert "more changes, by address only (comment size limit):" in text
    assert text.rstrip().endswith(
        "The saved plan (`--out`) and `reconciler plan --format json` hold all of it._"
    )
    assert "Summarised to stay under GitHub's 65,536-character comment limit:" in text
    shown = int(re.search(r"limit: (\d+) of 5000 changes are shown in full", text).group(1))  # type: ignore[union-attr]
    assert 0 < shown < 5_000


def test_one_enormous_diff_is_cut_and_a_small_plan_is_not_summarised() -> None:
    big = Change("models.m", "fabric", "model", Action.CREATE, after={f"k{i}": "v" * 100 for i in range(500)})
    text = plan_markdown(Plan("s", "s.yaml", "d", None, None, (big,)))
    assert "more lines not shown (see the JSON plan)" in text and "Summarised" not in text
    assert len(text) < 10_000
    fence_breaker = Change(
        "models.m", "fabric", "model", Action.CREATE, after={"description": "```\n<b>x</b>"}
    )
    text = plan_markdown(Plan("s", "s.yaml", "d", None, None, (fence_breaker,)))
    assert "````diff" in text  # a longer fence than any backtick run inside


def test_a_drift_report_with_thousands_of_objects_stays_under_the_limit() -> None:
    changed = tuple(
        ResourceDrift("changed", "fabric", "endpoint", f"id-{i}", f"endpoints.e{i}", f"e{i}",
                      attributes=(DriftedAttribute("description", "a" * 100, "b" * 100),))
        for i in range(3_000)
    )  # fmt: skip
    stray = tuple(ResourceDrift("unmanaged", "modelstudio", "deployment", f"d-{i}", None, f"d{i}",
                                where="modelstudio default workspace") for i in range(3_000))  # fmt: skip
    report = DriftReport("big", "2026-01-01T00:00:00Z", changed + stray)
    text = drift_markdown(report, stack_file="big.yaml")
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert "| 3000 | 0 | 3000 |" in text
    assert "Summarised to stay under GitHub's 65,536-character limit" in text


def test_prevent_destroy_hits_are_shown_for_review_but_the_plan_fails_and_is_not_saved(
    tmp_path: Path,
) -> None:
    from tests.review.test_policy import run

    (tmp_path / "s.yaml").write_text(
        "stack: s\n"
        "providers: {modelstudio: {url: embedded, provision_seconds: 0, region: cn-beijing}}\n"
        "backend: {local: {path: state/s.json}}\n"
        "deployments:\n"
        "  qwen: {platform: modelstudio, model_name: qwen3-8b, name: q, plan: mu, deploy_spec: MU5,\n"
        "         capacity: 1, billing_method: POST_PAY, suffix: s1, lifecycle: {prevent_destroy: true}}\n"
    )
    assert run(tmp_path, "apply", "s.yaml", "--auto-approve")[0] == 0
    text = (
        (tmp_path / "s.yaml")
        .read_text()
        .replace("deploy_spec: MU5", "deploy_spec: MU1")
        .replace("capacity: 1", "capacity: 4")
    )
    (tmp_path / "s.yaml").write_text(text)
    code, out, err = run(tmp_path, "plan", "s.yaml", "--format", "markdown", "--out", "p.json")
    assert code == 1
    assert "> [!CAUTION]\n> **Blocked by lifecycle.prevent_destroy: this plan cannot be applied**" in out
    assert "> - deployments.qwen: lifecycle.prevent_destroy is set, but the plan must replace it" in out
    assert "lifecycle.prevent_destroy blocks this plan; it was not saved" in err
    assert not (tmp_path / "p.json").exists()
    code, out, err = run(tmp_path, "apply", "s.yaml", "--auto-approve")
    assert code == 1 and "prevent_destroy" in err and "Blocked by lifecycle.prevent_destroy" in out
