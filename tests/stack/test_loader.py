"""Loading as a whole: the quickstart, cross-resource rules, cycles, the Stack value and its digest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.stack import load_stack
from reconciler.stack.spec import Deferred, Lifecycle, ResourceSpec, Stack

Problems = Callable[..., list[str]]
Load = Callable[..., Stack]

#: Lines 1-15: workspaces main and other, endpoint infer (mu.s, max 4) in main, model llama in main.
BASE = """\
stack: t
workspaces:
  main: {name: main}
  other: {name: other}
endpoints:
  infer:
    workspace: main
    name: infer
    type: inference
    reserved_resource: {mu: {spec_code: mu.s, min: 0, max: 4}}
models:
  llama:
    workspace: main
    name: llama
    version: {name: v1, config: {llm_model_config: {base_model_type: b, model_path: p}}}
deployments:
"""


def deployment(
    key: str, *, max: int = 1, extra: str = "", endpoint: str = "infer", spec: str = "mu.s"
) -> str:
    """Eight lines (plus ``extra`` lines before the last): a fabric deployment in workspace main."""
    return (
        f"  {key}:\n    platform: fabric\n    workspace: main\n    endpoint: {endpoint}\n    model: llama\n"
        f"    name: {key}\n{extra}"
        f"    config: {{model_instance_config: {{resource: {{spec_code: {spec}, min: 1, max: {max}}}}}}}\n"
    )


def test_quickstart_loads(load: Load, quickstart: str) -> None:
    stack = load(quickstart)
    assert stack.name == "quickstart"
    assert stack.file == "stacks/x.yaml"
    assert stack.providers == {"fabric": {"url": "embedded", "token": "emulator-token"}}
    assert stack.backend == {"local": {"path": "state/quickstart.json"}}
    assert stack.variables == {"env": "dev"}
    assert list(stack.resources) == ["workspaces.main", "endpoints.infer", "models.llama", "deployments.chat"]
    assert stack.resources["workspaces.main"] == ResourceSpec(
        address="workspaces.main",
        section="workspaces",
        key="main",
        platform="fabric",
        kind="workspace",
        attrs={"name": "ml-dev", "description": "inference workspace"},
        file="stacks/x.yaml",
        line=7,
    )
    chat = stack.resources["deployments.chat"]
    assert chat == ResourceSpec(
        address="deployments.chat",
        section="deployments",
        key="chat",
        platform="fabric",
        kind="service_instance",
        attrs={
            "name": "chat-dev",
            "description": "chat service",
            "config": {
                "model_instance_config": {"resource": {"spec_code": "mu.llama3.8b", "min": 1, "max": 2}}
            },
        },
        refs={"workspace": "workspaces.main", "endpoint": "endpoints.infer", "model": "models.llama"},
        depends_on=("endpoints.infer", "models.llama", "workspaces.main"),
        lifecycle=Lifecycle(),
        file="stacks/x.yaml",
        line=21,
    )
    assert stack.resources["endpoints.infer"].kind == "endpoint"
    assert stack.resources["models.llama"].kind == "model"
    assert stack.resources["models.llama"].attrs["version"] == {
        "name": "v1",
        "config": {
            "llm_model_config": {"base_model_type": "llama3-8b", "model_path": "obs://models/llama3-8b"}
        },
    }
    assert stack.outputs == {"chat_id": Deferred("{{ deployments.chat.id }}", ("deployments.chat",))}
    assert stack.env == {}
    assert len(stack.digest) == 64


def test_lifecycle_and_depends_on(load: Load) -> None:
    extra = (
        "    lifecycle: {prevent_destroy: true, ignore_changes: [description], create_before_destroy: true}\n"
        "    depends_on: [workspaces.other]\n"
    )
    stack = load(BASE + deployment("chat", extra=extra))
    chat = stack.resources["deployments.chat"]
    assert chat.lifecycle == Lifecycle(True, ("description",), True)
    assert chat.depends_on == ("endpoints.infer", "models.llama", "workspaces.main", "workspaces.other")
    assert "lifecycle" not in chat.attrs and "depends_on" not in chat.attrs and "platform" not in chat.attrs


def test_missing_structural_reference(problems: Problems) -> None:
    assert problems(BASE + deployment("chat", endpoint="infr")) == [
        "stacks/x.yaml:20: deployments.chat.endpoint: no endpoint 'infr' in endpoints; did you mean 'infer'?"
    ]


def test_missing_workspace_reference(problems: Problems) -> None:
    version = "{name: v1, config: {llm_model_config: {base_model_type: b, model_path: p}}}"
    text = f"stack: t\nmodels:\n  m: {{workspace: nope, name: m, version: {version}}}\n"
    assert problems(text) == ["stacks/x.yaml:3: models.m.workspace: no workspace 'nope' in workspaces"]


def test_depends_on_must_name_existing_addresses(problems: Problems) -> None:
    text = BASE + deployment("chat", extra="    depends_on: [endpoints.infer, models.lama]\n")
    assert problems(text) == [
        "stacks/x.yaml:23: deployments.chat.depends_on[1]: no resource 'models.lama';"
        " did you mean 'models.llama'?"
    ]


def test_cross_workspace_reference(problems: Problems) -> None:
    text = BASE.replace("    workspace: main\n    name: infer", "    workspace: other\n    name: infer")
    assert problems(text + deployment("chat")) == [
        "stacks/x.yaml:20: deployments.chat.endpoint: endpoint 'infer' is in workspace 'other', but this"
        " deployment is in workspace 'main'"
    ]


def test_deployment_above_the_endpoint_reservation(problems: Problems) -> None:
    assert problems(BASE + deployment("chat", max=5)) == [
        "stacks/x.yaml:23: deployments.chat.config.model_instance_config.resource.max:"
        " 5 is more than endpoint"
        " 'infer' reserves (reserved_resource.mu.max: 4)"
    ]


def test_deployments_together_above_the_endpoint_reservation(problems: Problems) -> None:
    text = BASE + deployment("a", max=2) + deployment("b", max=2) + deployment("c", max=1)
    assert problems(text) == [
        "stacks/x.yaml:10: endpoints.infer.reserved_resource.mu.max:"
        " the deployments on this endpoint can scale"
        " to 5 together (deployments.a max 2 + deployments.b max 2 + deployments.c max 1), more than its"
        " reserved maximum 4"
    ]


def test_deployments_that_fit_together_load(load: Load) -> None:
    assert len(load(BASE + deployment("a", max=2) + deployment("b", max=2)).resources) == 6


def test_spec_code_must_match_the_endpoint(problems: Problems) -> None:
    assert problems(BASE + deployment("chat", spec="mu.other")) == [
        "stacks/x.yaml:23: deployments.chat.config.model_instance_config.resource.spec_code:"
        " 'mu.other' does not"
        " match the spec_code reserved by endpoint 'infer' ('mu.s')"
    ]


def test_endpoint_without_mu_reservation(problems: Problems) -> None:
    text = BASE.replace("    reserved_resource: {mu: {spec_code: mu.s, min: 0, max: 4}}\n", "")
    assert problems(text + deployment("chat")) == [
        "stacks/x.yaml:19: deployments.chat.endpoint: endpoint 'infer' reserves no mu resources"
        " (reserved_resource.mu), which a fabric deployment needs"
    ]


def test_cycle_of_length_one(problems: Problems) -> None:
    text = BASE + deployment("a", extra="    description: '{{ deployments.a.name }}'\n")
    assert problems(text) == ["stacks/x.yaml:17: deployments.a: cycle: deployments.a -> deployments.a"]


def test_cycle_of_length_two(problems: Problems) -> None:
    text = (
        BASE
        + deployment("a", extra="    description: '{{ deployments.b.id }}'\n")
        + deployment("b", extra="    depends_on: [deployments.a]\n")
    )
    assert problems(text) == [
        "stacks/x.yaml:17: deployments.a: cycle: deployments.a -> deployments.b -> deployments.a"
    ]


def test_cycle_of_length_three_through_templates_and_structural_refs(problems: Problems) -> None:
    text = BASE.replace(
        "  main: {name: main}", "  main: {name: main, description: '{{ workspaces.other.id }}'}"
    )
    text = text.replace(
        "  other: {name: other}", "  other: {name: other, description: '{{ endpoints.infer.id }}'}"
    )
    assert problems(text) == [
        "stacks/x.yaml:3: workspaces.main: cycle: workspaces.main -> workspaces.other -> endpoints.infer"
        " -> workspaces.main"
    ]


def test_cycle_report_names_the_shortest_loop_and_the_other_members(problems: Problems) -> None:
    text = BASE.replace("  main: {name: main}", "  main: {name: main, description: '{{ deployments.c.id }}'}")
    assert problems(text + deployment("c")) == [
        "stacks/x.yaml:3: workspaces.main: cycle: workspaces.main -> deployments.c -> workspaces.main"
        " (and through endpoints.infer, models.llama)"
    ]


def test_cycle_of_length_three_is_reported_once(problems: Problems) -> None:
    text = (
        BASE
        + deployment("a", extra="    depends_on: [deployments.b]\n")
        + deployment("b", extra="    depends_on: [deployments.c]\n")
        + deployment("c", extra="    depends_on: [deployments.a]\n", max=2)
    )
    assert problems(text) == [
        "stacks/x.yaml:17: deployments.a: cycle:"
        " deployments.a -> deployments.b -> deployments.c -> deployments.a"
    ]


def test_independent_cycles_are_each_reported(problems: Problems) -> None:
    text = (
        BASE
        + deployment("a", extra="    depends_on: [deployments.b]\n")
        + deployment("b", extra="    depends_on: [deployments.a, deployments.b]\n")
    )
    assert problems(text) == [
        "stacks/x.yaml:17: deployments.a: cycle: deployments.a -> deployments.b -> deployments.a",
        "stacks/x.yaml:25: deployments.b: cycle: deployments.b -> deployments.b",
    ]


def test_all_kinds_of_problems_are_collected(problems: Problems) -> None:
    text = (
        BASE.replace("type: inference", "type: inferense")
        + deployment("a", endpoint="nope")
        + deployment("b", extra="    description: '{{ var.missing }}'\n")
    )
    found = problems(text)
    assert [line.split(": ", 2)[1] for line in found] == [
        "endpoints.infer.type",
        "deployments.a.endpoint",
        "deployments.b.description",
    ]


def test_digest_is_stable_and_follows_changes(write: Callable[..., str], quickstart: str) -> None:
    path = write(quickstart)
    first = load_stack(path, env={}).digest
    assert load_stack(path, env={"OTHER": "x"}).digest == first
    assert load_stack(path, env={"FABRIC_TOKEN": "secret"}).digest == first  # provider blocks are not in it
    write(quickstart + "\n# a comment\n")
    assert load_stack(path, env={}).digest == first
    write(quickstart.replace("min: 1, max: 2", "min: 1, max: 3"))
    assert load_stack(path, env={}).digest != first
    write(quickstart)
    assert load_stack(path, env={}, variables={"env": "prod"}).digest != first


def test_digest_follows_variables_read_only_by_deferred_values(
    write: Callable[..., str], quickstart: str
) -> None:
    path = write(
        quickstart.replace(
            'chat_id: "{{ deployments.chat.id }}"', 'chat_id: "{{ deployments.chat.id }}-{{ var.env }}"'
        )
    )
    assert load_stack(path, env={}).digest != load_stack(path, env={}, variables={"env": "prod"}).digest


def test_path_objects_and_var_files_as_paths(
    tmp_path: Path, write: Callable[..., str], quickstart: str
) -> None:
    write(quickstart)
    (tmp_path / "prod.yaml").write_text("env: prod\n")
    stack = load_stack(tmp_path / "stacks" / "x.yaml", var_files=[tmp_path / "prod.yaml"], env={})
    assert stack.file == str(tmp_path / "stacks" / "x.yaml")
    assert stack.resources["deployments.chat"].attrs["name"] == "chat-prod"


def test_large_stack_loads(load: Load) -> None:
    text = "stack: big\nworkspaces:\n" + "".join(
        f"  w{i}: {{name: 'w{i}-{{{{ var.x }}}}'}}\n" for i in range(500)
    )
    stack = load(text.replace("stack: big\n", "stack: big\nvariables: {x: y}\n"))
    assert len(stack.resources) == 500
