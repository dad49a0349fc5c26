"""Fixtures for stack tests: write stack files under ``stacks/`` of a temporary directory."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import StackError
from reconciler.stack import load_stack
from reconciler.stack.spec import Stack

QUICKSTART = """\
stack: quickstart
providers:
  fabric: {url: embedded, token: "{{ env.FABRIC_TOKEN | default('emulator-token') }}"}
backend: {local: {path: state/quickstart.json}}
variables: {env: dev}
workspaces:
  main: {name: "ml-{{ var.env }}", description: inference workspace}
endpoints:
  infer:
    workspace: main
    name: infer-{{ var.env }}
    type: inference
    reserved_resource: {mu: {spec_code: mu.llama3.8b, min: 0, max: 4}}
models:
  llama:
    workspace: main
    name: llama3-8b
    type: LLM_MODEL
    version: {name: v1, config: {llm_model_config: {base_model_type: llama3-8b, model_path: obs://models/llama3-8b}}}
deployments:
  chat:
    platform: fabric
    workspace: main
    endpoint: infer
    model: llama          # source.id / source.version_id come from the model
    name: chat-{{ var.env }}
    description: chat service
    config: {model_instance_config: {resource: {spec_code: mu.llama3.8b, min: 1, max: 2}}}
outputs:
  chat_id: "{{ deployments.chat.id }}"
"""

Write = Callable[..., str]


@pytest.fixture
def quickstart() -> str:
    """The quickstart stack of the design notes (29 lines)."""
    return QUICKSTART


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    """``write(text, name="x.yaml")`` -> ``"stacks/x.yaml"`` (relative to the test's working directory)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stacks").mkdir()

    def _write(text: str, name: str = "x.yaml") -> str:
        path = f"stacks/{name}"
        Path(path).write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def load(write: Write) -> Callable[..., Stack]:
    """``load(text, **kwargs)``: write the stack and load it with an empty environment by default."""

    def _load(text: str, **kwargs: Any) -> Stack:
        kwargs.setdefault("env", {})
        return load_stack(write(text), **kwargs)

    return _load


@pytest.fixture
def problems(write: Write) -> Callable[..., list[str]]:
    """``problems(text, **kwargs)``: the issues loading must raise, as ``file:line: path: message`` lines."""

    def _problems(text: str, **kwargs: Any) -> list[str]:
        kwargs.setdefault("env", {})
        with pytest.raises(StackError) as info:
            load_stack(write(text), **kwargs)
        return [str(issue) for issue in info.value.issues]

    return _problems
