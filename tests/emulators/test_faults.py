"""Injected faults: reproducible from a seed, in each platform's envelope, and the lost-answer case.

Requests go in-process (Starlette's TestClient, httpx.ASGITransport) except one
test against a served emulator, which checks that a dropped connection really
is a closed socket rather than a 500. Nothing sleeps for more than a few
milliseconds: latency is 0 except in one tiny test, and ``slow`` faults are
checked with a recording sleep.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from reconciler.emulators import EmulatorConfig, build_app
from reconciler.emulators.faults import (
    KINDS,
    DroppedConnection,
    FaultInjector,
    FaultSettings,
    decide,
    platform_of,
    quiet_dropped_connections,
)
from reconciler.emulators.lifecycle import provisioning_fails
from reconciler.errors import ProviderError, TransportError
from reconciler.providers.fabric import FabricProvider, fabric_error
from reconciler.providers.http import ApiClient
from reconciler.providers.pacing import NO_RETRY

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TOKEN = "fault-token"
MU = "mu.llama3.8b"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def config(faults: FaultSettings, clock: FakeClock | None = None) -> EmulatorConfig:
    return EmulatorConfig(fabric_token=TOKEN, provision_seconds=0, clock=clock or FakeClock(), faults=faults)


@pytest.fixture
def make_client() -> Iterator[Any]:
    opened: list[TestClient] = []

    def make(faults: FaultSettings, clock: FakeClock | None = None) -> TestClient:
        test_client = TestClient(build_app(config(faults, clock)), headers={"X-Auth-Token": TOKEN})
        opened.append(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.close()


def outcome(client: TestClient, method: str, path: str, **kwargs: Any) -> int | str:
    """The status code, or ``"dropped"`` when the connection closed without an answer."""
    try:
        return int(client.request(method, path, **kwargs).status_code)
    except httpx.TransportError:
        return "dropped"


def only(kind: str, **extra: Any) -> FaultSettings:
    return FaultSettings(fault_rate=1.0, kinds=(kind,), seed=1, **extra)


# ---------------------------------------------------------------- reproducible


def test_the_same_seed_gives_the_same_faults_in_the_same_order(make_client: Any) -> None:
    settings = FaultSettings(fault_rate=0.5, seed=42, kinds=("error", "timeout", "throttle", "drop"))
    runs = []
    for _ in range(2):
        client = make_client(settings)
        runs.append([outcome(client, "GET", "/v1/workspaces") for _ in range(50)])
    assert runs[0] == runs[1]
    assert {200, "dropped", 408, 429} <= set(runs[0]) and set(runs[0]) & {500, 502, 503, 504}
    assert 10 < runs[0].count(200) < 40  # about half the requests are left alone

    other = make_client(FaultSettings(fault_rate=0.5, seed=43, kinds=settings.kinds))
    assert [outcome(other, "GET", "/v1/workspaces") for _ in range(50)] != runs[0]


def test_one_draw_decides_kind_and_detail() -> None:
    settings = FaultSettings(fault_rate=0.6, kinds=("error", "slow"), slow_ms=1000)
    assert decide(0.6, settings, mutating=True) is None
    assert decide(0.0, settings, mutating=True) == decide(0.0, settings, mutating=True)
    error = decide(0.29, settings, mutating=True)  # first half of the faulty share: error, late in it
    assert error is not None and error.kind == "error" and error.status == 504
    slow = decide(0.45, settings, mutating=False)
    assert slow is not None and slow.kind == "slow" and slow.delay == pytest.approx(0.5)
    zstack = decide(0.29, settings, mutating=True, platform="zstack")
    assert zstack is not None and zstack.status == 503


def test_only_mutating_requests_get_lost() -> None:
    settings = FaultSettings(fault_rate=1.0, kinds=("lost", "drop"))
    reads = {decide(n / 100, settings, mutating=False) for n in range(100)}
    assert {fault.kind for fault in reads if fault} == {"drop"}
    writes = {decide(n / 100, settings, mutating=True) for n in range(100)}
    assert {fault.kind for fault in writes if fault} == {"lost", "drop"}
    assert decide(0.5, FaultSettings(fault_rate=1.0, kinds=("lost",)), mutating=False) is None


# ---------------------------------------------------------------- envelopes


@pytest.mark.parametrize(
    ("kind", "path", "statuses", "code"),
    [
        ("error", "/v1/workspaces", {500, 502, 503, 504}, ("error_code", "common.00000500")),
        ("timeout", "/v1/workspaces", {408}, ("error_code", "common.00000408")),
        ("throttle", "/v1/workspaces", {429}, ("error_code", "APIG.0308")),
        ("error", "/api/v1/deployments", {500, 502, 503, 504}, ("code", "InternalError")),
        ("timeout", "/api/v1/deployments", {408}, ("code", "RequestTimeOut")),
        ("throttle", "/api/v1/deployments", {429}, ("code", "Throttling.RateQuota")),
        ("error", "/zstack/v1/ai/model-services", {503}, ("error.code", "SYS.1000")),
        ("timeout", "/zstack/v1/ai/model-services", {503}, ("error.code", "SYS.1001")),
        ("throttle", "/zstack/v1/ai/model-services", {429}, ("error.code", "SYS.1000")),
    ],
)
def test_each_answered_fault_wears_its_platforms_envelope(
    make_client: Any, kind: str, path: str, statuses: set[int], code: tuple[str, str]
) -> None:
    client = make_client(only(kind))
    seen = set()
    for _ in range(12):
        response = client.get(path)
        seen.add(response.status_code)
        body = response.json()
        key, wanted = code
        value = body["error"]["code"] if key == "error.code" else body[key]
        assert value == wanted
        if platform_of(path) == "fabric":
            assert set(body) == {"error_code", "error_msg", "solution_msg"}
            assert fabric_error(response)[0] == wanted
        if platform_of(path) == "modelstudio":
            assert set(body) == {"request_id", "code", "message"}
        if platform_of(path) == "zstack":
            assert set(body["error"]) == {"code", "description", "details"}
        assert (response.headers.get("Retry-After") == "1") is (kind == "throttle")
    assert seen <= statuses and (len(seen) > 1 or len(statuses) == 1)


def test_fabric_messages_are_the_documented_ones(make_client: Any) -> None:
    assert (
        make_client(only("timeout")).get("/v1/workspaces").json()["error_msg"] == "timeout exception occurred"
    )
    assert make_client(only("error")).get("/v1/workspaces").json()["error_msg"] == "internal error"
    assert "throttling threshold" in make_client(only("throttle")).get("/v1/workspaces").json()["error_msg"]


# ---------------------------------------------------------------- dropped and lost answers


def test_a_dropped_request_is_a_transport_error_and_changes_nothing(make_client: Any) -> None:
    client = make_client(only("drop"))
    with pytest.raises(httpx.TransportError) as caught:
        client.post("/v1/workspaces", json={"name": "never"})
    assert isinstance(caught.value, DroppedConnection | httpx.RemoteProtocolError)
    assert client.app.state.store.collection("fabric.workspaces") == {}


def test_a_lost_answer_still_makes_the_change(make_client: Any) -> None:
    client = make_client(only("lost"))
    with pytest.raises(httpx.TransportError):
        client.post("/v1/workspaces", json={"name": "made-anyway"})
    listed = client.get("/v1/workspaces", params={"name": "made-anyway"})  # a GET is never lost
    assert listed.status_code == 200
    assert [w["name"] for w in listed.json()["workspaces"]] == ["made-anyway"]


def test_a_lost_answer_on_model_studio_still_makes_the_deployment(make_client: Any) -> None:
    client = make_client(only("lost"))
    headers = {"Authorization": "Bearer emulator-key"}
    body = {"model_name": "qwen3-8b", "plan": "mu", "deploy_spec": "MU1", "capacity": 4, "name": "chat"}
    body.update(billing_method="POST_PAY", suffix="lost1")
    with pytest.raises(httpx.TransportError):
        client.post("/api/v1/deployments", json=body, headers=headers)
    listed = client.get("/api/v1/deployments", headers=headers)
    assert listed.status_code == 200, listed.text
    (made,) = listed.json()["output"]["deployments"]
    assert made["model_name"] == "qwen3-8b" and made["deployed_model"].endswith("-lost1")


def test_a_lost_create_through_the_provider_client_is_a_retryable_transport_error() -> None:
    app = build_app(config(only("lost")))

    async def body() -> None:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://fabric.test",
            headers={"X-Auth-Token": TOKEN},
        )
        api = ApiClient(http, platform="fabric", error_parser=fabric_error, retry=NO_RETRY)
        try:
            with pytest.raises(TransportError) as caught:
                await api.request(
                    "POST", "/v1/workspaces", json={"name": "ghost"}, operation="CreateWorkspace"
                )
            assert caught.value.retryable and caught.value.status is None
            listed = await api.request("GET", "/v1/workspaces", params={"name": "ghost"})
            assert [w["name"] for w in listed["workspaces"]] == ["ghost"]
        finally:
            await api.aclose()

    asyncio.run(body())


@pytest.fixture
def served_with_drops() -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    quiet_dropped_connections()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = build_app(config(only("drop")))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the emulator did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_served_emulator_really_closes_the_connection(served_with_drops: str) -> None:
    client = httpx.Client(base_url=served_with_drops, headers={"X-Auth-Token": TOKEN})
    with client, pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/workspaces")


def test_dropped_connections_stay_out_of_the_server_log() -> None:
    quiet_dropped_connections("test.faults.log")
    quiet_dropped_connections("test.faults.log")  # idempotent
    logger = logging.getLogger("test.faults.log")
    assert len(logger.filters) == 1

    def record(error: BaseException) -> logging.LogRecord:
        info = (type(error), error, None)
        return logging.LogRecord("test.faults.log", logging.ERROR, __file__, 1, "boom", (), info)

    assert not logger.filter(record(DroppedConnection("dropped")))
    assert logger.filter(record(RuntimeError("a real bug")))
    assert logger.filter(logging.LogRecord("x", logging.INFO, __file__, 1, "fine", (), None))


# ---------------------------------------------------------------- latency


def test_slow_faults_wait_a_bounded_extra_time() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"ok": True})(scope, receive, send)

    settings = FaultSettings(fault_rate=1.0, kinds=("slow",), seed=3, slow_ms=2000, latency_ms=5)
    app = FaultInjector(inner, settings, sleep=record)

    async def body() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
            return [(await client.get("/v1/anything")).status_code for _ in range(20)]

    assert asyncio.run(body()) == [200] * 20
    assert len(waits) == 20 and all(0.005 <= w <= 2.005 for w in waits)
    assert max(waits) - min(waits) > 0.5  # the extra delay varies


def test_latency_applies_to_every_request(make_client: Any) -> None:
    client = make_client(FaultSettings(latency_ms=15))
    started = time.monotonic()
    assert client.get("/v1/workspaces").status_code == 200
    assert client.get("/v1/workspaces").status_code == 200
    assert time.monotonic() - started >= 0.03


# ---------------------------------------------------------------- no faults


def test_a_zero_fault_rate_changes_nothing(make_client: Any) -> None:
    settings = FaultSettings(fault_rate=0.0, seed=7)
    assert not settings.active and not FaultSettings().active
    client = make_client(settings)
    outcomes = [outcome(client, "POST", "/v1/workspaces", json={"name": f"w{n}"}) for n in range(25)]
    assert outcomes == [201] * 25
    assert client.get("/v1/workspaces", params={"limit": 100}).json()["total"] == 25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fault_rate": 1.5}, "fault_rate must lie between 0 and 1"),
        ({"latency_ms": -1}, "must not be negative"),
        ({"kinds": ("error", "meteor")}, "fault kinds must be some of"),
        ({"kinds": ()}, "fault kinds must be some of"),
        ({"fail_provisioning": "chat-*"}, "tuple of globs"),
    ],
)
def test_bad_fault_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultSettings(**kwargs)
    assert FaultSettings().kinds == KINDS


# ---------------------------------------------------------------- failed provisioning


def test_provisioning_fails_matches_name_globs() -> None:
    globs = ("doomed-*", "exact")
    assert provisioning_fails(globs, "doomed-ep") and provisioning_fails(globs, "exact")
    assert not provisioning_fails(globs, "Doomed-ep") and not provisioning_fails(globs, "exactly")
    assert not provisioning_fails(globs, None) and not provisioning_fails((), "doomed-ep")


def create_endpoint(client: TestClient, ws: str, name: str, high: int = 4) -> str:
    body = {
        "name": name,
        "type": "inference",
        "reserved_resource": {"mu": {"spec_code": MU, "min": 0, "max": high}},
    }
    response = client.post(f"/v1/workspaces/{ws}/endpoints", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "CREATING"
    return str(response.json()["id"])


def test_matching_endpoints_and_instances_end_failed_with_a_message(make_client: Any) -> None:
    clock = FakeClock()
    client = make_client(FaultSettings(fail_provisioning=("doomed-*",)), clock)
    ws = client.post("/v1/workspaces", json={"name": "ws"}).json()["id"]
    doomed, fine = create_endpoint(client, ws, "doomed-ep"), create_endpoint(client, ws, "fine-ep", high=8)
    clock.advance(1)

    failed = client.get(f"/v1/workspaces/{ws}/endpoints/{doomed}").json()
    assert failed["status"] == "CREATE_FAILED"
    assert failed["error_code"] == "common.00000500"
    assert (
        failed["error_msg"].startswith("internal error, reason: insufficient resources: ")
        and "doomed-ep" in failed["error_msg"]
    )
    running = client.get(f"/v1/workspaces/{ws}/endpoints/{fine}").json()
    assert (running["status"], running["error_code"], running["error_msg"]) == ("RUNNING", None, None)

    version = {
        "name": "v1",
        "config": {"llm_model_config": {"base_model_type": "llama3-8b", "model_path": "obs://m"}},
    }
    created = client.post(
        f"/v1/workspaces/{ws}/models", json={"name": "llama", "type": "LLM_MODEL", "version": version}
    ).json()
    instances = {}
    for name in ("doomed-svc", "svc"):
        body = {
            "source": {"id": created["id"], "version_id": created["version_id"]},
            "name": name,
            "endpoint_id": fine,
            "config": {"model_instance_config": {"resource": {"spec_code": MU, "min": 1, "max": 2}}},
        }
        response = client.post(f"/v1/workspaces/{ws}/services/instances", json=body)
        assert response.status_code == 200, response.text
        instances[name] = response.json()["id"]
    clock.advance(30)
    path = f"/v1/workspaces/{ws}/services/instances"
    failed_instance = client.get(f"{path}/{instances['doomed-svc']}").json()
    assert failed_instance["status"] == "FAILED" and failed_instance["duration"] == 0
    assert failed_instance["error_code"] == "common.00000500"
    assert "insufficient resources" in failed_instance["error_msg"]
    assert client.get(f"{path}/{instances['svc']}").json()["status"] == "RUNNING"

    assert (
        client.delete(f"/v1/workspaces/{ws}/services/instances/{instances['doomed-svc']}").status_code == 204
    )
    assert client.delete(f"/v1/workspaces/{ws}/endpoints/{doomed}").status_code == 200  # a failed one can go


def test_the_provider_reports_the_failed_provisioning(make_client: Any) -> None:
    app = build_app(config(FaultSettings(fail_provisioning=("doomed-*",))))

    async def body() -> None:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://fabric.test",
            headers={"X-Auth-Token": TOKEN},
        )
        provider = FabricProvider(ApiClient(http, platform="fabric", error_parser=fabric_error))
        try:
            ws = await provider.create("workspace", {"name": "ws"})
            reserved = {"mu": {"spec_code": MU, "min": 0, "max": 2}}
            desired = {
                "workspace_id": ws.id,
                "name": "doomed-ep",
                "type": "inference",
                "reserved_resource": reserved,
            }
            ep = await provider.create("endpoint", desired)
            with pytest.raises(ProviderError) as caught:
                await provider.wait("endpoint", ep.id, {"workspace_id": ws.id}, "ready", 5)
            assert caught.value.code == "common.00000500"
            assert "insufficient resources" in caught.value.platform_message
        finally:
            await provider.aclose()

    asyncio.run(body())
