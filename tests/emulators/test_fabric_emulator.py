"""The Fabric emulator against what a user of the real API would check.

Time never comes from the wall clock: every app gets a :class:`FakeClock`, and
transitions are driven by advancing it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from reconciler.emulators import EmulatorConfig, build_app
from reconciler.emulators.store import Store, StoreError

with warnings.catch_warnings():
    # starlette 1.x prefers the httpx2 package for its test client; plain httpx works the same.
    warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TOKEN = "test-token"
MU = "mu.llama3.8b"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(clock: FakeClock, provision_seconds: float = 0, data_file: Path | None = None) -> TestClient:
    config = EmulatorConfig(
        fabric_token=TOKEN, provision_seconds=provision_seconds, data_file=data_file, clock=clock
    )
    return TestClient(build_app(config), headers={"X-Auth-Token": TOKEN})


@pytest.fixture
def client(clock: FakeClock) -> Iterator[TestClient]:
    with make_client(clock) as test_client:
        yield test_client


@pytest.fixture
def slow(clock: FakeClock) -> Iterator[TestClient]:
    """Transitions take 10 seconds of fake time."""
    with make_client(clock, provision_seconds=10) as test_client:
        yield test_client


def assert_error(response: httpx.Response, status: int, code: str, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "error_msg", "solution_msg"}
    assert body["error_code"] == code
    for fragment in fragments:
        assert fragment in body["error_msg"], body["error_msg"]
    return dict(body)


def assert_bad_input(response: httpx.Response, *fragments: str) -> None:
    body = assert_error(response, 400, "common.01000001", *fragments)
    assert body["error_msg"].startswith("failed to read http request, please check your input, code: 400")


# ---------------------------------------------------------------- builders


def workspace(client: TestClient, name: str = "ws", **extra: Any) -> str:
    response = client.post("/v1/workspaces", json={"name": name, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def endpoint_body(name: str = "ep", low: int = 0, high: int = 4, **extra: Any) -> dict[str, Any]:
    reserved = {"mu": {"spec_code": MU, "min": low, "max": high}}
    return {"name": name, "type": "inference", "reserved_resource": reserved, **extra}


def endpoint(client: TestClient, ws: str, name: str = "ep", high: int = 4) -> str:
    response = client.post(f"/v1/workspaces/{ws}/endpoints", json=endpoint_body(name, high=high))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def version_body(name: str = "v1", path: str = "obs://bucket/llama3-8b") -> dict[str, Any]:
    config = {"llm_model_config": {"base_model_type": "llama3-8b", "model_path": path}}
    return {"name": name, "description": "first", "config": config}


def model(client: TestClient, ws: str, name: str = "llama") -> tuple[str, str]:
    body = {"name": name, "description": "d", "type": "LLM_MODEL", "version": version_body()}
    response = client.post(f"/v1/workspaces/{ws}/models", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"]), str(response.json()["version_id"])


def instance_body(ep: str, source: tuple[str, str], name: str = "svc", low: int = 1, high: int = 2) -> Any:
    return {
        "source": {"id": source[0], "version_id": source[1]},
        "name": name,
        "description": "serves llama",
        "endpoint_id": ep,
        "config": {"model_instance_config": {"resource": {"spec_code": MU, "min": low, "max": high}}},
    }


def deploy(
    client: TestClient, ws: str, ep: str, source: tuple[str, str], name: str = "svc", high: int = 2
) -> str:
    response = client.post(
        f"/v1/workspaces/{ws}/services/instances", json=instance_body(ep, source, name, 1, high)
    )
    assert response.status_code == 200, response.text  # the DeployServiceInstance page: 200
    return str(response.json()["id"])


@pytest.fixture
def stack(client: TestClient) -> dict[str, Any]:
    """A workspace with a RUNNING endpoint (reserved mu max 4) and a model."""
    ws = workspace(client)
    ep = endpoint(client, ws)
    assert client.get(f"/v1/workspaces/{ws}/endpoints/{ep}").json()["status"] == "RUNNING"
    return {"ws": ws, "ep": ep, "model": model(client, ws)}


def resource(**values: Any) -> dict[str, Any]:
    """An instance update body touching only ``config.model_instance_config.resource``."""
    return {"config": {"model_instance_config": {"resource": values}}}


def instances_url(ws: str, instance_id: str = "") -> str:
    return f"/v1/workspaces/{ws}/services/instances" + (f"/{instance_id}" if instance_id else "")


# ---------------------------------------------------------------- auth and routing


@pytest.mark.parametrize("headers", [{}, {"X-Auth-Token": "wrong"}, {"X-Auth-Token": ""}])
@pytest.mark.parametrize("path", ["/v1/workspaces", "/v1/specs", "/v1/workspaces/x/services/instances"])
def test_requests_without_the_right_token_are_refused(clock: FakeClock, headers: Any, path: str) -> None:
    with make_client(clock) as anonymous:
        anonymous.headers.pop("X-Auth-Token")
        response = anonymous.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIG.1002"
    assert response.json()["error_msg"] == "Incorrect token or token resolution failed"


def test_unknown_paths_and_methods_answer_the_fabric_envelope(client: TestClient) -> None:
    assert_error(client.get("/v2/nothing"), 404, "common.01000001", "response status exception, code: 404")
    ws = workspace(client)
    assert_error(client.get(f"/v1/workspaces/{ws}"), 405, "common.01000001", "code: 405")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "Malformed JSON"),
        (b"", "Required request body is missing"),
        (b"[1, 2]", "Type mismatch"),
    ],
)
def test_unreadable_bodies_answer_400_not_500(client: TestClient, content: bytes, fragment: str) -> None:
    assert_bad_input(client.post("/v1/workspaces", content=content), fragment)


JUNK_BODIES = [{}, {"name": 5}, {"name": "ok", "type": ["x"]}, {"config": "x", "source": 3}, {"version": []}]


@pytest.mark.parametrize("junk", JUNK_BODIES)
def test_junk_bodies_never_crash_any_writing_route(
    client: TestClient, stack: dict[str, Any], junk: Any
) -> None:
    ws, ep, (model_id, _) = stack["ws"], stack["ep"], stack["model"]
    svc = deploy(client, ws, ep, stack["model"])
    for method, path in [
        ("POST", "/v1/workspaces"),
        ("POST", f"/v1/workspaces/{ws}/endpoints"),
        ("PUT", f"/v1/workspaces/{ws}/endpoints/{ep}"),
        ("POST", f"/v1/workspaces/{ws}/models"),
        ("PUT", f"/v1/workspaces/{ws}/models/{model_id}"),
        ("POST", instances_url(ws)),
        ("PUT", instances_url(ws, svc)),
        ("POST", instances_url(ws, svc) + "/invocations"),
    ]:
        response = client.request(method, path, json=junk)
        assert response.status_code < 500, (method, path, response.text)
        if response.status_code >= 400:
            assert "error_code" in response.json()


# ---------------------------------------------------------------- workspaces


def test_workspace_create_answers_the_documented_object(client: TestClient) -> None:
    response = client.post(
        "/v1/workspaces", json={"name": "analytics", "description": "team", "enterprise_project_id": "ep-1"}
    )
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {
        "id", "name", "description", "create_time", "create_domain_name",
        "create_user_name", "metastore_id", "access_url", "enterprise_project_id",
    }  # fmt: skip
    assert (created["name"], created["description"], created["enterprise_project_id"]) == (
        "analytics", "team", "ep-1",
    )  # fmt: skip
    assert created["create_time"] == "2023-11-14T22:13:20.000Z"
    listed = client.get("/v1/workspaces", params={"id": created["id"]}).json()
    assert listed == {"total": 1, "workspaces": [created]}


def test_workspace_names_are_unique(client: TestClient) -> None:
    workspace(client, "one")
    assert_error(client.post("/v1/workspaces", json={"name": "one"}), 400, "common.01000001", "one")
    other = workspace(client, "two")
    response = client.put(f"/v1/workspaces/{other}", json={"name": "one"})
    assert_error(response, 400, "common.01000001")


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({}, ("name is required",)),
        ({"name": 7}, ("Type mismatch", "field: name", "string")),
        ({"name": "bad/name"}, ("name may contain only",)),
        ({"name": "x" * 65}, ("name must be 1-64",)),
        ({"name": "ok", "description": "a < b"}, ("description must not contain",)),
    ],
)
def test_workspace_create_validates_its_body(
    client: TestClient, body: Any, fragments: tuple[str, ...]
) -> None:
    assert_bad_input(client.post("/v1/workspaces", json=body), *fragments)


def test_workspace_list_filters_pages_and_keeps_creation_order(client: TestClient) -> None:
    names = [f"ws-{n}" for n in range(5)]
    for name in names:
        workspace(client, name, enterprise_project_id="blue" if name == "ws-3" else "0")
    page = client.get("/v1/workspaces", params={"offset": 1, "limit": 2}).json()
    assert page["total"] == 5
    assert [w["name"] for w in page["workspaces"]] == ["ws-1", "ws-2"]
    assert [w["name"] for w in client.get("/v1/workspaces").json()["workspaces"]] == names
    assert client.get("/v1/workspaces", params={"name": "ws-4"}).json()["total"] == 1
    by_project = client.get("/v1/workspaces", params={"enterprise_project_id": "blue"}).json()
    assert [w["name"] for w in by_project["workspaces"]] == ["ws-3"]
    assert client.get("/v1/workspaces", params={"name": "nope"}).json() == {"total": 0, "workspaces": []}


def test_default_limit_is_ten(client: TestClient) -> None:
    for n in range(12):
        workspace(client, f"w{n}")
    listed = client.get("/v1/workspaces").json()
    assert (listed["total"], len(listed["workspaces"])) == (12, 10)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"offset": -1}, "offset must be between 0"),
        ({"limit": 0}, "limit must be between 1 and 100"),
        ({"limit": 101}, "limit must be between 1 and 100"),
        ({"limit": "ten"}, "Type mismatch"),
    ],
)
def test_paging_parameters_are_checked_on_every_list(
    client: TestClient, stack: dict[str, Any], params: Any, fragment: str
) -> None:
    ws = stack["ws"]
    for path in ["/v1/workspaces", f"/v1/workspaces/{ws}/endpoints", f"/v1/workspaces/{ws}/models",
                 instances_url(ws), "/v1/specs"]:  # fmt: skip
        assert_bad_input(client.get(path, params=params), fragment)


def test_workspace_update_changes_the_given_fields(client: TestClient) -> None:
    ws = workspace(client, "before")
    response = client.put(f"/v1/workspaces/{ws}", json={"name": "after", "metastore_id": "meta-1"})
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["metastore_id"]) == ("after", "meta-1")
    assert client.get("/v1/workspaces", params={"id": ws}).json()["workspaces"][0]["name"] == "after"


def test_workspace_delete_and_unknown_workspace(client: TestClient) -> None:
    ws = workspace(client)
    assert client.delete(f"/v1/workspaces/{ws}").status_code == 204
    assert client.get("/v1/workspaces").json()["total"] == 0
    missing = ("Workspace not exist.",)
    assert_error(client.delete(f"/v1/workspaces/{ws}"), 400, "dataartsfabric.00010003", *missing)
    assert_error(client.put(f"/v1/workspaces/{ws}", json={"name": "x"}), 400, "dataartsfabric.00010003")
    for path in ["endpoints", "models", "services/instances", "endpoints/abc", "models/abc/versions"]:
        assert_error(client.get(f"/v1/workspaces/{ws}/{path}"), 400, "dataartsfabric.00010003", *missing)


def test_a_workspace_that_still_holds_objects_cannot_be_deleted(client: TestClient) -> None:
    ws = workspace(client)
    model(client, ws)
    body = assert_error(client.delete(f"/v1/workspaces/{ws}"), 400, "common.01000001", "not empty")
    assert "1 models" in body["solution_msg"]


# ---------------------------------------------------------------- endpoints


def test_endpoint_create_answers_creating_then_runs(client: TestClient) -> None:
    ws = workspace(client)
    response = client.post(f"/v1/workspaces/{ws}/endpoints", json=endpoint_body(description="main"))
    assert response.status_code == 201
    created = response.json()
    assert created["status"] == "CREATING"
    assert {"visibility", "id", "name", "type", "status", "description", "create_time", "update_time",
            "owner", "reserved_resource", "error_code", "error_msg", "urls"} <= set(created)  # fmt: skip
    assert set(created["owner"]) == {"domain_name", "domain_id", "user_name", "user_id"}
    assert created["reserved_resource"] == {"mu": {"spec_code": MU, "min": 0, "max": 4}}
    shown = client.get(f"/v1/workspaces/{ws}/endpoints/{created['id']}").json()
    assert shown["status"] == "RUNNING"
    assert client.get(f"/v1/workspaces/{ws}/endpoints").json()["endpoints"][0]["status"] == "RUNNING"


def test_endpoint_transitions_follow_the_clock(slow: TestClient, clock: FakeClock) -> None:
    ws = workspace(slow)
    ep = endpoint(slow, ws)
    url = f"/v1/workspaces/{ws}/endpoints/{ep}"
    clock.advance(9.9)
    assert slow.get(url).json()["status"] == "CREATING"
    assert_error(slow.put(url, json={"name": "x"}), 400, "common.01000001", "status: CREATING")
    clock.advance(0.1)
    assert slow.get(url).json()["status"] == "RUNNING"
    assert slow.put(url, json={"description": "new"}).json()["status"] == "UPDATING"
    clock.advance(5)
    assert slow.get(url).json()["status"] == "UPDATING"
    clock.advance(5)
    assert slow.get(url).json()["description"] == "new"
    assert slow.get(url).json()["status"] == "RUNNING"
    assert slow.delete(url).json() == {"id": ep}
    assert slow.get(url).json()["status"] == "DELETING"
    assert_error(slow.delete(url), 400, "common.01000001", "DELETING")
    clock.advance(10)
    assert_error(slow.get(url), 404, "common.01000001", "response status exception, code: 404")
    assert slow.get(f"/v1/workspaces/{ws}/endpoints").json() == {"total": 0, "endpoints": []}


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"name": "bad!name"}, ("name may contain only",)),
        ({"name": ""}, ("name must be 1-64",)),
        ({"description": "x" * 1025}, ("description must be 0-1024",)),
        ({"description": 'say "hi"'}, ("description must not contain",)),
        ({"type": None}, ("type is required",)),
        ({"type": "gpu"}, ("type must be one of",)),
        ({"reserved_resource": {"mu": {"spec_code": MU, "min": -1, "max": 4}}}, ("min must be between 0",)),
        ({"reserved_resource": {"mu": {"spec_code": MU, "min": 0, "max": 0}}}, ("max must be between 1",)),
        ({"reserved_resource": {"mu": {"spec_code": MU, "min": 0, "max": 1001}}}, ("1000",)),
        ({"reserved_resource": {"mu": {"spec_code": MU, "min": 5, "max": 4}}}, ("greater than or equal",)),
        ({"reserved_resource": {"mu": {"spec_code": MU, "min": "1", "max": 4}}}, ("Type mismatch", "mu.min")),
        ({"reserved_resource": {"mu": {"min": 1, "max": 4}}}, ("spec_code is required",)),
        ({"reserved_resource": {"apu": {"spec_code": "apu.standard", "warm_up_num": 3, "max_num": 2}}},
         ("max_num (2) must be greater than or equal",)),
        ({"public_access": "yes"}, ("Type mismatch", "public_access", "boolean")),
    ],
)  # fmt: skip
def test_endpoint_create_validates_its_body(
    client: TestClient, changes: Any, fragments: tuple[str, ...]
) -> None:
    ws = workspace(client)
    body = {key: value for key, value in {**endpoint_body(), **changes}.items() if value is not None}
    assert_bad_input(client.post(f"/v1/workspaces/{ws}/endpoints", json=body), *fragments)
    assert client.get(f"/v1/workspaces/{ws}/endpoints").json()["total"] == 0


def test_endpoint_accepts_apu_and_dpu_reservations(client: TestClient) -> None:
    ws = workspace(client)
    reserved = {"dpu": {"spec_code": "dpu.standard", "warm_up_num": 0, "max_num": 3}}
    body = {"name": "data", "type": "sql", "reserved_resource": reserved, "public_access": True}
    created = client.post(f"/v1/workspaces/{ws}/endpoints", json=body).json()
    assert created["reserved_resource"] == reserved
    assert created["urls"][0]["type"] == "PUBLIC"


def test_endpoint_names_are_unique_per_workspace(client: TestClient) -> None:
    first, second = workspace(client, "a"), workspace(client, "b")
    endpoint(client, first, "shared")
    endpoint(client, second, "shared")
    response = client.post(f"/v1/workspaces/{first}/endpoints", json=endpoint_body("shared"))
    assert_error(response, 400, "common.01000001", "shared")


def test_endpoint_update_rules(client: TestClient, stack: dict[str, Any]) -> None:
    url = f"/v1/workspaces/{stack['ws']}/endpoints/{stack['ep']}"
    assert_error(client.put(url, json={"type": "sql"}), 400, "common.01000001", "type")
    response = client.put(url, json={"type": "inference", "name": "renamed", "cap": {"id": "cap-1"}})
    assert (response.status_code, response.json()["status"]) == (200, "UPDATING")
    mu = {"spec_code": MU, "min": 1, "max": 8}
    client.put(url, json={"reserved_resource": {"mu": mu}})
    shown = client.get(url).json()
    assert (shown["name"], shown["cap"], shown["reserved_resource"]["mu"]) == ("renamed", {"id": "cap-1"}, mu)
    missing = f"/v1/workspaces/{stack['ws']}/endpoints/00000000-0000-0000-0000-000000000000"
    assert_error(client.put(missing, json={"name": "x"}), 404, "common.01000001")
    assert_error(client.delete(missing), 404, "common.01000001")


def test_endpoint_list_filters(client: TestClient, stack: dict[str, Any]) -> None:
    ws, ep, source = stack["ws"], stack["ep"], stack["model"]
    other = client.post(f"/v1/workspaces/{ws}/endpoints", json={"name": "jobs", "type": "job"}).json()["id"]
    deploy(client, ws, ep, source)
    url = f"/v1/workspaces/{ws}/endpoints"

    def names(**params: str) -> list[str]:
        return [e["name"] for e in client.get(url, params=params).json()["endpoints"]]

    assert names() == ["ep", "jobs"]
    assert names(type="job") == names(endpoint_id=other) == names(name="jobs") == ["jobs"]
    assert names(model_id=source[0]) == ["ep"]
    assert names(visibility="PRIVATE") == ["ep", "jobs"]
    assert names(visibility="PUBLIC") == []


def test_an_endpoint_with_instances_cannot_be_deleted_or_shrunk(
    client: TestClient, stack: dict[str, Any]
) -> None:
    ws, ep = stack["ws"], stack["ep"]
    svc = deploy(client, ws, ep, stack["model"], high=3)
    url = f"/v1/workspaces/{ws}/endpoints/{ep}"
    assert_error(client.delete(url), 400, "common.01000001", "svc")
    shrink = {"reserved_resource": {"mu": {"spec_code": MU, "min": 0, "max": 2}}}
    assert_error(client.put(url, json=shrink), 400, "common.01000001", "3", "2")
    assert client.delete(instances_url(ws, svc)).status_code == 204
    assert client.get(instances_url(ws)).json()["total"] == 0
    assert client.delete(url).status_code == 200


# ---------------------------------------------------------------- models


def test_model_create_and_read_through_the_list(client: TestClient) -> None:
    ws = workspace(client)
    model_id, version_id = model(client, ws)
    listed = client.get(f"/v1/workspaces/{ws}/models", params={"id": model_id}).json()
    assert listed["total"] == 1
    shown = listed["models"][0]
    assert (shown["name"], shown["type"], shown["visibility"]) == ("llama", "LLM_MODEL", "PRIVATE")
    assert shown["current_version"]["id"] == version_id
    assert shown["current_version"]["config"]["llm_model_config"]["model_path"] == "obs://bucket/llama3-8b"
    assert {"create_time", "update_time", "create_user", "update_user"} <= set(shown)
    assert "status" not in shown


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"name": "m", "type": "CV_MODEL", "version": version_body()}, ("type must be one of",)),
        ({"name": "m", "type": "LLM_MODEL"}, ("version is required",)),
        ({"name": "m", "type": "LLM_MODEL", "version": {"name": "v", "config": {}}},
         ("version.config.llm_model_config is required",)),
        ({"name": "m", "type": "LLM_MODEL", "version": {"name": "v", "config": {"llm_model_config": {
            "base_model_type": "llama3"}}}}, ("model_path is required",)),
    ],
)  # fmt: skip
def test_model_create_validates_its_body(client: TestClient, body: Any, fragments: tuple[str, ...]) -> None:
    ws = workspace(client)
    assert_bad_input(client.post(f"/v1/workspaces/{ws}/models", json=body), *fragments)


def test_model_versions_update_and_delete(client: TestClient) -> None:
    ws = workspace(client)
    model_id, first = model(client, ws)
    url = f"/v1/workspaces/{ws}/models/{model_id}"
    updated = client.put(url, json={"description": "v2 now", "version": version_body("v2", "obs://b/v2")})
    assert updated.status_code == 200
    second = updated.json()["current_version"]["id"]
    assert second != first
    assert updated.json()["description"] == "v2 now"
    versions = client.get(f"{url}/versions").json()
    assert (versions["total"], [v["name"] for v in versions["versions"]]) == (2, ["v1", "v2"])
    assert_error(client.delete(f"{url}/versions/{second}"), 400, "common.01000001", "current version")
    back = client.put(url, json={"current_version_id": first}).json()
    assert back["current_version"]["id"] == first
    assert client.delete(f"{url}/versions/{second}").status_code == 204
    assert client.get(f"{url}/versions").json()["total"] == 1
    assert_error(client.delete(f"{url}/versions/{second}"), 404, "common.01000001")
    unknown = client.put(url, json={"current_version_id": second})
    assert_error(unknown, 400, "dataartsfabric.00010009", "No resources found.")
    both = {"current_version_id": first, "version": version_body("v3")}
    assert_bad_input(client.put(url, json=both), "cannot be given together")


def test_model_delete(client: TestClient, stack: dict[str, Any]) -> None:
    ws, (model_id, version_id) = stack["ws"], stack["model"]
    url = f"/v1/workspaces/{ws}/models/{model_id}"
    svc = deploy(client, ws, stack["ep"], stack["model"])
    assert_error(client.delete(url), 400, "common.01000001", "svc")
    client.put(url, json={"version": version_body("v2")})
    assert_error(client.delete(f"{url}/versions/{version_id}"), 400, "common.01000001", "svc")
    client.delete(instances_url(ws, svc))
    assert client.delete(url).status_code == 204
    assert client.get(f"/v1/workspaces/{ws}/models").json() == {"total": 0, "models": []}
    assert_error(client.delete(url), 404, "common.01000001")
    assert_error(client.get(f"{url}/versions"), 404, "common.01000001")


def test_model_list_sorts_and_filters(client: TestClient, clock: FakeClock) -> None:
    ws = workspace(client)
    for name in ["beta", "alpha", "gamma"]:
        model(client, ws, name)
        clock.advance(1)
    url = f"/v1/workspaces/{ws}/models"

    def names(**params: str) -> list[str]:
        return [m["name"] for m in client.get(url, params=params).json()["models"]]

    # The SDK documents CREATE_TIME and DESC as the defaults, spelled in capitals.
    assert names() == ["gamma", "alpha", "beta"]
    assert names(sort_by="NAME", order_by="ASC") == ["alpha", "beta", "gamma"]
    assert names(sort_by="name") == ["gamma", "beta", "alpha"]
    assert names(sort_by="CREATE_TIME", order_by="asc") == ["beta", "alpha", "gamma"]
    assert names(name="alpha") == ["alpha"]
    assert names(type="LLM_MODEL", limit="1", offset="2") == ["beta"]
    assert_bad_input(client.get(url, params={"sort_by": "size"}), "sort_by must be one of")
    assert_bad_input(client.get(url, params={"order_by": "up"}), "order_by must be ASC or DESC")


# ---------------------------------------------------------------- service instances


def test_deploy_answers_an_id_and_the_instance_runs(slow: TestClient, clock: FakeClock) -> None:
    ws = workspace(slow)
    ep = endpoint(slow, ws)
    source = model(slow, ws)
    clock.advance(10)
    svc = deploy(slow, ws, ep, source)
    shown = slow.get(instances_url(ws, svc)).json()
    assert shown["status"] == "CREATING"
    assert set(shown) == {
        "visibility", "source", "id", "name", "description", "endpoint_id", "status", "create_time",
        "update_time", "duration", "create_user", "type", "update_user", "url", "config", "error_code",
        "error_msg",
    }  # fmt: skip
    assert shown["source"] == {"id": source[0], "version_id": source[1]}
    assert (shown["type"], shown["endpoint_id"], shown["duration"]) == ("LLM_MODEL", ep, 0)
    assert shown["config"]["model_instance_config"]["resource"] == {"spec_code": MU, "min": 1, "max": 2}
    assert shown["url"]["address"].endswith(f"/v1/workspaces/{ws}/services/instances/{svc}/invocations")
    clock.advance(10)
    assert slow.get(instances_url(ws, svc)).json()["status"] == "RUNNING"
    clock.advance(65)
    assert slow.get(instances_url(ws, svc)).json()["duration"] == 65


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (lambda b: b.update(name="x" * 65), ("name must be 1-64",)),
        (lambda b: b.update(name="semi;colon"), ("name may contain only",)),
        (lambda b: b.update(description="a=b"), ("description must not contain",)),
        (lambda b: b.update(endpoint_id="not_an_id!"), ("endpoint_id may contain only",)),
        (lambda b: b.update(endpoint_id="e" * 37), ("endpoint_id must be 1-36",)),
        (lambda b: b.pop("source"), ("source is required",)),
        (lambda b: b["config"]["model_instance_config"]["resource"].update(spec_code="s" * 65),
         ("spec_code must be 1-64",)),
        (lambda b: b["config"]["model_instance_config"]["resource"].update(min=0),
         ("min must be between 1",)),
        (lambda b: b["config"]["model_instance_config"]["resource"].update(max=1001), ("and 1000",)),
        (lambda b: b["config"]["model_instance_config"]["resource"].update(min=3, max=2),
         ("max (2) must be greater than or equal",)),
        (lambda b: b["config"]["model_instance_config"]["resource"].update(min="1"),
         ("Type mismatch", "resource.min", "integer")),
        (lambda b: b["config"]["model_instance_config"]["resource"].update(max=2.5), ("Type mismatch",)),
        (lambda b: b["config"]["model_instance_config"].pop("resource"), ("resource is required",)),
    ],
)  # fmt: skip
def test_deploy_validates_its_body(
    client: TestClient, stack: dict[str, Any], edit: Any, fragments: Any
) -> None:
    body = instance_body(stack["ep"], stack["model"])
    edit(body)
    assert_bad_input(client.post(instances_url(stack["ws"]), json=body), *fragments)
    assert client.get(instances_url(stack["ws"])).json()["total"] == 0


def test_deploy_references_must_exist(client: TestClient, stack: dict[str, Any]) -> None:
    ws, ep, (model_id, version_id) = stack["ws"], stack["ep"], stack["model"]
    absent = "00000000-0000-0000-0000-000000000000"
    for body in [
        instance_body(absent, (model_id, version_id)),
        instance_body(ep, (absent, version_id)),
        instance_body(ep, (model_id, absent)),
    ]:
        response = client.post(instances_url(ws), json=body)
        assert_error(response, 400, "dataartsfabric.00010009", "No resources found.")
        assert absent in response.json()["solution_msg"]
    foreign = endpoint(client, workspace(client, "other"))
    assert_error(client.post(instances_url(ws), json=instance_body(foreign, stack["model"])), 400,
                 "dataartsfabric.00010009")  # fmt: skip


def test_deploy_needs_a_running_endpoint(slow: TestClient, clock: FakeClock) -> None:
    ws = workspace(slow)
    ep = endpoint(slow, ws)
    body = instance_body(ep, model(slow, ws))
    assert_error(slow.post(instances_url(ws), json=body), 400, "common.01000001", "CREATING")
    clock.advance(10)
    assert slow.post(instances_url(ws), json=body).status_code == 200


def test_instances_must_fit_the_endpoint_reservation(client: TestClient, stack: dict[str, Any]) -> None:
    ws, ep, source = stack["ws"], stack["ep"], stack["model"]
    too_big = client.post(instances_url(ws), json=instance_body(ep, source, "big", 1, 5))
    assert_error(too_big, 400, "common.01000001", "max 5", "maximum 4")
    first = deploy(client, ws, ep, source, "first", high=3)
    crowded = client.post(instances_url(ws), json=instance_body(ep, source, "second", 1, 2))
    assert_error(crowded, 400, "common.01000001", "5 mu", "3 held by 1 other", "2 requested", "4")
    deploy(client, ws, ep, source, "second", high=1)
    grow = client.put(instances_url(ws, first), json=resource(max=4))
    assert_error(grow, 400, "common.01000001")
    assert client.delete(instances_url(ws, first)).status_code == 204
    deploy(client, ws, ep, source, "third", high=3)


def test_an_endpoint_without_mu_takes_no_instances(client: TestClient) -> None:
    ws = workspace(client)
    bare = client.post(f"/v1/workspaces/{ws}/endpoints", json={"name": "bare", "type": "inference"})
    ep = bare.json()["id"]
    response = client.post(instances_url(ws), json=instance_body(ep, model(client, ws)))
    assert_error(response, 400, "common.01000001", "reserves no mu")


def test_instance_list_filters(client: TestClient, stack: dict[str, Any]) -> None:
    ws, ep, source = stack["ws"], stack["ep"], stack["model"]
    first = deploy(client, ws, ep, source, "first", high=1)
    other_model = model(client, ws, "qwen")
    deploy(client, ws, ep, other_model, "second", high=1)

    def names(**params: str) -> list[str]:
        listed = client.get(instances_url(ws), params=params).json()
        assert listed["total"] == len(listed["service_instances"])
        return [i["name"] for i in listed["service_instances"]]

    assert names() == ["first", "second"]
    assert names(id=first) == names(name="first") == names(source_id=source[0]) == ["first"]
    assert names(version_id=other_model[1]) == ["second"]
    assert names(endpoint_id=ep, type="LLM_MODEL") == ["first", "second"]
    assert names(endpoint_id="nothing") == []


def test_instance_update_is_asynchronous(slow: TestClient, clock: FakeClock) -> None:
    ws = workspace(slow)
    ep = endpoint(slow, ws)
    source = model(slow, ws)
    clock.advance(10)
    svc = deploy(slow, ws, ep, source)
    url = instances_url(ws, svc)
    bigger = resource(max=3)
    assert_error(slow.put(url, json=bigger), 400, "common.01000001", "CREATING")
    clock.advance(10)
    response = slow.put(url, json={"name": "renamed", "description": "console edit", **bigger})
    assert response.json() == {"id": svc}
    shown = slow.get(url).json()
    assert (shown["status"], shown["name"], shown["description"]) == ("UPDATING", "renamed", "console edit")
    assert shown["config"]["model_instance_config"]["resource"]["max"] == 3
    clock.advance(10)
    assert slow.get(url).json()["status"] == "RUNNING"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (resource(min=2), "resource.min"),
        (resource(spec_code="mu.qwen2.7b"), "spec_code"),
        ({"source": {"version_id": "11111111-2222-3333-4444-555555555555"}}, "source.version_id"),
        ({"source": {"id": "11111111-2222-3333-4444-555555555555"}}, "source.id"),
    ],
)
def test_instance_min_spec_and_source_cannot_be_updated(
    client: TestClient, stack: dict[str, Any], change: Any, field: str
) -> None:
    svc = deploy(client, stack["ws"], stack["ep"], stack["model"])
    response = client.put(instances_url(stack["ws"], svc), json=change)
    assert_error(response, 400, "common.01000001", field)


def test_instance_update_accepts_unchanged_fixed_fields(client: TestClient, stack: dict[str, Any]) -> None:
    svc = deploy(client, stack["ws"], stack["ep"], stack["model"])
    body = instance_body(stack["ep"], stack["model"], "svc", 1, 3)
    assert client.put(instances_url(stack["ws"], svc), json=body).status_code == 200
    low = client.put(instances_url(stack["ws"], svc), json=resource(max=1))
    assert low.status_code == 200
    shown = client.get(instances_url(stack["ws"], svc)).json()
    assert shown["config"]["model_instance_config"]["resource"] == {"spec_code": MU, "min": 1, "max": 1}


def test_instance_delete_passes_through_deleting(slow: TestClient, clock: FakeClock) -> None:
    ws = workspace(slow)
    ep = endpoint(slow, ws)
    source = model(slow, ws)
    clock.advance(10)
    url = instances_url(ws, deploy(slow, ws, ep, source))
    assert slow.delete(url).status_code == 204
    assert slow.get(url).json()["status"] == "DELETING"
    assert_error(slow.delete(url), 400, "common.01000001", "DELETING")
    clock.advance(10)
    assert_error(slow.get(url), 404, "common.01000001", "code: 404")
    assert_error(slow.put(url, json={"name": "x"}), 404, "common.01000001")
    assert_error(slow.delete(url), 404, "common.01000001")
    assert slow.get(instances_url(ws)).json() == {"total": 0, "service_instances": []}


def test_instance_names_are_unique_per_workspace(client: TestClient, stack: dict[str, Any]) -> None:
    deploy(client, stack["ws"], stack["ep"], stack["model"], "svc", high=1)
    again = client.post(
        instances_url(stack["ws"]), json=instance_body(stack["ep"], stack["model"], "svc", 1, 1)
    )
    assert_error(again, 400, "common.01000001", "svc")


# ---------------------------------------------------------------- invocations


def events(response: httpx.Response) -> list[str]:
    lines = [line for line in response.text.splitlines() if line]
    assert all(line.startswith("data: ") for line in lines)
    return [line.removeprefix("data: ") for line in lines]


def test_invocation_streams_chat_completion_chunks(client: TestClient, stack: dict[str, Any]) -> None:
    svc = deploy(client, stack["ws"], stack["ep"], stack["model"])
    url = instances_url(stack["ws"], svc) + "/invocations"
    body = {
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]
    }
    with client.stream("POST", url, json=body) as response:
        response.read()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = events(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "llama" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    assert text == "svc heard: hello world"
    assert len(chunks) > 2


def test_invocation_needs_a_running_instance_and_messages(slow: TestClient, clock: FakeClock) -> None:
    ws = workspace(slow)
    ep = endpoint(slow, ws)
    source = model(slow, ws)
    clock.advance(10)
    url = instances_url(ws, deploy(slow, ws, ep, source)) + "/invocations"
    message = {"messages": [{"role": "user", "content": "hi"}]}
    assert_error(slow.post(url, json=message), 400, "common.01000001", "CREATING")
    clock.advance(10)
    assert slow.post(url, json=message).status_code == 200
    assert_bad_input(slow.post(url, json={}), "messages is required")
    assert_bad_input(slow.post(url, json={"messages": []}), "at least one")
    assert_bad_input(slow.post(url, json={"messages": [{"role": "user"}]}), "messages[0].content is required")


# ---------------------------------------------------------------- specs


def test_spec_catalogue(client: TestClient) -> None:
    listed = client.get("/v1/specs").json()
    codes = [spec["spec_code"] for spec in listed["spec_codes"]]
    assert {"mu.llama3.8b", "mu.llama3.70b", "mu.qwen2.7b"} <= set(codes)
    assert listed["total"] == len(codes)
    only = client.get("/v1/specs", params={"spec_code": "mu.qwen2.7b"}).json()
    assert only["total"] == 1
    assert {"spec_code", "spec_type", "unit", "min_stride_num", "max_stride_num"} <= set(
        only["spec_codes"][0]
    )
    mu = client.get("/v1/specs", params={"spec_types": "MU"}).json()
    assert {spec["spec_type"] for spec in mu["spec_codes"]} == {"MU"}
    assert client.get("/v1/specs", params={"spec_types": "MU,DPU"}).json()["total"] == mu["total"] + 1
    assert len(client.get("/v1/specs", params={"limit": 2}).json()["spec_codes"]) == 2


# ---------------------------------------------------------------- persistence and concurrency


def test_the_cloud_outlives_the_process_with_a_data_file(tmp_path: Path, clock: FakeClock) -> None:
    data_file = tmp_path / "cloud" / "fabric.json"
    with make_client(clock, provision_seconds=10, data_file=data_file) as first:
        ws = workspace(first)
        ep = endpoint(first, ws)
    assert json.loads(data_file.read_text())["format"] == 1
    assert [p.name for p in data_file.parent.iterdir()] == ["fabric.json"]
    clock.advance(5)
    with make_client(clock, provision_seconds=10, data_file=data_file) as second:
        assert second.get(f"/v1/workspaces/{ws}/endpoints/{ep}").json()["status"] == "CREATING"
        clock.advance(5)
        assert second.get(f"/v1/workspaces/{ws}/endpoints/{ep}").json()["status"] == "RUNNING"
        stored = json.loads(data_file.read_text())["collections"]["fabric.endpoints"][ep]
        assert stored["status"] == "RUNNING"  # a read that settles a transition persists it
        second.put(f"/v1/workspaces/{ws}", json={"description": "edited"})
    with make_client(clock, data_file=data_file) as third:
        listed = third.get("/v1/workspaces").json()["workspaces"]
        assert [(w["id"], w["description"]) for w in listed] == [(ws, "edited")]
        assert third.get(f"/v1/workspaces/{ws}/endpoints/{ep}").json()["status"] == "RUNNING"


def test_a_refused_request_leaves_the_data_file_alone(tmp_path: Path, clock: FakeClock) -> None:
    data_file = tmp_path / "fabric.json"
    with make_client(clock, data_file=data_file) as client:
        workspace(client, "one")
        before = data_file.read_text()
        assert client.post("/v1/workspaces", json={"name": "one"}).status_code == 400
        assert client.get("/v1/workspaces").status_code == 200
    assert data_file.read_text() == before


def test_an_unreadable_data_file_is_reported(tmp_path: Path) -> None:
    data_file = tmp_path / "fabric.json"
    data_file.write_text("{half")
    with pytest.raises(StoreError, match=r"fabric\.json"):
        build_app(EmulatorConfig(data_file=data_file))
    data_file.write_text("[]")
    with pytest.raises(StoreError, match="not an emulator store"):
        Store(data_file)


def test_store_collections_are_shared_and_saved(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.json", clock=lambda: 42.0)
    with store.transaction():
        store.collection("zstack.things")["a"] = {"id": "a"}
    assert store.now() == 42.0
    assert Store(tmp_path / "s.json").collection("zstack.things") == {"a": {"id": "a"}}
    assert store.new_id() != store.new_id()


def test_concurrent_creates_with_one_name_make_one_workspace(client: TestClient) -> None:
    statuses: list[int] = []

    def create() -> None:
        statuses.append(client.post("/v1/workspaces", json={"name": "contested"}).status_code)

    threads = [threading.Thread(target=create) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [400] * 11
    assert client.get("/v1/workspaces").json()["total"] == 1


def test_concurrent_async_clients_see_one_consistent_cloud(clock: FakeClock) -> None:
    """The provider's embedded mode: httpx.AsyncClient over ASGITransport, many calls in flight."""
    app = build_app(EmulatorConfig(fabric_token=TOKEN, provision_seconds=0, clock=clock))

    async def scenario() -> tuple[list[int], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://emulator", headers={"X-Auth-Token": TOKEN}
        ) as http:
            answers = await asyncio.gather(
                *(http.post("/v1/workspaces", json={"name": f"ws-{n % 5}"}) for n in range(20))
            )
            listed = await http.get("/v1/workspaces", params={"limit": 100})
        return [a.status_code for a in answers], listed.json()["total"]

    statuses, total = asyncio.run(scenario())
    assert sorted(statuses) == [201] * 5 + [400] * 15
    assert total == 5


# ---------------------------------------------------------------- the documented walk-through


def test_inference_walk_through_works_as_typed(client: TestClient) -> None:
    """The "Creating an Inference Service" example, each body exactly as the page writes it."""
    workspace_example = {"name": "apieworkspace", "description": "apie test workspace"}
    response = client.post("/v1/workspaces", json=workspace_example)
    assert response.status_code == 201, response.text
    ws = response.json()["id"]
    assert {"id", "name", "description", "create_time", "access_url"} <= set(response.json())

    endpoint_example = {
        "name": "apie_test",
        "description": "apie test endpoint",
        "type": "inference",
        "reserved_resource": {"mu": {"spec_code": "mu.llama3.8b", "min": 0, "max": 1}},
    }
    response = client.post(f"/v1/workspaces/{ws}/endpoints", json=endpoint_example)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "CREATING" and created["type"] == "inference"
    assert created["reserved_resource"] == endpoint_example["reserved_resource"]
    ep = created["id"]

    model_example = {
        "name": "LLama3-8b",
        "description": "this is a apie test model",
        "type": "LLM_MODEL",
        "version": {
            "name": "v1",
            "description": "test description",
            "config": {"llm_model_config": {"base_model_type": "", "model_path": ""}},
        },
    }
    response = client.post(f"/v1/workspaces/{ws}/models", json=model_example)
    assert response.status_code == 201, response.text
    model_id = response.json()["id"]

    instance_example = {
        "source": {"id": model_id},
        "name": "test_serviceInstanceName",
        "description": "description",
        "endpoint_id": ep,
    }
    response = client.post(f"/v1/workspaces/{ws}/services/instances", json=instance_example)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"id"}
    instance_id = response.json()["id"]

    shown = client.get(f"/v1/workspaces/{ws}/services/instances/{instance_id}").json()
    assert shown["source"]["id"] == model_id
    current = client.get(f"/v1/workspaces/{ws}/models").json()["models"][0]["current_version"]["id"]
    assert shown["source"]["version_id"] == current

    with client.stream(
        "POST",
        f"/v1/workspaces/{ws}/services/instances/{instance_id}/invocations",
        json={"messages": [{"role": "user", "content": "hello"}]},
    ) as streamed:
        assert streamed.status_code == 200
        assert "chat.completion.chunk" in streamed.read().decode()


def test_deploy_page_example_answers_200_with_the_instance_id(client: TestClient) -> None:
    """The DeployServiceInstance page's example body (ids replaced by real ones): 200 and ``{"id"}``."""
    ws = workspace(client)
    ep = endpoint(client, ws, high=1000)
    model_id, version_id = model(client, ws)
    example = {
        "source": {"id": model_id, "version_id": version_id},
        "name": "serviceInstanceName1",
        "description": "description",
        "endpoint_id": ep,
        "config": {"model_instance_config": {"resource": {"min": 1, "max": 1000, "spec_code": MU}}},
    }
    response = client.post(f"/v1/workspaces/{ws}/services/instances", json=example)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"id"}
