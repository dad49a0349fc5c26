"""The ZStack emulator against what a user of ZStack's REST API would check.

Time never comes from the wall clock: every app gets a :class:`FakeClock`, and
jobs and lifecycles are driven by advancing it.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from reconciler.emulators.store import Store
from reconciler.emulators.zstack import (
    BROKEN_MODEL_UUID,
    MODEL_CENTER_UUID,
    ZONE_1_UUID,
    ZONE_2_UUID,
    ZStackSettings,
    build_zstack_app,
)

with warnings.catch_warnings():
    # starlette 1.x prefers the httpx2 package for its test client; plain httpx works the same.
    warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)
    from starlette.testclient import TestClient

PASSWORD = "s3cret-pass"
DIGEST = hashlib.sha512(PASSWORD.encode()).hexdigest()
API = "/zstack/v1"
SERVICES = API + "/ai/model-services"
GROUPS = SERVICES + "/instances/groups"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Cloud:
    """A test client logged in as the admin account, with helpers for jobs."""

    def __init__(self, client: TestClient, clock: FakeClock) -> None:
        self.client = client
        self.clock = clock
        self.session = login(client).json()["inventory"]["uuid"]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"OAuth {self.session}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response

    def job(self, accepted: httpx.Response) -> httpx.Response:
        """The job's answer now (202 while running)."""
        assert accepted.status_code == 202, accepted.text
        response: httpx.Response = self.client.get(accepted.json()["location"])
        return response

    def done(self, accepted: httpx.Response) -> httpx.Response:
        """Advance the clock until the job finishes; its final answer."""
        for _ in range(100):
            answer = self.job(accepted)
            if answer.status_code != 202:
                return answer
            self.clock.advance(1)
        raise AssertionError("the job never finished")

    def add_service(self, name: str = "chat", **fields: Any) -> dict[str, Any]:
        answer = self.done(self.request("POST", SERVICES, json={"params": service_params(name, **fields)}))
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["inventory"])

    def deploy(
        self, service_uuid: str, name: str = "chat-group", key: str = "params", **fields: Any
    ) -> httpx.Response:
        """DeployModelService as the Go SDK's DeployModelServiceParam sends it: ``{"params": {...}}``."""
        params = {"name": name, "type": "Container", "zoneUuid": ZONE_1_UUID, **fields}
        return self.request("PUT", f"{SERVICES}/{service_uuid}/actions", json={key: params})

    def kept(self, collection: str, uuid: str) -> dict[str, Any]:
        """What the emulator keeps of an object, internal keys included (never answered)."""
        store = self.client.app.state.store  # type: ignore[attr-defined]
        return dict(store.collection(f"zstack.{collection}")[uuid])

    def group(self, uuid: str) -> dict[str, Any] | None:
        found = self.request("GET", f"{GROUPS}/{uuid}").json()["inventories"]
        return dict(found[0]) if found else None


def service_params(name: str = "chat", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "yaml": "model: qwen",
        "modelCenterUuid": MODEL_CENTER_UUID,
        "requestCpu": 4,
        "requestMemory": 8 * 1024**3,
        "installPath": "/opt/chat",
        "startCommand": "python serve.py",
        **fields,
    }


def login(client: TestClient, account: str = "admin", digest: str = DIGEST) -> httpx.Response:
    body = {"logInByAccount": {"accountName": account, "password": digest}}
    response: httpx.Response = client.put(f"{API}/accounts/login", json=body)
    return response


def make_cloud(
    clock: FakeClock, provision_seconds: float = 0, data_file: Path | None = None, **kw: Any
) -> Cloud:
    settings = ZStackSettings(password=PASSWORD, provision_seconds=provision_seconds, clock=clock, **kw)
    return Cloud(TestClient(build_zstack_app(settings, Store(data_file, clock=clock))), clock)


def assert_error(response: httpx.Response, status: int, code: str, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["description"]
    for fragment in fragments:
        assert fragment in error["details"], error["details"]
    return dict(error)


def assert_plain(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert text in response.text


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cloud(clock: FakeClock) -> Iterator[Cloud]:
    c = make_cloud(clock)
    with c.client:
        yield c


@pytest.fixture
def slow(clock: FakeClock) -> Iterator[Cloud]:
    """Jobs and lifecycle steps take 10 seconds of fake time."""
    c = make_cloud(clock, provision_seconds=10)
    with c.client:
        yield c


# ---------------------------------------------------------------- login and the REST gate


def test_login_takes_the_sha512_digest_of_the_password(cloud: Cloud) -> None:
    answer = login(cloud.client)
    assert answer.status_code == 200
    session = answer.json()["inventory"]
    assert len(session["uuid"]) == 32 and "-" not in session["uuid"]
    assert session["accountUuid"] == "36c27e8ff05c4780bf6d2fa65700f22e"
    assert session["expiredDate"] == "Nov 15, 2023 12:13:20 AM"  # created 10:13:20 PM, two hours later
    assert set(session) == {"uuid", "accountUuid", "userUuid", "expiredDate", "createDate"}


@pytest.mark.parametrize(
    ("account", "digest"),
    [("admin", hashlib.sha512(b"wrong").hexdigest()), ("admin", PASSWORD), ("root", DIGEST)],
    ids=["wrong-password", "plain-password", "wrong-account"],
)
def test_login_refuses_wrong_credentials(cloud: Cloud, account: str, digest: str) -> None:
    answer = login(cloud.client, account, digest)
    error = assert_error(answer, 503, "ID.1000", "wrong account name or password")
    assert PASSWORD not in str(error)


def test_login_without_its_body_is_invalid(cloud: Cloud) -> None:
    answer = cloud.client.put(f"{API}/accounts/login", json={})
    assert_error(answer, 503, "SYS.1007", "field[logInByAccount]")


def test_authorization_header_is_checked_by_the_rest_layer_in_plain_text(cloud: Cloud) -> None:
    assert_plain(cloud.client.get(SERVICES), 400, "missing header 'Authorization'")
    bearer = cloud.client.get(SERVICES, headers={"Authorization": f"Bearer {cloud.session}"})
    assert_plain(bearer, 400, "Authorization type must be 'OAuth'")
    assert cloud.request("GET", SERVICES).status_code == 200


def test_unknown_paths_and_methods_answer_plain_text(cloud: Cloud) -> None:
    assert_plain(
        cloud.request("GET", f"{API}/no-such-things"), 404, "no api mapping to /zstack/v1/no-such-things"
    )
    assert_plain(cloud.request("PATCH", SERVICES), 405, "The method[PATCH] is not allowed")
    assert_plain(cloud.client.post(f"{API}/api-jobs/abc"), 405, "only GET method is allowed")


def test_an_expired_or_unknown_session_answers_id_1001(clock: FakeClock) -> None:
    cloud = make_cloud(clock, session_ttl_seconds=100)
    with cloud.client:
        assert cloud.request("GET", SERVICES).status_code == 200
        clock.advance(101)
        assert_error(cloud.request("GET", SERVICES), 503, "ID.1001", cloud.session)
        # an asynchronous API is refused through its job
        refused = cloud.job(cloud.request("POST", SERVICES, json={"params": service_params()}))
        assert_error(refused, 503, "ID.1001")
        unknown = cloud.client.get(SERVICES, headers={"Authorization": "OAuth " + "0" * 32})
        assert_error(unknown, 503, "ID.1001")
        cloud.session = login(cloud.client).json()["inventory"]["uuid"]
        assert cloud.request("GET", SERVICES).status_code == 200
        assert cloud.request("GET", SERVICES).json()["inventories"] == []  # the refused add never ran


# ---------------------------------------------------------------- jobs


def test_an_asynchronous_api_answers_a_job_polled_until_done(slow: Cloud) -> None:
    accepted = slow.request("POST", SERVICES, json={"params": service_params()})
    assert accepted.status_code == 202
    location = accepted.json()["location"]
    assert location.startswith("http://testserver/zstack/v1/api-jobs/")
    running = slow.client.get(location)  # job polls need no session, as in ZStack
    assert running.status_code == 202 and running.content == b""
    slow.clock.advance(9.9)
    assert slow.client.get(location).status_code == 202
    slow.clock.advance(0.1)
    done = slow.client.get(location)
    assert done.status_code == 200
    inventory = done.json()["inventory"]
    assert inventory["name"] == "chat" and inventory["type"] == "Endpoint" and inventory["source"] == "Other"
    assert inventory["createDate"] == "Nov 14, 2023 10:13:20 PM"
    slow.clock.advance(3600)
    assert slow.client.get(location).status_code == 200  # kept for the job TTL
    slow.clock.advance(1)
    assert_plain(slow.client.get(location), 404, "the job has been expired")
    assert_plain(slow.client.get(f"{API}/api-jobs/{'f' * 32}"), 404, "the job has been expired")


def test_add_model_service_validation_fails_the_job(cloud: Cloud) -> None:
    def add(**params: Any) -> httpx.Response:
        return cloud.job(cloud.request("POST", SERVICES, json={"params": params}))

    missing = service_params()
    del missing["installPath"]
    assert_error(add(**missing), 503, "SYS.1007", "field[installPath]", "is mandatory")
    assert_error(add(**service_params(requestCpu="four")), 503, "SYS.1007", "field[requestCpu]", "integer")
    assert_error(add(**service_params(requestCpu=True)), 503, "SYS.1007", "field[requestCpu]")
    assert_error(add(**service_params(type="Chat")), 503, "SYS.1007", "field[type]", "Endpoint")
    assert_error(add(**service_params(modelCenterUuid="a" * 32)), 503, "SYS.1007", "ModelCenterVO")
    assert_error(add(**service_params(modelUuids=["b" * 32])), 503, "SYS.1007", "ModelVO")
    assert cloud.request("GET", SERVICES).json()["inventories"] == []


def test_malformed_json_is_a_400_with_the_error_envelope(cloud: Cloud) -> None:
    broken = cloud.request(
        "POST", SERVICES, content=b'{"params": {', headers={"Content-Type": "application/json"}
    )
    assert_error(broken, 400, "SYS.1007", "not valid JSON")
    listed = cloud.request("POST", SERVICES, json=[1, 2])
    assert_error(listed, 400, "SYS.1007", "JSON object")
    wrapped = cloud.job(cloud.request("POST", SERVICES, json={"params": "name=x"}))
    assert_error(wrapped, 503, "SYS.1007", "params")


# ---------------------------------------------------------------- model services


def test_update_model_service_in_every_body_form(cloud: Cloud) -> None:
    uuid = cloud.add_service()["uuid"]
    path = f"{SERVICES}/{uuid}"
    flat = cloud.request("PUT", path, json={"description": "flat", "requestCpu": 8})
    assert flat.status_code == 200
    assert flat.json()["success"] is True and "error" not in flat.json()  # null: omitted
    assert flat.json()["inventory"]["description"] == "flat" and flat.json()["inventory"]["requestCpu"] == 8
    wrapped = cloud.request(
        "PUT", path, json={"updateModelService": {"description": "wrapped"}, "systemTags": []}
    )
    assert wrapped.json()["inventory"]["description"] == "wrapped"
    sdk = cloud.request("PUT", path, json={"params": {"description": "sdk"}})
    assert sdk.json()["inventory"]["description"] == "sdk"
    action = cloud.request("PUT", path + "/actions", json={"updateModelService": {"name": "renamed"}})
    assert action.status_code == 200 and action.json()["inventory"]["name"] == "renamed"
    shown = cloud.request("GET", path).json()["inventories"][0]
    assert (shown["name"], shown["description"]) == ("renamed", "sdk")
    # write-only fields are taken but never shown
    ports = cloud.request("PUT", path, json={"servicePorts": [8000], "environmentParameters": {"A": "1"}})
    assert ports.status_code == 200 and "servicePorts" not in ports.json()["inventory"]


def test_update_model_service_refusals_keep_the_seed_envelope(cloud: Cloud) -> None:
    uuid = cloud.add_service()["uuid"]
    path = f"{SERVICES}/{uuid}"
    bad = cloud.request("PUT", path, json={"requestMemory": "lots"})
    assert bad.status_code == 503 and bad.json()["success"] is False
    assert bad.json()["error"]["code"] == "SYS.1007" and "requestMemory" in bad.json()["error"]["details"]
    fixed = cloud.request("PUT", path, json={"installPath": "/elsewhere"})
    assert (
        fixed.json()["error"]["code"] == "SYS.1007"
        and "cannot be updated" in fixed.json()["error"]["details"]
    )
    empty_name = cloud.request("PUT", path, json={"name": "  "})
    assert empty_name.json()["success"] is False
    missing = cloud.request("PUT", f"{SERVICES}/{'c' * 32}", json={"name": "x"})
    assert missing.json()["error"]["code"] == "SYS.1007" and "not found" in missing.json()["error"]["details"]
    no_action = cloud.request("PUT", path + "/actions", json={"renameModelService": {}})
    assert_plain(no_action, 400, "the body doesn't contain action mapping")
    assert cloud.request("GET", path).json()["inventories"][0]["installPath"] == "/opt/chat"


def test_query_conditions_paging_count_and_sort(cloud: Cloud) -> None:
    for i in range(12):
        cloud.add_service(f"svc-{i:02d}", requestCpu=i + 1, description=None if i % 2 else "even")

    def query(*conditions: str, **params: Any) -> dict[str, Any]:
        answer = cloud.request("GET", SERVICES, params={"q": list(conditions), **params})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def names(body: dict[str, Any]) -> list[str]:
        return [o["name"] for o in body["inventories"]]

    assert names(query("name=svc-03")) == ["svc-03"]
    assert names(query("name~=svc-1%")) == ["svc-10", "svc-11"]
    assert names(query("name~=SVC-0_", "requestCpu>8")) == ["svc-08", "svc-09"]
    assert names(query("name?=svc-01,svc-05")) == ["svc-01", "svc-05"]
    assert len(names(query("name!=svc-01"))) == 11
    assert len(names(query("description is null"))) == 6
    assert names(query("requestCpu<=2", sort="-requestCpu")) == ["svc-01", "svc-00"]
    page = query(start=5, limit=3, replyWithCount="true", sort="+name")
    assert names(page) == ["svc-05", "svc-06", "svc-07"] and page["total"] == 12
    assert "total" not in query(limit=1)
    assert query("name~=svc-0%", count="true") == {"total": 10}
    assert_plain(
        cloud.request("GET", SERVICES, params={"q": "name"}), 400, "doesn't contain any query operator"
    )
    assert_plain(cloud.request("GET", SERVICES, params={"limit": "ten"}), 400, "'limit' must be an integer")
    assert_error(cloud.request("GET", SERVICES, params={"q": "colour=red"}), 503, "SYS.1007", "colour")


def test_get_by_uuid_answers_a_list_of_zero_or_one(cloud: Cloud) -> None:
    uuid = cloud.add_service()["uuid"]
    assert [o["uuid"] for o in cloud.request("GET", f"{SERVICES}/{uuid}").json()["inventories"]] == [uuid]
    assert cloud.request("GET", f"{SERVICES}/{'d' * 32}").json() == {"inventories": []}


def test_catalogue_of_zones_model_centers_and_models(cloud: Cloud) -> None:
    zones = cloud.request("GET", f"{API}/zones").json()["inventories"]
    assert {z["uuid"] for z in zones} == {ZONE_1_UUID, ZONE_2_UUID}
    centers = cloud.request("GET", f"{API}/ai/model-centers").json()["inventories"]
    assert [c["uuid"] for c in centers] == [MODEL_CENTER_UUID]
    qwen = cloud.request("GET", f"{API}/ai/models", params={"q": "name~=qwen%"}).json()["inventories"]
    assert [m["name"] for m in qwen] == ["qwen2.5-7b-instruct"]
    assert all(len(m["uuid"]) == 32 for m in qwen)


# ---------------------------------------------------------------- instance groups


def test_deploy_goes_deploying_then_booting_then_running_with_the_clock(slow: Cloud) -> None:
    service = slow.add_service()
    env = {"MAX_TOKENS": "4096"}
    accepted = slow.deploy(service["uuid"], environmentVariables=env, cpuNum=8)
    assert slow.job(accepted).status_code == 202
    groups = slow.request("GET", GROUPS, params={"q": f"modelServiceUuid={service['uuid']}"}).json()
    group = groups["inventories"][0]
    assert group["status"] == "Deploying" and group["instances"][0]["status"] == "Deploying"
    slow.clock.advance(10)
    result = slow.job(accepted)
    assert result.status_code == 200
    inventory = result.json()["inventory"]
    assert inventory["status"] == "ServiceBootingUp" and inventory["modelServiceType"] == "Endpoint"
    # the Go SDK's group view carries none of the deploy inputs: kept, never answered
    hidden = ("zoneUuid", "cpuNum", "memorySize", "environmentVariables", "startupParameters")
    assert [key for key in (*hidden, "modelServiceGroupUuids") if key in inventory] == []
    kept = slow.kept("instance_groups", inventory["uuid"])
    assert kept["_zoneUuid"] == ZONE_1_UUID and kept["_cpuNum"] == 8
    assert kept["_memorySize"] == service["requestMemory"]  # defaults to the service's request
    assert kept["_environmentVariables"] == env
    slow.clock.advance(10)
    running = slow.group(inventory["uuid"])
    assert running is not None and running["status"] == "Running"
    assert running["instances"][0]["status"] == "Running"
    assert running["instances"][0]["url"].startswith("http://172.20.")


def test_a_group_serving_the_fault_fixture_model_ends_failed(cloud: Cloud) -> None:
    service = cloud.add_service()
    inventory = cloud.done(cloud.deploy(service["uuid"], modelUuid=BROKEN_MODEL_UUID)).json()["inventory"]
    group = cloud.group(inventory["uuid"])
    assert group is not None and group["status"] == "Failed"


def test_deploy_validation_fails_the_job(cloud: Cloud) -> None:
    service = cloud.add_service()
    assert_error(cloud.job(cloud.deploy(service["uuid"], zoneUuid="e" * 32)), 503, "SYS.1007", "ZoneVO")
    assert_error(cloud.job(cloud.deploy(service["uuid"], type="Pod")), 503, "SYS.1007", "field[type]")
    assert_error(cloud.job(cloud.deploy(service["uuid"], cpuNum=0)), 503, "SYS.1007", "cpuNum")
    bad_env = cloud.deploy(service["uuid"], environmentVariables={"N": 1})
    assert_error(cloud.job(bad_env), 503, "SYS.1007", "map of string to string")
    assert_error(cloud.job(cloud.deploy("f" * 32)), 503, "SYS.1007", "ModelServiceVO")
    assert cloud.request("GET", GROUPS).json()["inventories"] == []


def test_update_group_restarts_on_new_environment_and_refuses_fixed_fields(slow: Cloud) -> None:
    service = slow.add_service()
    group_uuid = slow.done(slow.deploy(service["uuid"])).json()["inventory"]["uuid"]
    busy = slow.request(
        "PUT",
        f"{API}/model-service-instance-groups/{group_uuid}",
        json={"updateModelServiceInstanceGroup": {}},
    )
    assert_error(slow.job(busy), 503, "SYS.1006", "ServiceBootingUp")
    slow.clock.advance(10)
    body = {"updateModelServiceInstanceGroup": {"description": "d", "environmentVariables": {"A": "2"}}}
    accepted = slow.request("PUT", f"{API}/model-service-instance-groups/{group_uuid}", json=body)
    assert slow.job(accepted).status_code == 202
    restarting = slow.group(group_uuid)
    assert restarting is not None and restarting["status"] == "ServiceBootingUp"
    slow.clock.advance(10)
    updated = slow.job(accepted).json()["inventory"]
    assert updated["status"] == "Running" and "environmentVariables" not in updated
    assert slow.kept("instance_groups", group_uuid)["_environmentVariables"] == {"A": "2"}
    renamed = slow.request(
        "PUT", f"{GROUPS}/{group_uuid}/actions", json={"updateModelServiceInstanceGroup": {"name": "g2"}}
    )
    assert slow.done(renamed).json()["inventory"]["name"] == "g2"
    fixed = slow.request(
        "PUT", f"{GROUPS}/{group_uuid}/actions", json={"updateModelServiceInstanceGroup": {"cpuNum": 2}}
    )
    assert_error(slow.job(fixed), 503, "SYS.1007", "cpuNum", "cannot be updated")


def test_delete_group_then_gone(slow: Cloud) -> None:
    service = slow.add_service()
    group_uuid = slow.done(slow.deploy(service["uuid"])).json()["inventory"]["uuid"]
    accepted = slow.request("DELETE", f"{GROUPS}/{group_uuid}")
    deleting = slow.group(group_uuid)
    assert deleting is not None and deleting["status"] == "Deleting"
    done = slow.done(accepted)
    assert done.status_code == 200 and done.content == b""
    assert slow.group(group_uuid) is None
    again = slow.done(slow.request("DELETE", f"{GROUPS}/{group_uuid}"))
    assert again.status_code == 200  # deleting what is not there succeeds


def test_delete_model_service_with_dependants(cloud: Cloud) -> None:
    service = cloud.add_service()
    group_uuid = cloud.done(cloud.deploy(service["uuid"])).json()["inventory"]["uuid"]
    path = f"{SERVICES}/{service['uuid']}"
    refused = cloud.job(cloud.request("DELETE", path))
    assert_error(refused, 503, "SYS.1006", group_uuid, "deleteMode=Enforcing")
    assert_error(cloud.job(cloud.request("DELETE", path, params={"deleteMode": "Always"})), 503, "SYS.1007")
    assert cloud.request("GET", path).json()["inventories"]
    enforced = cloud.done(cloud.request("DELETE", path, params={"deleteMode": "Enforcing"}))
    assert enforced.status_code == 200
    assert cloud.request("GET", path).json()["inventories"] == []
    assert cloud.group(group_uuid) is None


def test_delete_model_service_takes_a_step_of_time(slow: Cloud) -> None:
    service = slow.add_service()
    accepted = slow.request("DELETE", f"{SERVICES}/{service['uuid']}")
    assert slow.job(accepted).status_code == 202
    assert slow.request("GET", f"{SERVICES}/{service['uuid']}").json()["inventories"]
    slow.clock.advance(10)
    assert slow.job(accepted).status_code == 200
    assert slow.request("GET", f"{SERVICES}/{service['uuid']}").json()["inventories"] == []


def test_the_cloud_outlives_the_app_through_its_data_file(clock: FakeClock, tmp_path: Path) -> None:
    data_file = tmp_path / "zstack.json"
    first = make_cloud(clock, data_file=data_file)
    with first.client:
        uuid = first.add_service()["uuid"]
    second = make_cloud(clock, data_file=data_file)
    with second.client:
        assert [o["uuid"] for o in second.request("GET", SERVICES).json()["inventories"]] == [uuid]
        old_session = second.client.get(SERVICES, headers={"Authorization": f"OAuth {first.session}"})
        assert old_session.status_code == 200  # sessions persist too


def test_groups_named_by_fail_provisioning_end_failed(clock: FakeClock) -> None:
    cloud = make_cloud(clock, fail_provisioning=("doomed-*",))
    with cloud.client:
        service = cloud.add_service()
        doomed = cloud.done(cloud.deploy(service["uuid"], name="doomed-1")).json()["inventory"]["uuid"]
        fine = cloud.done(cloud.deploy(service["uuid"], name="fine-1")).json()["inventory"]["uuid"]
        assert [(cloud.group(g) or {}).get("status") for g in (doomed, fine)] == ["Failed", "Running"]


def test_deploy_takes_the_rest_action_form_as_well_as_the_go_sdk_params(cloud: Cloud) -> None:
    service = cloud.add_service()
    sdk = cloud.done(cloud.deploy(service["uuid"], "by-sdk", resourceUuid="a" * 32))
    action = cloud.done(cloud.deploy(service["uuid"], "by-action", key="deployModelService"))
    assert sdk.json()["inventory"]["uuid"] == "a" * 32 and sdk.json()["inventory"]["name"] == "by-sdk"
    assert action.json()["inventory"]["name"] == "by-action"
    updated = cloud.done(
        cloud.request(
            "PUT", f"{API}/model-service-instance-groups/{'a' * 32}", json={"params": {"name": "g"}}
        )
    )
    assert updated.json()["inventory"]["name"] == "g"  # Go SDK UpdateModelServiceInstanceGroupParam
