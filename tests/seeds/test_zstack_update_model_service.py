"""Seed 003 (ZStack: UpdateModelService), typed in: its curl example over HTTP, and as a stack (CLI).

The page's request: ``PUT http://{host}/zstack/v1/ai/model-services/{uuid}`` with
``Authorization: OAuth {sessionUuid}``, ``Content-Type: application/json;charset=UTF-8``
and a flat body of every field. It is sent to the ZStack emulator served on
127.0.0.1 as written: ``{host}``, ``{uuid}`` and ``{sessionUuid}`` filled in (a
logged-in session, a model service added first), the body's ``<...>`` placeholders
left as the page writes them, except ``<type>`` and ``<source>``, which must be one
of the values the emulator checks them against (as AddModelService does; the page
lists none): ``Endpoint`` (the page's own answer example) and ``HuggingFace``. The
answer is synchronous, ``{success, inventory}`` (the page's ``error`` is null on
success, and nulls are omitted), with only the inventory fields the page and the Go
SDK document.

Where the page and the Go SDK disagree the page is followed, and tested here: the body
is flat (the Go SDK wraps it in ``params`` or ``updateModelService``), ``servicePorts``
and ``architectureImages`` are lists of strings (Go: ``[]int``, ``[]interface{}``), and
the inventory may carry ``hasNewVersion`` and ``version`` (not in Go's view).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.emulators.store import Store
from reconciler.emulators.zstack import MODEL_CENTER_UUID, ZStackSettings, build_zstack_app
from tests.documented.shapes import extras
from tests.documented.zstack import update_model_service, view_shape
from tests.seeds.serving import served

SETTINGS = ZStackSettings(provision_seconds=0)
API = "/zstack/v1"
# the page's -d body, as written (one line on the page)
EXAMPLE = (
    '{"name":"<name>","description":"<description>","yaml":"<yaml>","requestCpu":1,"requestMemory":1,'
    '"gpuComputeCapability":"<gpuComputeCapability>","startCommand":"<startCommand>",'
    '"pythonVersion":"<pythonVersion>","type":"<type>","framework":"<framework>","source":"<source>",'
    '"architectureImages":["<architectureImages>"],"supportDistributed":true,"environmentParameters":{},'
    '"startupParameters":{},"inferenceParams":{},"serviceName":"<serviceName>",'
    '"servicePorts":["<servicePorts>"],"serviceLivez":"<serviceLivez>","serviceReadyz":"<serviceReadyz>",'
    '"serviceBootupTime":1,"serviceInstallPath":"<serviceInstallPath>",'
    '"serviceStartCommand":"<serviceStartCommand>","containerCommand":"<containerCommand>",'
    '"containerArgs":"<containerArgs>","vendorToSpecUuidsMap":{},"systemTags":["<systemTags>"],'
    '"userTags":["<userTags>"]}'
)
BODY = EXAMPLE.replace('"<type>"', '"Endpoint"').replace('"<source>"', '"HuggingFace"')
SHOWN = {  # what the inventory must now say, from the body
    "name": "<name>", "description": "<description>", "yaml": "<yaml>", "requestCpu": 1, "requestMemory": 1,
    "gpuComputeCapability": "<gpuComputeCapability>", "startCommand": "<startCommand>",
    "pythonVersion": "<pythonVersion>", "type": "Endpoint", "framework": "<framework>",
    "source": "HuggingFace", "supportDistributed": True, "containerCommand": "<containerCommand>",
    "containerArgs": "<containerArgs>", "vendorToSpecUuidsMap": {},
}  # fmt: skip


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The ZStack emulator served by uvicorn in a thread: ``http://127.0.0.1:PORT``."""
    with served(build_zstack_app(SETTINGS, Store())) as url:
        yield url


def session_of(http: httpx.Client) -> str:
    digest = hashlib.sha512(SETTINGS.password.encode()).hexdigest()
    body = {"logInByAccount": {"accountName": SETTINGS.account, "password": digest}}
    answer = http.put(f"{API}/accounts/login", json=body)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["inventory"]["uuid"])


def added_service(http: httpx.Client, session: str) -> str:
    params = {
        "name": "example", "yaml": "services: []", "modelCenterUuid": MODEL_CENTER_UUID, "requestCpu": 4,
        "requestMemory": 1024, "installPath": "/example/install/path", "startCommand": "python3 app.py",
    }  # fmt: skip
    auth = {"Authorization": f"OAuth {session}"}
    accepted = http.post(f"{API}/ai/model-services", json={"params": params}, headers=auth)
    assert accepted.status_code == 202, accepted.text
    job = httpx.URL(accepted.json()["location"]).path
    for _ in range(100):
        done = http.get(job)
        if done.status_code != 202:
            assert done.status_code == 200, done.text
            return str(done.json()["inventory"]["uuid"])
        time.sleep(0.02)
    raise AssertionError("AddModelService never finished")


def test_the_curl_example_works_as_written_and_answers_synchronously(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        session = session_of(http)
        uuid = added_service(http, session)
        headers = {"Authorization": f"OAuth {session}", "Content-Type": "application/json;charset=UTF-8"}
        answer = http.put(f"{API}/ai/model-services/{uuid}", headers=headers, content=BODY.encode())
        assert answer.status_code == 200, answer.text  # synchronous: no job location
        body = answer.json()
        assert body["success"] is True and "error" not in body and "location" not in body
        assert extras(body, update_model_service()) == []
        inventory = body["inventory"]
        assert {key: inventory.get(key) for key in SHOWN} == SHOWN
        assert inventory["uuid"] == uuid and inventory["modelCenterUuid"] == MODEL_CENTER_UUID
        assert inventory["installPath"] == "/example/install/path"  # not an UpdateModelService field
        taken_not_shown = ("environmentParameters", "servicePorts", "architectureImages", "serviceName")
        assert [key for key in (*taken_not_shown, "systemTags", "userTags") if key in inventory] == []
        shown = http.get(f"{API}/ai/model-services/{uuid}", headers=headers).json()["inventories"]
        assert [extras(item, view_shape("ModelServiceInventoryView")) for item in shown] == [[]]
        assert {key: shown[0].get(key) for key in SHOWN} == SHOWN


def test_the_page_over_the_go_sdk_where_they_disagree(base_url: str) -> None:
    """servicePorts as the page's strings (Go: []int) are taken; the body flat, not in Go's params."""
    sent = json.loads(BODY)
    assert sent["servicePorts"] == ["<servicePorts>"] and sent["architectureImages"] == [
        "<architectureImages>"
    ]
    assert "params" not in sent and "updateModelService" not in sent
    with httpx.Client(base_url=base_url, timeout=10) as http:
        session = session_of(http)
        uuid = added_service(http, session)
        headers = {"Authorization": f"OAuth {session}"}
        ports = http.put(
            f"{API}/ai/model-services/{uuid}", headers=headers, json={"servicePorts": [8000, "8001"]}
        )
        assert ports.status_code == 200, ports.text
        bad = http.put(f"{API}/ai/model-services/{uuid}", headers=headers, json={"servicePorts": "8000"})
        assert bad.status_code == 503 and bad.json()["success"] is False
        assert bad.json()["error"]["code"] == "SYS.1007" and "servicePorts" in bad.json()["error"]["details"]


STACK = """\
stack: seed003
providers:
  zstack: {{url: embedded, provision_seconds: 0}}
models:
  svc:
    platform: zstack
    name: {name}
    description: {description}
    yaml: "{yaml}"
    requestCpu: {cpu}
    requestMemory: {memory}
    installPath: /example/install/path
    startCommand: python3 app.py
    pythonVersion: 3.8.10
    gpuComputeCapability: "3.7"
    supportDistributed: true
"""
BEFORE = {"name": "example", "description": "Example description", "yaml": "services: []", "cpu": 1,
          "memory": 1024}  # fmt: skip
AFTER = {"name": "example-v2", "description": "served by vLLM", "yaml": "services: [vllm]", "cpu": 2,
         "memory": 2048}  # fmt: skip


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def test_a_stack_changing_the_page_fields_updates_in_place_then_plans_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the state (and the embedded cloud) go under tmp_path/state
    stack = tmp_path / "seed003.yaml"
    stack.write_text(STACK.format(**BEFORE))
    code, out = run(["apply", str(stack), "--auto-approve"])
    assert code == 0, out
    assert "Apply complete! Resources: 1 created, 0 updated, 0 destroyed." in out
    stack.write_text(STACK.format(**AFTER))  # name, description, yaml, requestCpu, requestMemory
    code, out = run(["plan", str(stack), "--detailed-exitcode"])
    assert code == 2, out
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in out
    assert '~ description: "Example description" -> "served by vLLM"' in out
    code, out = run(["apply", str(stack), "--auto-approve"])
    assert code == 0, out
    assert "Apply complete! Resources: 0 created, 1 updated, 0 destroyed." in out
    code, out = run(["plan", str(stack), "--detailed-exitcode"])
    assert code == 0, out
    assert "No changes." in out
    cloud = json.loads((tmp_path / "state" / "emulator" / "zstack.json").read_text())
    assert "served by vLLM" in json.dumps(cloud)
