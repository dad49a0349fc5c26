"""Field validation: each rule's message, path and line."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from reconciler.stack.models import StackFile

Problems = Callable[..., list[str]]

ENDPOINT = """\
stack: t
workspaces:
  main: {name: main}
endpoints:
  infer:
    workspace: main
    name: infer
    type: inference
"""


def test_unknown_field_with_did_you_mean(problems: Problems) -> None:
    text = ENDPOINT + "    reserverd_resource: {mu: {spec_code: a, min: 0, max: 1}}\n"
    assert problems(text) == [
        "stacks/x.yaml:9: endpoints.infer.reserverd_resource: unknown field;"
        " did you mean 'reserved_resource'?"
        " allowed: platform, workspace, name, description, type, reserved_resource,"
        " public_access, custom_image_id, lifecycle, depends_on"
    ]


def test_unknown_field_without_a_close_match(problems: Problems) -> None:
    assert problems("stack: t\nzzz: 1\n") == [
        "stacks/x.yaml:2: zzz: unknown field; allowed: stack, providers, backend, variables, outputs, policy,"
        " workspaces, endpoints, models, deployments"
    ]


def test_unknown_top_level_section_suggests_the_right_one(problems: Problems) -> None:
    (issue,) = problems("stack: t\nendpoint: {}\n")
    assert issue.startswith("stacks/x.yaml:2: endpoint: unknown field; did you mean 'endpoints'? allowed: ")


def test_missing_field_points_at_the_parent_key(problems: Problems) -> None:
    text = "stack: t\nworkspaces:\n  main:\n    description: d\n"
    assert problems(text) == ["stacks/x.yaml:3: workspaces.main.name: field required"]


def test_missing_stack_name(problems: Problems) -> None:
    assert problems("workspaces: {}\n") == ["stacks/x.yaml:1: stack: field required"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "    type: inferense",
            "type: 'inferense' is not allowed; did you mean 'inference'? allowed: inference,"
            " service, ray, job, ray_service, sql, container_job, notebook",
        ),
        (
            "    name: 'bad/name'",
            "name: 'bad/name' must be 1-64 characters: letters, digits, '-', '_', '.', space",
        ),
        (
            "    name: " + "n" * 65,
            f"name: '{'n' * 55}...' is 65 characters; must be 1-64 characters: letters, digits,"
            " '-', '_', '.', space",
        ),
        (
            "    name: 12",
            "name: must be a string (1-64 characters: letters, digits, '-', '_', '.', space), not a"
            " number (quote it)",
        ),
        (
            '    description: "it\'s <b>"',
            'description: "it\'s <b>" contains "\'"; must be at most 1024 characters, none of !<>=&\'"',
        ),
        ("    public_access: maybe", "public_access: must be true or false, not 'maybe'"),
        (
            "    custom_image_id: img_1",
            "custom_image_id: 'img_1' must be 1-36 characters: letters, digits, '-'",
        ),
        ("    platform: zstack", "platform: 'zstack' is not allowed; allowed: fabric"),
        ("    depends_on: endpoints.x", "depends_on: must be a list, not a string"),
        (
            "    depends_on: [infer]",
            "depends_on[0]: 'infer' must be an address like 'endpoints.infer' (<section>.<key>)",
        ),
        (
            "    lifecycle: {prevent_destroy: yes, ignore_changes: ['a b']}",
            "lifecycle.ignore_changes[0]: 'a b' must be a dotted attribute path like 'description'",
        ),
        (
            "    lifecycle: {prevent_destory: true}",
            "lifecycle.prevent_destory: unknown field; did you mean"
            " 'prevent_destroy'? allowed: prevent_destroy, ignore_changes, create_before_destroy",
        ),
        (
            "    reserved_resource: {mu: {spec_code: s, min: 3, max: 2}}",
            "reserved_resource.mu.max: must be >= min (3)",
        ),
        (
            "    reserved_resource: {mu: {spec_code: s, min: -1, max: 1001}}",
            "reserved_resource.mu.max: must be an integer from 1 to 1000, not 1001",
        ),
        (
            "    reserved_resource: {mu: {spec_code: s, min: true, max: 1}}",
            "reserved_resource.mu.min: must be an integer from 0 to 1000, not True",
        ),
        (
            "    reserved_resource: {apu: {spec_code: s, warm_up_num: 2, max_num: 1}}",
            "reserved_resource.apu.max_num: must be >= warm_up_num (2)",
        ),
        ("    reserved_resource: [mu]", "reserved_resource: must be a mapping, not a list"),
    ],
)
def test_endpoint_field_rules(problems: Problems, line: str, message: str) -> None:
    text = ENDPOINT.replace("    name: infer\n", "") if line.startswith("    name:") else ENDPOINT
    text = text.replace("    type: inference\n", "") if line.startswith("    type:") else text
    found = problems(text + line + "\n")
    assert found[0] == f"stacks/x.yaml:{text.count(chr(10)) + 1}: endpoints.infer.{message}"


def test_every_problem_is_reported_not_just_the_first(problems: Problems) -> None:
    text = (
        ENDPOINT + "    public_access: maybe\n    reserved_resource: {mu: {spec_code: s, min: -1, max: 0}}\n"
    )
    assert problems(text) == [
        "stacks/x.yaml:9: endpoints.infer.public_access: must be true or false, not 'maybe'",
        "stacks/x.yaml:10: endpoints.infer.reserved_resource.mu.max:"
        " must be an integer from 1 to 1000, not 0",
        "stacks/x.yaml:10: endpoints.infer.reserved_resource.mu.min:"
        " must be an integer from 0 to 1000, not -1",
    ]


def test_resource_keys_are_checked(problems: Problems) -> None:
    text = "stack: t\nworkspaces:\n  Main: {name: m}\n  9x: {name: n}\n"
    assert problems(text) == [
        "stacks/x.yaml:3: workspaces.Main: invalid key 'Main': must be 1-64 characters a-z, 0-9, '-', '_',"
        " starting with a letter",
        "stacks/x.yaml:4: workspaces.9x: invalid key '9x': must be 1-64 characters a-z, 0-9, '-', '_',"
        " starting with a letter",
    ]


def test_stack_name_rule(problems: Problems) -> None:
    assert problems("stack: my stack\n") == [
        "stacks/x.yaml:1: stack: 'my stack' must be 1-64 characters: letters, digits, '-', '_'"
    ]


def test_sections_must_be_mappings_and_may_be_empty(problems: Problems) -> None:
    assert problems("stack: t\nworkspaces:\nendpoints: [a]\n") == [
        "stacks/x.yaml:3: endpoints: must be a mapping, not a list"
    ]


DEPLOYMENT = """\
stack: t
deployments:
  chat:
"""


def test_deployment_platform_is_required(problems: Problems) -> None:
    assert problems(DEPLOYMENT + "    name: chat\n") == [
        "stacks/x.yaml:3: deployments.chat.platform: field required; one of: fabric, modelstudio, zstack"
    ]


def test_deployment_platform_must_be_known(problems: Problems) -> None:
    assert problems(DEPLOYMENT + "    platform: fabrik\n") == [
        "stacks/x.yaml:4: deployments.chat.platform: unknown platform 'fabrik'; did you mean 'fabric'?"
        " allowed: fabric, modelstudio, zstack"
    ]


def test_fabric_deployment_fields(problems: Problems) -> None:
    text = DEPLOYMENT + (
        "    platform: fabric\n    workspace: w\n    endpoint: e\n    model: m\n    name: chat\n"
        "    source: {id: x}\n"
        "    config: {model_instance_config: {resource: {spec_code: s, min: 3, max: 2}}}\n"
    )
    found = problems(text)
    assert (
        "stacks/x.yaml:9: deployments.chat.source: unknown field; allowed: platform, workspace, endpoint,"
        " model, name, description, config, health_check, lifecycle, depends_on" in found
    )
    assert (
        "stacks/x.yaml:10: deployments.chat.config.model_instance_config.resource.max: must be >= min (3)"
        in found
    )


def test_fabric_deployment_min_is_at_least_one(problems: Problems) -> None:
    text = DEPLOYMENT + (
        "    platform: fabric\n    workspace: w\n    endpoint: e\n    model: m\n    name: chat\n"
        "    config:\n      model_instance_config:\n        resource:\n          spec_code: s\n"
        "          min: 0\n          max: 2\n"
    )
    assert (
        "stacks/x.yaml:13: deployments.chat.config.model_instance_config.resource.min: must be an integer"
        " from 1 to 1000, not 0" in problems(text)
    )


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("fabric: {url: ftp://x}", "providers.fabric.url: 'ftp://x' must be 'embedded' or an http(s) URL"),
        ("fabric: {token: t}", "providers.fabric.url: field required"),
        ("fabric: {url: embedded, ak: a}", "providers.fabric: ak and sk go together: set both or neither"),
        (
            "fabric: {url: embedded, timeout: 0}",
            "providers.fabric.timeout: must be a number greater than 0, not 0",
        ),
        (
            "fabric: {url: embedded, max_in_flight: 1.5}",
            "providers.fabric.max_in_flight: must be an integer from 1 to 10000, not 1.5",
        ),
        (
            "fabric: {url: embedded, tokn: x}",
            "providers.fabric.tokn: unknown field; did you mean 'token'? allowed: url, ep_url, token, ak, sk,"
            " project_id, region, timeout, max_retries, max_requests_per_second, max_in_flight, wait_timeout,"
            " poll_interval, provision_seconds",
        ),
        (
            "modelstudio: {url: embedded, api_key: k, zone_uuid: z}",
            "providers.modelstudio.zone_uuid: unknown field; allowed: url, api_key, region, workspace,"
            " timeout, max_retries, max_requests_per_second, max_in_flight, wait_timeout, poll_interval,"
            " provision_seconds",
        ),
        (
            "zstak: {url: embedded}",
            "providers.zstak: unknown field; did you mean 'zstack'? allowed: fabric, modelstudio, zstack",
        ),
    ],
)
def test_provider_blocks(problems: Problems, block: str, message: str) -> None:
    assert problems(f"stack: t\nproviders:\n  {block}\n") == [f"stacks/x.yaml:3: {message}"]


def test_provider_blocks_are_typed(load: Callable[..., object]) -> None:
    stack = load(
        "stack: t\nproviders:\n"
        "  fabric: {url: 'https://fabric.cn-north-4.myhuaweicloud.com', ep_url: 'http://x:1', ak: a, sk: b,"
        " timeout: 5, max_in_flight: 8}\n"
        "  modelstudio: {url: embedded, api_key: k}\n"
        "  zstack: {url: 'http://z:8080', account: admin, password: p}\n"
    )
    assert stack.providers["fabric"]["timeout"] == 5.0  # type: ignore[attr-defined]
    assert stack.providers["zstack"] == {"url": "http://z:8080", "account": "admin", "password": "p"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("{local: {path: a}, postgres: {dsn: b}}", "backend: choose exactly one backend: local or postgres"),
        ("{}", "backend: choose exactly one backend: local or postgres"),
        ("{s3: {bucket: b}}", "backend.s3: unknown field; allowed: local, postgres"),
        ("{postgres: {schema: s}}", "backend.postgres.dsn: field required"),
    ],
)
def test_backend(problems: Problems, block: str, message: str) -> None:
    assert problems(f"stack: t\nbackend: {block}\n") == [f"stacks/x.yaml:2: {message}"]


def test_backend_postgres_keeps_its_yaml_names(load: Callable[..., object]) -> None:
    stack = load("stack: t\nbackend: {postgres: {dsn: 'postgresql://h/db', schema: rec}}\n")
    assert stack.backend == {"postgres": {"dsn": "postgresql://h/db", "schema": "rec"}}  # type: ignore[attr-defined]


def test_variable_and_output_names(problems: Problems) -> None:
    assert problems("stack: t\nvariables: {my-var: 1}\noutputs: {2x: a}\n") == [
        "stacks/x.yaml:2: variables.my-var: 'my-var' must be 1-64 characters:"
        " letters, digits, '_', not starting"
        " with a digit",
        "stacks/x.yaml:3: outputs.2x: '2x' must be 1-64 characters:"
        " letters, digits, '_', not starting with a digit",
    ]


def test_policy_is_a_mapping_of_rules(problems: Problems, load: Callable[..., object]) -> None:
    loaded = load("stack: t\npolicy: {rules: {keep: {deny: [delete], addresses: ['endpoints.*']}}}\n")
    assert loaded.policy == {"rules": {"keep": {"deny": ["delete"], "addresses": ["endpoints.*"]}}}  # type: ignore[attr-defined]
    assert problems("stack: t\npolicy: [a]\n") == ["stacks/x.yaml:2: policy: must be a mapping, not a list"]
    assert problems("stack: t\npolicy: {deny_destroy: [endpoints]}\n") == [
        "stacks/x.yaml:2: policy.deny_destroy: unknown field; allowed: rules"
    ]


def test_json_schema_can_be_generated() -> None:
    schema = StackFile.model_json_schema()
    json.dumps(schema)
    assert schema["required"] == ["stack"]
    assert schema["additionalProperties"] is False
