"""The ZStack emulator answers only fields the Go SDK's views and seed 003 document.

And the provider, run through the answers cut down to those shapes, converges:
apply then plan is a no-op, with nothing cut (the emulator answers no more).
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import httpx
from starlette.exceptions import StarletteDeprecationWarning

from reconciler.applier import Applier
from reconciler.emulators.store import Store
from reconciler.emulators.zstack import MODEL_CENTER_UUID, ZONE_1_UUID, ZStackSettings, build_zstack_app
from reconciler.planner import build_plan
from reconciler.providers.zstack_session import password_digest
from reconciler.refresh import refresh
from reconciler.stack.loader import load_stack
from reconciler.state.document import StateDoc
from tests.documented.shapes import DocumentedTransport, extras
from tests.documented.zstack import (
    GO_VIEWS,
    PAGE_OVER_SDK,
    SEED_003_INVENTORY,
    JobNoting,
    ZStackRouter,
    go_view_shape,
    route,
    view_shape,
)
from tests.fakes import MemoryBackend
from tests.providers.test_zstack_provider import PASSWORD, FakeClock, provider_for

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)
    from starlette.testclient import TestClient

API = "/zstack/v1"
SERVICES = f"{API}/ai/model-services"
GROUPS = f"{SERVICES}/instances/groups"
QWEN = "1b7e4f9a2c3d4e5f8a9b0c1d2e3f4a5b"


def test_every_view_a_field_names_is_written_down_or_opaque() -> None:
    for name in GO_VIEWS:
        go_view_shape(name)  # raises on a view named but not written down
    assert route("PUT", f"{SERVICES}/{'a' * 32}") is not None


def test_every_route_the_emulator_serves_has_a_documented_answer() -> None:
    from reconciler.emulators import zstack

    for path, method, _ in zstack.ROUTES:
        concrete = zstack.PREFIX + path.replace("{uuid}", "a" * 32)
        assert route(method, concrete) is not None, (method, path)


def test_the_group_view_has_none_of_the_deploy_inputs() -> None:
    group = view_shape("ModelServiceInstanceGroupInventoryView")
    inputs = ("zoneUuid", "cpuNum", "memorySize", "environmentVariables", "startupParameters")
    assert [field for field in (*inputs, "modelServiceGroupUuids") if field in group] == []
    assert {"uuid", "name", "status", "modelServiceUuid", "instances", "lastOpDate"} <= set(group)
    leaked = {"uuid": "a" * 32, "zoneUuid": ZONE_1_UUID, "instances": [{"uuid": "b" * 32, "cpuNum": 2}]}
    assert extras(leaked, group) == ["zoneUuid", "instances[0].cpuNum"]


def test_where_seed_003_and_the_go_sdk_disagree_the_page_is_followed() -> None:
    """The page's inventory has hasNewVersion and version; its update answer success and error."""
    go = go_view_shape("ModelServiceInventoryView")
    assert sorted(set(SEED_003_INVENTORY) - set(go)) == ["hasNewVersion", "version"]
    assert sorted(set(go) - set(SEED_003_INVENTORY)) == []
    assert {"hasNewVersion", "version"} <= set(view_shape("ModelServiceInventoryView"))
    assert set(go_view_shape("UpdateModelServiceEventView")) == {"inventory"}
    found = route("PUT", f"{SERVICES}/{'a' * 32}")
    assert found is not None and isinstance(found[0], dict)
    assert set(found[0]) == {"success", "error", "inventory"}
    assert set(PAGE_OVER_SDK) == {"ModelServiceInventoryView", "UpdateModelServiceEventView"}


class Checked:
    """A client of the in-process emulator that checks every answer against its documented shape."""

    def __init__(self, client: TestClient, clock: FakeClock) -> None:
        self.client = client
        self.clock = clock
        self.router = ZStackRouter()
        self.found: list[str] = []
        self.headers: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None, status: int = 200, **params: Any) -> Any:
        response = self.client.request(method, path, json=body, params=params or None, headers=self.headers)
        assert response.status_code in (status, 202), (method, path, response.text)
        if response.status_code == 202:
            self.router.started(method, path, response.json()["location"])
            self._check(method, path, response)
            return self._job(response.json()["location"], status)
        self._check(method, path, response)
        return response.json() if response.content else None

    def _job(self, location: str, status: int) -> Any:
        path = httpx.URL(location).path
        for _ in range(50):
            response = self.client.get(path)
            if response.status_code != 202:
                assert response.status_code == status, response.text
                self._check("GET", path, response)
                return response.json() if response.content else None
            self.clock.now += 1
        raise AssertionError(f"job {location} never finished")

    def _check(self, method: str, path: str, response: httpx.Response) -> None:
        if not response.content:
            return
        shape = self.router(method, path, response.status_code)
        assert isinstance(shape, dict), (method, path, "no documented shape")
        self.found.extend(f"{method} {path}: {p}" for p in extras(response.json(), shape))


def test_every_route_answers_only_documented_fields() -> None:
    clock = FakeClock()
    settings = ZStackSettings(password=PASSWORD, provision_seconds=1, clock=clock)
    with TestClient(build_zstack_app(settings, Store(clock=clock))) as client:
        api = Checked(client, clock)
        login = {"logInByAccount": {"accountName": "admin", "password": password_digest(PASSWORD)}}
        session = api.call("PUT", f"{API}/accounts/login", login)["inventory"]["uuid"]
        api.headers = {"Authorization": f"OAuth {session}"}
        api.call("GET", f"{API}/zones")
        api.call("GET", f"{API}/zones/{ZONE_1_UUID}")
        api.call("GET", f"{API}/ai/model-centers", replyWithCount="true")
        api.call("GET", f"{API}/ai/models", count="true")
        params = {
            "name": "chat", "yaml": "model: qwen", "modelCenterUuid": MODEL_CENTER_UUID, "requestCpu": 4,
            "requestMemory": 8 * 1024**3, "installPath": "/opt/chat", "startCommand": "python serve.py",
            "modelUuids": [QWEN], "resourceUuid": "c" * 32,
        }  # fmt: skip
        service = api.call("POST", SERVICES, {"params": params})["inventory"]["uuid"]
        api.call("GET", SERVICES, replyWithCount="true")
        api.call("GET", f"{SERVICES}/{service}")
        api.call("PUT", f"{SERVICES}/{service}", {"description": "flat", "servicePorts": [8000]})
        api.call("PUT", f"{SERVICES}/{service}/actions", {"updateModelService": {"name": "renamed"}})
        refused = {"requestMemory": "lots"}  # answered {success: false, error}
        api.call("PUT", f"{SERVICES}/{service}", refused, status=503)
        deploy = {"name": "g", "type": "Container", "zoneUuid": ZONE_1_UUID, "modelUuid": QWEN, "cpuNum": 2}
        group = api.call("PUT", f"{SERVICES}/{service}/actions", {"params": deploy})["inventory"]["uuid"]
        clock.now += 5  # Running
        api.call("GET", GROUPS, replyWithCount="true")
        api.call("GET", f"{GROUPS}/{group}")
        update = {"description": "d", "environmentVariables": {"A": "1"}}
        api.call("PUT", f"{API}/model-service-instance-groups/{group}", {"params": update})
        clock.now += 5
        api.call("PUT", f"{GROUPS}/{group}/actions", {"updateModelServiceInstanceGroup": {"name": "g2"}})
        # still in use: the job fails with the error envelope
        api.call("DELETE", f"{SERVICES}/{service}", status=503, deleteMode="Permissive")
        api.call("DELETE", f"{GROUPS}/{group}")
        api.call("DELETE", f"{SERVICES}/{service}")
    assert api.found == [], "\n".join(api.found)


STACK = """\
stack: zs
providers:
  zstack: {url: http://zstack.test, account: admin, password: x}
backend: {local: {path: state/zs.json}}
models:
  svc:
    platform: zstack
    name: qwen-service
    description: qwen chat template
    yaml: "image: registry.local/vllm:latest"
    requestCpu: 4
    requestMemory: 17179869184
    installPath: /models/qwen
    startCommand: python -m vllm.entrypoints.openai.api_server
    modelCenterUuid: 5e2d9c0f7a8b4c3d9e1f0a2b3c4d5e6f
deployments:
  qwen:
    platform: zstack
    model_service: svc
    name: qwen-group
    type: Container
    modelUuid: 1b7e4f9a2c3d4e5f8a9b0c1d2e3f4a5b
    zoneUuid: 8f3c1a2b4d5e4f60a7b8c9d0e1f2a3b4
    cpuNum: 4
    memorySize: 17179869184
    environmentVariables: {MAX_MODEL_LEN: "8192"}
    startupParameters: {"--max-num-seqs": 64}
"""


def test_apply_then_plan_is_a_noop_through_the_documented_shapes(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = ZStackSettings(password=PASSWORD, provision_seconds=0, clock=clock)
    router = ZStackRouter()
    inner = httpx.ASGITransport(app=build_zstack_app(settings, Store(clock=clock)))
    transport = DocumentedTransport(JobNoting(inner, router), router)
    provider = provider_for(transport, clock=clock)
    first = tmp_path / "zs.yaml"
    first.write_text(STACK)
    changed = tmp_path / "zs2.yaml"
    changed.write_text(STACK.replace("description: qwen chat template", "description: served by vLLM"))
    backend = MemoryBackend()
    providers = {"zstack": provider}

    async def plan(path: Path) -> Any:
        stack = load_stack(path, env={})
        state = backend.read()
        return stack, build_plan(stack, state, await refresh(state, providers), providers)

    async def apply(path: Path) -> None:
        stack, planned = await plan(path)
        assert planned.has_changes
        state = backend.read() or StateDoc.new(stack.name)
        report = await Applier(planned, stack, providers, backend, state).run()
        assert report.ok, report

    async def main() -> tuple[Any, Any]:
        try:
            await apply(first)
            _, after_create = await plan(first)
            await apply(changed)  # UpdateModelService, as seed 003
            _, after_update = await plan(changed)
            return after_create, after_update
        finally:
            await provider.aclose()

    after_create, after_update = asyncio.run(main())
    assert not after_create.has_changes, [c.diff for c in after_create.changes]
    assert not after_update.has_changes, [c.diff for c in after_update.changes]
    recorded = backend.read()
    assert recorded is not None
    group = recorded.resources["deployments.qwen"].attributes
    assert group["zoneUuid"] == ZONE_1_UUID and group["cpuNum"] == 4  # input only: the values sent
    assert transport.pruned == []  # the emulator answers nothing outside the documented shapes
