"""The example GitHub workflows, step by step, against a served emulator.

Each ``run:`` step of ``examples/github/*.yml`` is executed as GitHub would
(``bash --noprofile --norc -eo pipefail``, ``$GITHUB_OUTPUT``, the step's
environment) with the real ``reconciler`` and a fake ``gh`` (:mod:`fake_gh`)
on PATH. ``uses:`` steps (checkout, setup-python, artifacts) are done by the
test: the repository is the working directory; an uploaded artifact is a
file registered with the fake ``gh``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.review.conftest import MODELSTUDIO, MS_KEY, ZS_PASSWORD, Cloud

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "github"
FAKE_GH = Path(__file__).with_name("fake_gh.py")
POLICY = """\
rules:
  reviewed:
    require_approval: {approvers: [alice, bob], actions: [create, replace, delete]}
  budget:
    max_monthly_cost: 10000
    override: true
"""


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return loaded


@dataclass
class Step:
    code: int
    out: str
    err: str
    outputs: dict[str, str]


class Repo:
    """A checked-out repository with reconciler and a fake gh on PATH."""

    def __init__(self, cloud: Cloud, tmp: Path) -> None:
        self.cloud = cloud
        self.dir = cloud.cwd
        self.bin = tmp / "bin"
        self.gh = tmp / "gh"
        self.artifacts = tmp / "artifacts"
        for d in (self.bin, self.gh, self.artifacts, self.dir / "stacks", self.dir / "policy"):
            d.mkdir(parents=True, exist_ok=True)
        (self.bin / "reconciler").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@"\n')
        (self.bin / "gh").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_GH}" "$@"\n')
        for tool in ("reconciler", "gh"):
            (self.bin / tool).chmod(0o755)
        empty: dict[str, Any] = {"comments": [], "reviews": [], "runs": [], "issues": [], "labels": []}
        (self.gh / "state.json").write_text(json.dumps(empty))
        (self.dir / "policy" / "org.yaml").write_text(POLICY)

    def stack(self, capacity: int) -> None:
        text = MODELSTUDIO.format(url=self.cloud.url, extra="", spec="MU1", capacity=capacity)
        (self.dir / "stacks" / "prod.yaml").write_text(text.replace("state/ms.json", "state/prod.json"))

    @property
    def github(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.gh / "state.json").read_text())
        return state

    def update(self, **changes: Any) -> None:
        (self.gh / "state.json").write_text(json.dumps({**self.github, **changes}))

    def upload(self, run: int, sha: str, path: str = "plan.json") -> None:
        """What actions/upload-artifact does for the plan job of commit ``sha`` (run ``run``)."""
        kept = self.artifacts / str(run)
        kept.mkdir()
        shutil.copy(self.dir / path, kept / path)
        entry = {"databaseId": run, "headSha": sha, "event": "pull_request", "status": "success",
                 "artifacts": {f"reconciler-plan-{sha}": str(kept / path)}}  # fmt: skip
        self.update(runs=[*self.github["runs"], entry])

    def run(self, wf: dict[str, Any], job: str, name: str, **expressions: str) -> Step:
        """Run one ``run:`` step; ``expressions`` give the values of env entries written as ``${{ }}``."""
        (step,) = [s for s in wf["jobs"][job]["steps"] if name in (s.get("id"), s.get("name"))]
        secrets = {"DASHSCOPE_API_KEY": MS_KEY, "FABRIC_TOKEN": self.cloud.served.token,
                   "ZSTACK_PASSWORD": ZS_PASSWORD, "GH_TOKEN": "gh-test-token"}  # fmt: skip
        env = {
            **os.environ,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_GH_DIR": str(self.gh),
            "GITHUB_REPOSITORY": "acme/models",
            "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_WORKFLOW_REF": "acme/models/.github/workflows/reconciler.yml@refs/heads/main",
            "GITHUB_OUTPUT": str(self.dir.parent / "github_output"),
            "GITHUB_STEP_SUMMARY": str(self.dir.parent / "step_summary"),
        }
        for scope in (wf.get("env", {}), wf["jobs"][job].get("env", {}), step.get("env", {})):
            for key, value in scope.items():
                text = str(value)
                env[key] = {**secrets, **expressions}[key] if "${{" in text else text
        Path(env["GITHUB_OUTPUT"]).write_text("")
        script = self.dir.parent / "step.sh"
        script.write_text(step["run"])
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.dir, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        outputs = dict(
            line.split("=", 1) for line in Path(env["GITHUB_OUTPUT"]).read_text().splitlines() if "=" in line
        )
        return Step(proc.returncode, proc.stdout, proc.stderr, outputs)


@pytest.fixture
def repo(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return Repo(cloud, tmp_path_factory.mktemp("runner"))


@pytest.mark.parametrize("name", ["pull-request.yml", "drift.yml"])
def test_run_steps_take_their_inputs_from_the_environment(name: str) -> None:
    """No ``${{ }}`` inside a script: values reach it through ``env`` (no script injection)."""
    for job in workflow(name)["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step.get("name")


def test_pull_request_workflow_plans_comments_and_applies_the_saved_plan(repo: Repo) -> None:
    wf = workflow("pull-request.yml")
    assert [s.get("name") or s["uses"] for s in wf["jobs"]["plan"]["steps"]] == [
        "actions/checkout@v4", "actions/setup-python@v5", "Install reconciler", "Plan", "Comment the plan",
        "Keep the saved plan",
    ]  # fmt: skip
    pr = {"PR": "7"}

    # push 1: plan, comment, keep the saved plan
    repo.stack(capacity=4)
    planned = repo.run(wf, "plan", "plan")
    assert planned.code == 0, planned.err
    assert planned.outputs == {"exitcode": "2"}
    comment = (repo.dir / "plan.md").read_text()
    assert comment.startswith("<!-- reconciler-plan: ms -->")
    assert "❌ **fail** | `reviewed`" in comment and "#### Monthly cost" in comment
    assert repo.run(wf, "plan", "Comment the plan", **pr).code == 0
    repo.upload(101, "sha1")

    # push 2: the same comment is updated, not a second one added
    repo.stack(capacity=8)
    assert repo.run(wf, "plan", "plan").outputs == {"exitcode": "2"}
    updated = repo.run(wf, "plan", "Comment the plan", **pr)
    assert updated.code == 0 and updated.out.startswith("updated comment 1000")
    (only,) = repo.github["comments"]
    # qwen3-8b MU1 x 2 at $14.852/h with capacity 8 is 4 bundles: $43,367.84 a month, + $87.60 of PTU
    assert "capacity = 8" in only["body"] and "$43,455.44" in only["body"]
    repo.upload(102, "sha2")

    # merged: fetch the plan of the last commit; policy needs an approval and the budget is exceeded
    (repo.dir / "plan.json").unlink()
    merged = {**pr, "HEAD_SHA": "sha2", "LABELS": "[]"}
    fetched = repo.run(wf, "apply", "Fetch the saved plan", **merged)
    assert fetched.code == 0 and "saved plan from run 102" in fetched.out
    refused = repo.run(wf, "apply", "Apply the saved plan", **merged)
    assert refused.code == 1
    log = (repo.dir / "apply.log").read_text()
    assert "the plan breaks 2 policy rules; nothing was changed" in log
    assert "needs 1 approval from alice, bob, has 0" in log and "--allow-policy-override budget" in log
    reported = repo.run(wf, "apply", "Report a refused or failed apply on the pull request", **pr)
    assert reported.code == 0 and "### reconciler apply failed" in repo.github["comments"][-1]["body"]

    repo.update(reviews=[{"state": "APPROVED", "user": {"login": "alice"}},
                         {"state": "COMMENTED", "user": {"login": "bob"}}])  # fmt: skip
    labelled = {**merged, "LABELS": json.dumps(["reconciler-override:budget", "team:ml"])}
    applied = repo.run(wf, "apply", "Apply the saved plan", **labelled)
    assert applied.code == 0, applied.out
    assert "Apply complete! Resources: 2 created" in applied.out
    assert "policy rule 'budget' overridden" in applied.out
    with repo.cloud.modelstudio() as api:
        assert api.get("/deployments").json()["output"]["total"] == 2

    # push 3 is planned, but another apply lands first: its saved plan is stale and refused
    repo.stack(capacity=4)
    assert repo.run(wf, "plan", "plan").outputs == {"exitcode": "2"}
    repo.upload(103, "sha3")
    other = repo.cloud.cli("apply", "stacks/prod.yaml", "--auto-approve")  # someone at a terminal
    assert other.code == 0, other.err
    stale = {**pr, "HEAD_SHA": "sha3", "LABELS": "[]"}
    assert repo.run(wf, "apply", "Fetch the saved plan", **stale).code == 0
    refused = repo.run(wf, "apply", "Apply the saved plan", **stale)
    assert refused.code == 1
    assert "plan is stale: made against state serial" in refused.out and "run plan again" in refused.out

    missing = repo.run(wf, "apply", "Fetch the saved plan", **{**pr, "HEAD_SHA": "sha-unplanned"})
    assert missing.code == 1 and "no saved plan for sha-unplanned" in missing.out


def test_drift_workflow_opens_updates_and_closes_one_issue(repo: Repo) -> None:
    wf = workflow("drift.yml")
    stack = {"STACK": "stacks/prod.yaml"}
    repo.stack(capacity=4)
    assert repo.cloud.cli("apply", "stacks/prod.yaml", "--auto-approve").code == 0

    clean = repo.run(wf, "drift", "drift", **stack)
    assert (clean.code, clean.outputs) == (0, {"exitcode": "0"})
    assert clean.out == "No drift. Report written to drift.md.\n"
    assert repo.run(wf, "drift", "Close the drift issue", **stack).code == 0
    assert repo.github["issues"] == []

    state = json.loads(repo.cloud.cli("state", "show", "stacks/prod.yaml").out)
    qwen = state["resources"]["deployments.qwen8b"]["id"]
    with repo.cloud.modelstudio() as api:
        assert api.put(f"/deployments/{qwen}/scale", json={"deployed_model": qwen, "capacity": 8}).is_success

    for round_ in (1, 2):
        found = repo.run(wf, "drift", "drift", **stack)
        assert (found.code, found.outputs) == (0, {"exitcode": "2"})
        report = (repo.dir / "drift.md").read_text()
        assert report.startswith("<!-- reconciler-drift: ms -->") and "| `capacity` | `4` | `8` |" in report
        assert repo.run(wf, "drift", "Open or update the drift issue", **stack).code == 0
        (issue,) = repo.github["issues"]
        assert (issue["title"], issue["state"], issue["labels"]) == (
            "reconciler: drift in stacks/prod.yaml", "open", ["drift"]
        )  # fmt: skip
        assert issue["body"] == report and len(issue["comments"]) == round_ - 1
        failed = repo.run(wf, "drift", "Fail the job on drift", **stack)
        assert failed.code == 1 and "::error::drift found in stacks/prod.yaml" in failed.out

    assert repo.cloud.cli("apply", "stacks/prod.yaml", "--auto-approve").code == 0
    assert repo.run(wf, "drift", "drift", **stack).outputs == {"exitcode": "0"}
    assert repo.run(wf, "drift", "Close the drift issue", **stack).code == 0
    (issue,) = repo.github["issues"]
    assert issue["state"] == "closed" and issue["comments"][-1].startswith("No drift any more")

    broken = repo.run(wf, "drift", "drift", STACK="stacks/missing.yaml")
    assert broken.code == 1 and broken.outputs == {"exitcode": "1"}
