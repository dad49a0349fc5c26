"""The Fabric emulator answers only fields the official SDKs' response models document."""

from __future__ import annotations

import warnings
from typing import Any

from starlette.exceptions import StarletteDeprecationWarning

from reconciler.emulators import EmulatorConfig, build_app
from tests.documented.fabric import ROUTES, route_model, router, shape_of
from tests.documented.shapes import extras

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TOKEN = "test-token"
MU = "mu.llama3.8b"


def test_every_route_model_exists_in_the_sdk() -> None:
    for _, _, name in ROUTES:
        shape_of(name)
    assert route_model("GET", "/v1/workspaces/w/services/instances") == "ListServicesInstancesResponse"


def test_sdk_shapes_leave_out_what_the_sdk_does_not_answer() -> None:
    endpoint = shape_of("ShowEndpointResponse")
    assert isinstance(endpoint, dict) and "public_access" not in endpoint and "x_request_id" not in endpoint
    brief = shape_of("ServiceInstanceBriefInfo")
    assert isinstance(brief, dict) and "config" not in brief and "url" not in brief


def test_main_routes_answer_only_documented_fields() -> None:
    config = EmulatorConfig(fabric_token=TOKEN, provision_seconds=0, clock=lambda: 1_700_000_000.0)
    found: list[str] = []
    with TestClient(build_app(config), headers={"X-Auth-Token": TOKEN}) as client:

        def call(method: str, path: str, body: Any = None) -> Any:
            response = client.request(method, path, json=body)
            assert response.status_code < 400, (method, path, response.text)
            if not response.content:
                return None
            value = response.json()
            shape = router(method, path, response.status_code)
            assert shape is not True and shape is not None, (method, path)
            found.extend(f"{method} {path}: {p}" for p in extras(value, shape))
            return value

        ws = call("POST", "/v1/workspaces", {"name": "ws", "description": "d"})["id"]
        call("GET", "/v1/workspaces")
        call("PUT", f"/v1/workspaces/{ws}", {"description": "e"})
        base = f"/v1/workspaces/{ws}"
        reserved = {"mu": {"spec_code": MU, "min": 0, "max": 4}}
        ep = call(
            "POST",
            f"{base}/endpoints",
            {"name": "ep", "type": "inference", "reserved_resource": reserved, "public_access": True},
        )["id"]
        call("GET", f"{base}/endpoints")
        call("GET", f"{base}/endpoints/{ep}")
        call("PUT", f"{base}/endpoints/{ep}", {"description": "new"})
        llm = {"llm_model_config": {"base_model_type": "llama3-8b", "model_path": "obs://b/m"}}
        created = call(
            "POST",
            f"{base}/models",
            {"name": "m", "type": "LLM_MODEL", "version": {"name": "v1", "config": llm}},
        )
        call("GET", f"{base}/models")
        call("PUT", f"{base}/models/{created['id']}", {"description": "new"})
        call("GET", f"{base}/models/{created['id']}/versions")
        resource = {"spec_code": MU, "min": 1, "max": 2}
        instance = call(
            "POST",
            f"{base}/services/instances",
            {
                "source": {"id": created["id"], "version_id": created["version_id"]},
                "name": "svc",
                "endpoint_id": ep,
                "config": {"model_instance_config": {"resource": resource}},
            },
        )["id"]
        call("GET", f"{base}/services/instances")
        call("GET", f"{base}/services/instances/{instance}")
        call("PUT", f"{base}/services/instances/{instance}", {"description": "new"})
    assert found == [], "\n".join(found)
