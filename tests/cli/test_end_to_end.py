"""The whole loop through real subprocesses against a served emulator on loopback."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Served, run_cli

STACK = """\
stack: e2e
providers:
  fabric: {{url: "{url}", token: "{{{{ env.FABRIC_TOKEN }}}}"}}
backend: {{local: {{path: state/e2e.json}}}}
variables: {{env: dev}}
workspaces:
  main: {{name: "ml-{{{{ var.env }}}}", description: inference workspace}}
endpoints:
  infer:
    workspace: main
    name: infer-{{{{ var.env }}}}
    type: inference
    reserved_resource: {{mu: {{spec_code: mu.llama3.8b, min: 0, max: 4}}}}
models:
  llama:
    workspace: main
    name: llama3-8b
    type: LLM_MODEL
    version: {{name: v1, config: {{llm_model_config: {{base_model_type: llama3-8b, model_path: obs://models/llama3-8b}}}}}}
deployments:
  chat:
    platform: fabric
    workspace: main
    endpoint: infer
    model: llama
    name: chat-{{{{ var.env }}}}
    description: chat service
    config: {{model_instance_config: {{resource: {{spec_code: mu.llama3.8b, min: 1, max: {max}}}}}}}
outputs:
  chat_id: "{{{{ deployments.chat.id }}}}"
"""


def write_stack(tmp: Path, served: Served, max_: int = 2) -> Path:
    path = tmp / "e2e.yaml"
    path.write_text(STACK.format(url=served.url, max=max_))
    return path


def test_plan_apply_drift_restore_destroy(tmp_path: Path, served: Served) -> None:
    write_stack(tmp_path, served)
    env = {"FABRIC_TOKEN": served.token}

    first = run_cli(tmp_path, "plan", "e2e.yaml", "--detailed-exitcode", env=env)
    assert first.code == 2, first.err
    assert "+ deployments.chat (fabric service_instance)" in first.out
    assert "Plan: 4 to create, 0 to update, 0 to replace, 0 to delete." in first.out

    applied = run_cli(tmp_path, "apply", "e2e.yaml", "--auto-approve", env=env)
    assert applied.code == 0, applied.err
    assert "Apply complete! Resources: 4 created" in applied.out

    again = run_cli(tmp_path, "plan", "e2e.yaml", "--detailed-exitcode", env=env)
    assert again.code == 0, again.out + again.err
    assert "No changes." in again.out

    outputs = run_cli(tmp_path, "output", "e2e.yaml", "--json", env=env)
    chat_id = json.loads(outputs.out)["chat_id"]
    with served.client() as api:
        (ws,) = api.get("/v1/workspaces", params={"name": "ml-dev"}).json()["workspaces"]
        instance = api.get(f"/v1/workspaces/{ws['id']}/services/instances/{chat_id}").json()
        assert instance["status"] == "RUNNING"
        # a console user edits the workspace and scales the instance, out of band
        assert (
            api.put(f"/v1/workspaces/{ws['id']}", json={"description": "edited in console"}).status_code
            == 200
        )
        scaled = {"config": {"model_instance_config": {"resource": {"min": 1, "max": 3}}}}
        assert (
            api.put(f"/v1/workspaces/{ws['id']}/services/instances/{chat_id}", json=scaled).status_code == 200
        )

    drift = run_cli(tmp_path, "plan", "e2e.yaml", "--detailed-exitcode", env=env)
    assert drift.code == 2, drift.err
    assert '~ description: "edited in console" -> "inference workspace"' in drift.out
    assert "~ config.model_instance_config.resource.max: 3 -> 2" in drift.out
    assert "Plan: 0 to create, 2 to update, 0 to replace, 0 to delete." in drift.out

    restored = run_cli(tmp_path, "apply", "e2e.yaml", "--auto-approve", env=env)
    assert restored.code == 0, restored.err
    assert run_cli(tmp_path, "plan", "e2e.yaml", "--detailed-exitcode", env=env).code == 0

    destroyed = run_cli(tmp_path, "destroy", "e2e.yaml", "--auto-approve", env=env)
    assert destroyed.code == 0, destroyed.err
    with served.client() as api:
        assert api.get("/v1/workspaces").json()["total"] == 0
    assert run_cli(tmp_path, "state", "list", "e2e.yaml", env=env).out == ""


def test_saved_plan_applies_once_and_stale_plan_is_refused(tmp_path: Path, served: Served) -> None:
    write_stack(tmp_path, served)
    env = {"FABRIC_TOKEN": served.token}
    saved = run_cli(tmp_path, "plan", "e2e.yaml", "--out", "first.plan", env=env)
    assert saved.code == 0, saved.err
    stale = run_cli(tmp_path, "plan", "e2e.yaml", "--out", "second.plan", env=env)
    assert stale.code == 0

    applied = run_cli(tmp_path, "apply", "first.plan", env=env)
    assert applied.code == 0, applied.err
    assert "Apply complete! Resources: 4 created" in applied.out

    refused = run_cli(tmp_path, "apply", "second.plan", env=env)
    assert refused.code == 1
    assert "stale" in refused.err and "run plan again" in refused.err

    # a plan made before the stack file changed is refused too
    changed_plan = run_cli(tmp_path, "plan", "e2e.yaml", "--out", "third.plan", env=env)
    assert changed_plan.code == 0
    write_stack(tmp_path, served, max_=3)
    changed = run_cli(tmp_path, "apply", "third.plan", env=env)
    assert changed.code == 1 and "configuration changed" in changed.err


def test_apply_without_approval_refuses_with_no_input(tmp_path: Path, served: Served) -> None:
    write_stack(tmp_path, served)
    result = run_cli(tmp_path, "apply", "e2e.yaml", env={"FABRIC_TOKEN": served.token})
    assert result.code == 1
    assert "--auto-approve" in result.err
    with served.client() as api:
        assert api.get("/v1/workspaces").json()["total"] == 0


def test_wrong_token_names_the_platform_error_and_hides_the_token(tmp_path: Path, served: Served) -> None:
    write_stack(tmp_path, served)
    result = run_cli(
        tmp_path, "apply", "e2e.yaml", "--auto-approve", env={"FABRIC_TOKEN": "wrong-secret-123"}
    )
    assert result.code == 1
    assert "APIG.1002" in result.err and "fabric" in result.err
    assert "wrong-secret-123" not in result.out + result.err
    for f in (tmp_path / "state").rglob("*"):
        if f.is_file():
            assert "wrong-secret-123" not in f.read_text()
