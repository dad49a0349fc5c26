"""The Fabric emulator answers only error codes the platform documents (``fabric_errors``)."""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from reconciler.emulators import EmulatorConfig, build_app, fabric_errors
from reconciler.emulators.fabric_errors import (
    BAD_REQUEST,
    BAD_TOKEN,
    DOCUMENTED,
    NO_RESOURCES_FOUND,
    WORKSPACE_NOT_EXIST,
    UndocumentedCode,
    fabric_error,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TOKEN = "test-token"
EMULATORS = Path(fabric_errors.__file__).parent
CODE = re.compile(r"\b(?:dataartsfabric\.\d{8}|common\.\d{8}|APIG\.\d{4})\b")
#: every module a Fabric answer is built in (the table itself aside)
ANSWERING = sorted(
    {p for p in EMULATORS.glob("fabric*.py") if p.name != "fabric_errors.py"}
    | {EMULATORS / name for name in ("envelope.py", "app.py", "faults.py")}
)


def _code_literals(path: Path) -> set[str]:
    """Codes in the module's string literals (f-string parts included), docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return {
        code
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        for code in CODE.findall(node.value)
    }


def test_the_scan_sees_the_modules_and_their_codes() -> None:
    names = {p.name for p in ANSWERING}
    assert {"fabric_cloud.py", "fabric_auth.py", "fabric_control.py", "fabric_serving.py"} <= names
    assert "common.01000001" in _code_literals(EMULATORS / "envelope.py")  # the scan finds literals at all


@pytest.mark.parametrize("path", ANSWERING, ids=lambda p: p.name)
def test_every_code_the_emulator_source_can_answer_is_documented(path: Path) -> None:
    undocumented = _code_literals(path) - set(DOCUMENTED)
    assert not undocumented, f"{path.name} answers codes no page documents: {sorted(undocumented)}"


def test_the_table_holds_well_formed_entries() -> None:
    for code, (status, message) in DOCUMENTED.items():
        assert CODE.fullmatch(code), code
        assert 400 <= status < 600 and message, code
    with pytest.raises(TypeError):
        DOCUMENTED["dataartsfabric.00010002"] = (400, "invented")  # type: ignore[index]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("dataartsfabric.00010002", None),  # the old "name taken": in no row of the table
        ("dataartsfabric.00010020", None),  # the old "busy"
        ("dataartsfabric.00010040", None),  # the old "provisioning failed"
        ("APIG.1002", 404),  # a documented code under a status it is not documented with
    ],
)
def test_an_undocumented_code_cannot_be_built(code: str, status: int | None) -> None:
    with pytest.raises(UndocumentedCode):
        fabric_error(code, status=status)


def test_a_built_error_carries_the_documented_status_and_message() -> None:
    error = fabric_error(WORKSPACE_NOT_EXIST, solution="Create a workspace first.")
    assert (error.status_code, error.error_code, error.error_msg) == (
        400,
        WORKSPACE_NOT_EXIST,
        "Workspace not exist.",
    )
    not_found = fabric_error(BAD_REQUEST, status=404)
    assert (not_found.status_code, not_found.error_msg) == (404, "response status exception, code: 404")


# ---------------------------------------------------------------- real routes


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = EmulatorConfig(fabric_token=TOKEN, provision_seconds=0, clock=lambda: 1_700_000_000.0)
    with TestClient(build_app(config), headers={"X-Auth-Token": TOKEN}) as test_client:
        yield test_client


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error_code", "error_msg", "solution_msg"}, body
    assert body["error_code"] in DOCUMENTED
    return response.status_code, body["error_code"], body["error_msg"]


def test_an_unknown_workspace_answers_the_documented_not_exist(client: TestClient) -> None:
    for response in (
        client.get("/v1/workspaces/no-such-workspace/endpoints"),
        client.delete("/v1/workspaces/no-such-workspace"),
    ):
        assert _error(response) == (400, WORKSPACE_NOT_EXIST, "Workspace not exist.")


def test_a_wrong_or_missing_token_answers_apig_1002(client: TestClient) -> None:
    documented = (401, BAD_TOKEN, "Incorrect token or token resolution failed")
    assert _error(client.get("/v1/workspaces", headers={"X-Auth-Token": "wrong"})) == documented
    client.headers.pop("X-Auth-Token")
    assert _error(client.get("/v1/workspaces")) == documented


def test_an_unknown_id_answers_the_documented_404(client: TestClient) -> None:
    ws = client.post("/v1/workspaces", json={"name": "errs"}).json()["id"]
    status, code, message = _error(client.get(f"/v1/workspaces/{ws}/endpoints/no-such-endpoint"))
    assert (status, code, message) == (404, BAD_REQUEST, "response status exception, code: 404")


def test_a_body_id_that_names_nothing_answers_no_resources_found(client: TestClient) -> None:
    ws = client.post("/v1/workspaces", json={"name": "errs"}).json()["id"]
    model = {"current_version_id": "00000000-0000-0000-0000-000000000000"}
    version = {
        "name": "v1",
        "description": "",
        "config": {"llm_model_config": {"base_model_type": "", "model_path": ""}},
    }
    made = client.post(
        f"/v1/workspaces/{ws}/models", json={"name": "m1", "type": "LLM_MODEL", "version": version}
    )
    assert made.status_code < 300, made.text
    unknown = client.put(f"/v1/workspaces/{ws}/models/{made.json()['id']}", json=model)
    assert _error(unknown) == (400, NO_RESOURCES_FOUND, "No resources found.")


def test_rules_without_a_code_of_their_own_answer_the_generic_documented_400(client: TestClient) -> None:
    client.post("/v1/workspaces", json={"name": "twice"})
    status, code, message = _error(client.post("/v1/workspaces", json={"name": "twice"}))
    assert (status, code) == (400, BAD_REQUEST)
    assert message.startswith("failed to read http request, please check your input, code: 400, reason: ")
    assert "twice" in message
