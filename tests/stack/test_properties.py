"""Laws: whatever the input, loading returns a Stack or raises StackError, never anything else."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import StackError
from reconciler.stack import load_stack

KEYS = st.sampled_from(
    [
        "stack",
        "name",
        "workspace",
        "endpoint",
        "model",
        "platform",
        "config",
        "type",
        "version",
        "depends_on",
        "lifecycle",
        "reserved_resource",
        "mu",
        "min",
        "max",
        "spec_code",
        "main",
        "infer",
        "x",
        "fabric",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2000),
    st.text(max_size=12),
    st.sampled_from(
        ["{{ var.env }}", "{{ endpoints.infer.id }}", "{{ nope }}", "{% if %}", "fabric", "main"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
SECTION = st.dictionaries(st.sampled_from(["main", "infer", "llama", "chat", "Bad"]), VALUES, max_size=3)
DOCUMENT = st.fixed_dictionaries(
    {"stack": st.one_of(st.just("t"), SCALARS)},
    optional={
        "variables": st.dictionaries(st.sampled_from(["env", "x"]), VALUES, max_size=2),
        "providers": VALUES,
        "backend": VALUES,
        "outputs": VALUES,
        "workspaces": SECTION,
        "endpoints": SECTION,
        "models": SECTION,
        "deployments": SECTION,
    },
)


def load_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_stack(path, env={})
        except StackError as exc:
            assert exc.issues and all(issue.message for issue in exc.issues)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from("ab: -[]{}\n'\"!&*#|>{%}"), max_size=60))
def test_any_text_gives_a_stack_or_stack_error(text: str) -> None:
    load_text(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENT)
def test_any_structure_gives_a_stack_or_stack_error(document: dict[str, Any]) -> None:
    load_text(yaml.safe_dump(document))
