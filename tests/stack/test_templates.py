"""Templates: variables and their precedence, env, the sandbox, undefined names, Deferred values."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.stack.spec import Deferred, Stack
from reconciler.stack.templates import analyse

Problems = Callable[..., list[str]]
Load = Callable[..., Stack]

STACK = """\
stack: t
variables: {env: dev, region: cn-north-4}
workspaces:
  main: {name: "ml-{{ var.env }}-{{ var.region }}"}
"""


def name_of(stack: Stack) -> str:
    return str(stack.resources["workspaces.main"].attrs["name"])


def test_file_defaults_are_used(load: Load) -> None:
    assert name_of(load(STACK)) == "ml-dev-cn-north-4"
    assert load(STACK).variables == {"env": "dev", "region": "cn-north-4"}


def test_var_files_override_defaults_in_order_and_var_overrides_all(load: Load, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("env: staging\nregion: cn-a\n")
    (tmp_path / "b.json").write_text(json.dumps({"region": "cn-b"}))
    stack = load(STACK, var_files=[tmp_path / "a.yaml", str(tmp_path / "b.json")])
    assert name_of(stack) == "ml-staging-cn-b"
    stack = load(STACK, var_files=[tmp_path / "a.yaml", tmp_path / "b.json"], variables={"env": "prod"})
    assert name_of(stack) == "ml-prod-cn-b"


def test_var_values_stay_strings(load: Load) -> None:
    stack = load(STACK, variables={"env": "007", "region": "true"})
    assert stack.variables == {"env": "007", "region": "true"}
    assert name_of(stack) == "ml-007-true"


def test_undeclared_var_is_an_error_with_a_hint(problems: Problems) -> None:
    assert problems(STACK, variables={"evn": "x"}) == [
        "--var: evn: undeclared variable; did you mean 'env'? declared: env, region"
    ]


def test_undeclared_name_in_a_var_file_is_an_error(problems: Problems, tmp_path: Path) -> None:
    (tmp_path / "v.yaml").write_text("env: a\nregoin: b\n")
    assert problems(STACK, var_files=["v.yaml"]) == [
        "v.yaml:2: regoin: undeclared variable; did you mean 'region'? declared: env, region"
    ]


def test_var_file_must_be_a_mapping(problems: Problems, tmp_path: Path) -> None:
    (tmp_path / "v.yaml").write_text("- a\n")
    assert problems(STACK, var_files=["v.yaml"]) == [
        "v.yaml:1: a var file must be a mapping of variable names to values"
    ]


def test_variable_without_value_must_be_given(problems: Problems, load: Load) -> None:
    text = "stack: t\nvariables:\n  env: null\nworkspaces:\n  main: {name: '{{ var.env }}'}\n"
    assert problems(text) == [
        "stacks/x.yaml:3: variables.env: no value: pass --var env=... or set it in a --var-file"
    ]
    assert name_of(load(text, variables={"env": "x"})) == "x"


def test_env_with_and_without_default(load: Load, problems: Problems) -> None:
    text = """\
    stack: t
    providers:
      fabric: {url: embedded, token: "{{ env.FABRIC_TOKEN | default('emulator-token') }}"}
    """
    assert load(text).providers == {"fabric": {"url": "embedded", "token": "emulator-token"}}
    assert load(text, env={"FABRIC_TOKEN": "s3cret"}).providers["fabric"]["token"] == "s3cret"
    bare = text.replace(" | default('emulator-token')", "")
    assert problems(bare) == [
        "stacks/x.yaml:3: providers.fabric.token: undefined variable 'env.FABRIC_TOKEN': environment variable"
        " FABRIC_TOKEN is not set; set it or write {{ env.FABRIC_TOKEN | default('...') }}"
    ]


def test_env_defaults_to_os_environ(write: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.stack import load_stack

    monkeypatch.setenv("RECONCILER_TEST_NAME", "from-env")
    stack = load_stack(write("stack: t\nworkspaces:\n  main: {name: '{{ env.RECONCILER_TEST_NAME }}'}\n"))
    assert name_of(stack) == "from-env"
    assert stack.env["RECONCILER_TEST_NAME"] == "from-env"


def test_variable_defaults_may_use_env_but_not_var(load: Load, problems: Problems) -> None:
    text = (
        "stack: t\nvariables:\n  region: \"{{ env.REGION | default('cn') }}\"\n"
        "workspaces:\n  main: {name: '{{ var.region }}'}\n"
    )
    assert name_of(load(text)) == "cn"
    assert name_of(load(text, env={"REGION": "eu"})) == "eu"
    bad = "stack: t\nvariables:\n  a: x\n  b: '{{ var.a }}'\n"
    assert problems(bad) == [
        "stacks/x.yaml:4: variables.b: undefined variable 'var.a'; variable defaults can use env but not var"
    ]


def test_undefined_variable(problems: Problems) -> None:
    text = STACK + "  other: {name: '{{ var.nope }}'}\n"
    assert problems(text) == [
        "stacks/x.yaml:5: workspaces.other.name: undefined variable 'var.nope'; defined: env, region"
    ]


def test_undefined_nested_variable_and_top_level_name(problems: Problems) -> None:
    text = """\
    stack: t
    variables: {db: {host: h}}
    workspaces:
      a: {name: "{{ var.db.port }}"}
      b: {name: "{{ nope }}"}
    """
    assert problems(text) == [
        "stacks/x.yaml:4: workspaces.a.name: undefined variable 'var.db.port'; defined: host",
        "stacks/x.yaml:5: workspaces.b.name: undefined variable 'nope'; available: var, env, workspaces,"
        " endpoints, models, deployments",
    ]


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ var.env.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_sandbox_escape_is_rejected(problems: Problems, template: str) -> None:
    text = f'stack: t\nvariables: {{env: dev}}\nworkspaces:\n  main: {{name: "{template}"}}\n'
    (issue,) = problems(text)
    assert issue.startswith("stacks/x.yaml:4: workspaces.main.name: ")
    assert "rejected by the template sandbox" in issue or "undefined variable" in issue


def test_sandbox_names_the_unsafe_attribute(problems: Problems) -> None:
    text = "stack: t\nworkspaces:\n  main: {name: \"{{ ''.__class__.__mro__ }}\"}\n"
    assert problems(text) == [
        "stacks/x.yaml:3: workspaces.main.name: rejected by the template sandbox: access to attribute"
        " '__class__' of 'str' object is unsafe."
    ]


def test_huge_values_are_refused(problems: Problems) -> None:
    text = (
        "stack: t\nworkspaces:\n  main: {name: \"{{ 'a' * 100000000 }}\"}\n  b: {name: '{{ 9 ** 99999 }}'}\n"
    )
    assert problems(text) == [
        "stacks/x.yaml:3: workspaces.main.name: rejected by the template sandbox: '*' would build a value"
        " longer than 1000000",
        "stacks/x.yaml:4: workspaces.b.name: rejected by the template sandbox: exponent 99999 is too large"
        " (at most 1000)",
    ]


def test_template_syntax_error(problems: Problems) -> None:
    text = "stack: t\nworkspaces:\n  main: {name: '{{ var.env '}\n"
    (issue,) = problems(text)
    assert issue.startswith("stacks/x.yaml:3: workspaces.main.name: template syntax error: ")


def test_other_template_failures_are_reported(problems: Problems) -> None:
    text = "stack: t\nworkspaces:\n  main: {name: '{{ 1 // 0 }}'}\n"
    assert problems(text) == [
        "stacks/x.yaml:3: workspaces.main.name: template failed:"
        " ZeroDivisionError: integer division or modulo by zero"
    ]


def test_rendered_values_stay_strings_and_ints_are_coerced_where_needed(load: Load) -> None:
    text = """\
    stack: t
    variables: {max: 3, label: "042"}
    workspaces:
      main: {name: "{{ var.label }}"}
    endpoints:
      infer:
        workspace: main
        name: infer
        type: inference
        reserved_resource: {mu: {spec_code: mu.s, min: 0, max: "{{ var.max }}"}}
    """
    stack = load(text)
    assert stack.resources["workspaces.main"].attrs["name"] == "042"
    assert stack.resources["endpoints.infer"].attrs["reserved_resource"]["mu"]["max"] == 3


def test_mapping_keys_win_over_dict_methods(load: Load) -> None:
    text = "stack: t\nvariables: {items: x}\nworkspaces:\n  main: {name: '{{ var.items }}'}\n"
    assert name_of(load(text)) == "x"


def test_resource_reference_becomes_deferred(load: Load) -> None:
    text = """\
    stack: t
    variables: {env: dev}
    workspaces:
      main: {name: main}
    endpoints:
      infer:
        workspace: main
        name: "i-{{ var.env }}"
        type: inference
        description: "near {{ models.m.id }} and {{ models['m'].name }}"
    models:
      m:
        workspace: main
        name: m
        version: {name: v1, config: {llm_model_config: {base_model_type: b, model_path: p}}}
    """
    stack = load(text)
    endpoint = stack.resources["endpoints.infer"]
    assert endpoint.attrs["description"] == Deferred(
        "near {{ models.m.id }} and {{ models['m'].name }}", ("models.m",)
    )
    assert endpoint.attrs["name"] == "i-dev"
    assert endpoint.depends_on == ("models.m", "workspaces.main")
    assert endpoint.refs == {"workspace": "workspaces.main"}


def test_undefined_variable_inside_a_deferred_template_is_found_at_load(problems: Problems) -> None:
    text = """\
    stack: t
    workspaces:
      main: {name: main}
      b: {name: b, description: "{{ workspaces.main.id }}-{{ var.nope }}"}
    """
    assert problems(text) == [
        "stacks/x.yaml:4: workspaces.b.description: undefined variable 'var.nope'; defined: none"
    ]


def test_reference_to_a_missing_resource(problems: Problems) -> None:
    text = "stack: t\nworkspaces:\n  main: {name: main, description: '{{ workspaces.mian.id }}'}\n"
    assert problems(text) == [
        "stacks/x.yaml:3: workspaces.main.description: no workspace 'mian' in workspaces;"
        " did you mean 'main'?"
    ]


def test_dynamic_resource_access_is_an_error(problems: Problems) -> None:
    text = (
        "stack: t\nvariables: {w: main}\nworkspaces:\n"
        "  main: {name: main, description: '{{ workspaces[var.w].id }}'}\n"
    )
    assert problems(text) == [
        "stacks/x.yaml:4: workspaces.main.description: 'workspaces' can only be read as"
        " workspaces.<key>.<attribute> (e.g. {{ endpoints.infer.id }}), with a literal key"
    ]


def test_references_are_not_allowed_outside_resources_and_outputs(problems: Problems) -> None:
    text = """\
    stack: t
    providers:
      fabric: {url: embedded, token: "{{ workspaces.main.id }}"}
    workspaces:
      main: {name: main}
    endpoints:
      infer: {workspace: "{{ workspaces.main.id }}", name: i, type: inference}
    """
    assert problems(text) == [
        "stacks/x.yaml:3: providers.fabric.token:"
        " cannot reference resources here; only var and env can be used",
        "stacks/x.yaml:7: endpoints.infer.workspace:"
        " cannot reference resources here; only var and env can be used",
    ]


def test_analysis_finds_refs_and_inputs() -> None:
    analysis = analyse(
        "{{ endpoints.infer.id }}{{ var.env }}{{ env.HOME }}{% for x in models.m.tags %}{% endfor %}"
    )
    assert analysis.refs == ("endpoints.infer", "models.m")
    assert analysis.inputs == ("env.HOME", "var.env")
    assert analysis.deferred and analysis.problem is None
    assert analyse("{{ var | tojson }}").inputs == ("var",)
    assert not analyse("{% set endpoints = 1 %}{{ endpoints }}").deferred
