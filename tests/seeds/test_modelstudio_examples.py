"""Seed 002 (Alibaba Cloud Model Studio: Create deployment): its three curl examples, typed in.

The page shows three requests to ``POST https://dashscope-intl.aliyuncs.com/api/v1/deployments``:
provisioned throughput (``plan: ptu``), model unit (``plan: mu``) and token usage (``plan: lora``,
a fine-tuned model). Each is sent as written, same path, same headers, same body byte for byte
(the PTU body's tab included), to the emulator served on 127.0.0.1; ``$DASHSCOPE_API_KEY`` is the
emulator's key. Each answer must be the page's documented shape. Then each example, as a stack,
goes through the CLI: apply, and a plan that has nothing to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.emulators.modelstudio import ModelStudioSettings, build_modelstudio_app
from tests.documented.modelstudio import COMMON, deployment_shape, router, wrong_types
from tests.documented.shapes import extras
from tests.seeds.serving import served

SETTINGS = ModelStudioSettings(provision_seconds=0)
DASHSCOPE_API_KEY = SETTINGS.api_key
PATH = "/api/v1/deployments"
HEADERS = {"Authorization": f"Bearer {DASHSCOPE_API_KEY}", "Content-Type": "application/json"}

# "Provisioned Throughput (PTU)"
PTU = """{
    "name": "my_qwen_flash",
    "model_name": "qwen-flash-2025-07-28",
    "plan": "ptu",
    "ptu_capacity": {
        "input_tpm": 10000,
\t"output_tpm": 1000
    }
}"""
# "Model unit"
MU = """{
    "name": "my_qwen_plus",
    "model_name": "qwen-plus-2025-12-01",
    "plan": "mu",
    "deploy_spec": "MU1",
    "enable_thinking": true,
    "capacity": 4,
    "max_context_length": 10000,
    "rpm_limit": 500,
    "tpm_limit": 1000
}"""
# "Token usage" ("The capacity parameter is required but currently has no effect.")
LORA = """{
    "model_name": "qwen3-8b-ft-202511132025-0260",
    "plan": "lora",
    "capacity": 1,
    "name": "qwen3-8b-ft"
}"""
EXAMPLES = {"ptu": PTU, "mu": MU, "lora": LORA}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The Model Studio emulator served by uvicorn in a thread: ``http://127.0.0.1:PORT``."""
    with served(build_modelstudio_app(SETTINGS)) as url:
        yield url


def documented(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    """The answer's ``output``, after checking it has exactly the documented fields and types."""
    assert response.status_code == 200, response.text
    body = response.json()
    shape = router(method, path, response.status_code)
    assert isinstance(shape, dict)
    assert set(body) == set(shape) and extras(body, shape) == []
    output: dict[str, Any] = body["output"]
    assert wrong_types(output) == []
    return output


@pytest.mark.parametrize("plan", list(EXAMPLES))
def test_each_curl_example_works_as_written_and_answers_the_documented_shape(
    base_url: str, plan: str
) -> None:
    sent = json.loads(EXAMPLES[plan])
    with httpx.Client(base_url=base_url, timeout=10) as http:
        created = documented("POST", PATH, http.post(PATH, headers=HEADERS, content=EXAMPLES[plan].encode()))
        assert set(COMMON) <= set(created)  # every row the page returns for every deployment
        assert extras(created, deployment_shape(plan)) == []  # and nothing of the other plans
        assert "name" not in created  # a request parameter only
        assert (created["model_name"], created["plan"], created["status"]) == (
            sent["model_name"],
            plan,
            "PENDING",
        )
        assert created["deployed_model"].startswith(sent["model_name"] + "-")
        one = f"{PATH}/{created['deployed_model']}"
        shown = documented("GET", one, http.get(one, headers=HEADERS))
        listed = documented("GET", PATH, http.get(PATH, headers=HEADERS))
        assert shown["deployed_model"] in [d["deployed_model"] for d in listed["deployments"]]
        assert documented("DELETE", one, http.delete(one, headers=HEADERS)) == {"status": "DELETING"}
    assert shown["status"] == "RUNNING" and shown["ready_capacity"] == shown["capacity"]
    if plan == "ptu":
        assert shown["ptu_capacity"] == {"input_tpm": 10000, "output_tpm": 1000, "thinking_output_tpm": 0}
    if plan == "mu":
        expected = {"model_unit_spec": "MU1", "enable_thinking": True, "capacity": 4, "base_capacity": 4,
                    "max_context_length": 10000, "rpm_limit": "500", "tpm_limit": 1000}  # fmt: skip
        assert {key: shown[key] for key in expected} == expected  # rpm_limit: a String, as documented
        assert shown["charge_type"] == "post_paid"  # the example sends no billing_method
    if plan == "lora":
        assert (shown["base_model"], shown["capacity"]) == ("qwen3-8b", 1)


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize("plan", list(EXAMPLES))
def test_each_example_as_a_stack_applies_and_then_plans_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    monkeypatch.chdir(tmp_path)  # the state (and the embedded cloud) go under tmp_path/state
    deployment = {"platform": "modelstudio", **json.loads(EXAMPLES[plan])}
    stack = {
        "stack": f"seed002-{plan}",
        "providers": {
            "modelstudio": {"url": "embedded", "api_key": DASHSCOPE_API_KEY, "provision_seconds": 0}
        },
        "deployments": {"example": deployment},
    }
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    code, out = run(["apply", str(path), "--auto-approve"])
    assert code == 0, out
    assert "Apply complete! Resources: 1 created, 0 updated, 0 destroyed." in out
    code, out = run(["plan", str(path), "--detailed-exitcode"])
    assert code == 0, out
    assert "No changes." in out
