"""Seed 001 (DataArts Fabric: Creating an Inference Service), typed in as a stack and run through the CLI.

The walk-through's bodies as stack fields: a workspace, an inference endpoint
reserving `mu.llama3.8b` 0..1, a model whose `base_model_type` and `model_path`
are empty strings, and a service instance with only `source.id` (the model) and
no `config`. Apply must succeed, and the next plan must be a no-op.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

WALKTHROUGH = """\
stack: walkthrough
providers:
  fabric: {url: embedded, provision_seconds: 0}
workspaces:
  ws: {name: apieworkspace, description: apie test workspace}
endpoints:
  ep:
    workspace: ws
    name: apie_test
    description: apie test endpoint
    type: inference
    reserved_resource: {mu: {spec_code: mu.llama3.8b, min: 0, max: 1}}
models:
  llama:
    workspace: ws
    name: LLama3-8b
    description: this is a apie test model
    type: LLM_MODEL
    version:
      name: v1
      description: test description
      config: {llm_model_config: {base_model_type: "", model_path: ""}}
deployments:
  svc:
    platform: fabric
    workspace: ws
    endpoint: ep
    model: llama
    name: test_serviceInstanceName
    description: description
"""


def run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_the_walkthrough_applies_as_written_and_then_plans_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the state (and the embedded cloud) go under tmp_path/state
    stack = tmp_path / "walkthrough.yaml"
    stack.write_text(WALKTHROUGH)
    code, out, err = run(["apply", str(stack), "--auto-approve"])
    assert code == 0, out + err
    assert "Apply complete! Resources: 4 created, 0 updated, 0 destroyed." in out
    code, out, err = run(["plan", str(stack), "--detailed-exitcode"])
    assert code == 0, out + err
    assert "No changes." in out
