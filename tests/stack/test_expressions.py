"""Resolving Deferred values with applied resources' attributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reconciler.errors import StackError
from reconciler.providers.base import UNKNOWN
from reconciler.stack.expressions import referenced, resolve
from reconciler.stack.spec import Deferred, Stack

Load = Callable[..., Stack]

STACK = """\
stack: t
variables: {env: dev}
workspaces:
  main: {name: main}
endpoints:
  infer:
    workspace: main
    name: infer
    type: inference
    description: "model {{ models.m.id }} of {{ models.m.name }} ({{ var.env }})"
models:
  m:
    workspace: main
    name: m
    version: {name: v1, config: {llm_model_config: {base_model_type: b, model_path: p}}}
outputs:
  endpoint: "{{ endpoints.infer.id }}"
  both: ["{{ endpoints.infer.id }}", {nested: "{{ models.m.current_version.id }}"}, 3]
  plain: text
"""


def test_resolve_with_known_attributes(load: Load) -> None:
    stack = load(STACK)
    attributes: dict[str, dict[str, Any]] = {
        "endpoints.infer": {"id": "ep-1"},
        "models.m": {"id": "m-1", "name": "m", "current_version": {"id": "v-9"}},
    }
    assert resolve(stack.outputs, stack, attributes) == {
        "endpoint": "ep-1",
        "both": ["ep-1", {"nested": "v-9"}, 3],
        "plain": "text",
    }
    description = stack.resources["endpoints.infer"].attrs["description"]
    assert resolve(description, stack, attributes) == "model m-1 of m (dev)"


def test_resolve_with_unknown_attributes(load: Load) -> None:
    stack = load(STACK)
    assert resolve(stack.outputs, stack, {}) == {
        "endpoint": UNKNOWN,
        "both": [UNKNOWN, {"nested": UNKNOWN}, 3],
        "plain": "text",
    }
    partial: dict[str, dict[str, Any]] = {
        "endpoints.infer": {"name": "infer"},
        "models.m": {"id": UNKNOWN, "name": "m"},
    }
    assert resolve(stack.outputs["endpoint"], stack, partial) is UNKNOWN  # attribute missing
    assert resolve(stack.outputs["both"][1], stack, partial) == {"nested": UNKNOWN}
    description = stack.resources["endpoints.infer"].attrs["description"]
    assert resolve(description, stack, partial) is UNKNOWN  # attribute known only after apply


def test_resolve_leaves_plain_values_alone(load: Load) -> None:
    stack = load(STACK)
    value = {"a": [1, ("x", None)], "b": True}
    assert resolve(value, stack, {}) == value


def test_referenced(load: Load) -> None:
    stack = load(STACK)
    assert referenced(stack.outputs) == {"endpoints.infer", "models.m"}
    assert referenced(stack.resources["endpoints.infer"].attrs) == {"models.m"}
    assert referenced({"a": ("x", [Deferred("{{ workspaces.w.id }}", ("workspaces.w",))])}) == {
        "workspaces.w"
    }
    assert referenced("plain") == set()


def test_resolve_reports_a_broken_template(load: Load) -> None:
    stack = load(STACK)
    broken = Deferred("{{ endpoints.infer.id // 0 }}", ("endpoints.infer",))
    with pytest.raises(StackError, match="cannot render"):
        resolve(broken, stack, {"endpoints.infer": {"id": 1}})
