"""The Fabric provider against the in-process emulator (and, for failure shapes, a mock transport).

Every test is a plain function that runs its coroutine with :func:`asyncio.run`.
Time never comes from the wall clock where waiting matters: the emulator and
the provider share a :class:`FakeClock`, and the provider's ``sleep`` advances it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.emulators import EmulatorConfig, build_app
from reconciler.errors import ProviderError, TransportError, UsageError
from reconciler.providers import build_provider
from reconciler.providers.base import UNKNOWN, Live, Provider, RefValue
from reconciler.providers.fabric import FabricProvider, fabric_error
from reconciler.providers.http import ApiClient

TOKEN = "t0ken-under-test-5f3a"
MU = "mu.llama3.8b"
FORBIDDEN = "X-Auth-Token is invalid in the request"
VERSION = {
    "name": "v1",
    "config": {"llm_model_config": {"base_model_type": "llama3", "model_path": "obs://m/v1"}},
}


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class Recorder:
    """An httpx event hook keeping (method, path, query) of every request sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def paths(self, method: str = "GET") -> list[str]:
        return [r.url.path for r in self.requests if r.method == method]


async def no_backoff(seconds: float) -> None:
    """ApiClient retries as in production, without waiting for real between attempts."""


def provider_for(
    transport: httpx.AsyncBaseTransport,
    *,
    token: str = TOKEN,
    clock: FakeClock | None = None,
    recorder: Recorder | None = None,
    timeout: float = 30.0,
    max_in_flight: int = 10,
) -> FabricProvider:
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [recorder]} if recorder is not None else {}
    http = httpx.AsyncClient(
        transport=transport, base_url="http://fabric.test", headers={"X-Auth-Token": token}, event_hooks=hooks
    )
    api = ApiClient(
        http, platform="fabric", error_parser=fabric_error, secrets=(token,), timeout=timeout,
        max_in_flight=max_in_flight, sleep=no_backoff,
    )  # fmt: skip
    if clock is None:
        return FabricProvider(api, poll_interval=1.0)
    return FabricProvider(api, poll_interval=1.0, clock=clock, sleep=clock.sleep)


def emulated(
    *, provision_seconds: float = 0, clock: FakeClock | None = None, token: str = TOKEN, **kwargs: Any
) -> FabricProvider:
    config = EmulatorConfig(
        fabric_token=TOKEN, provision_seconds=provision_seconds, clock=clock or FakeClock()
    )
    return provider_for(httpx.ASGITransport(app=build_app(config)), token=token, clock=clock, **kwargs)


def run(provider: FabricProvider, body: Callable[[FabricProvider], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await body(provider)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def ref(live: Live, address: str = "x.y") -> RefValue:
    return RefValue(address, live.id, live.attributes)


def project(live: Any, desired: Any) -> Any:
    """The part of ``live`` that ``desired`` speaks about, as the planner's diff sees it."""
    if isinstance(desired, Mapping) and isinstance(live, Mapping):
        return {key: project(live.get(key), value) for key, value in desired.items()}
    return live


def on_desired_keys(desired: Mapping[str, Any], live: Live) -> Any:
    return project(live.attributes, desired)


async def workspace(p: FabricProvider, name: str = "ws") -> Live:
    return await p.create("workspace", p.desired("workspace", {"name": name}, {}))


def endpoint_attrs(name: str = "ep", high: int = 4) -> dict[str, Any]:
    return {
        "name": name,
        "type": "inference",
        "reserved_resource": {"mu": {"spec_code": MU, "min": 0, "max": high}},
    }


def instance_attrs(name: str = "svc", low: int = 1, high: int = 2) -> dict[str, Any]:
    resource = {"spec_code": MU, "min": low, "max": high}
    return {
        "name": name,
        "description": "serves",
        "config": {"model_instance_config": {"resource": resource}},
    }


async def serving_stack(p: FabricProvider) -> dict[str, Live]:
    """A workspace, a RUNNING endpoint and a model."""
    ws = await workspace(p)
    scope = {"workspace_id": ws.id}
    ep = await p.create("endpoint", p.desired("endpoint", endpoint_attrs(), {"workspace": ref(ws)}))
    ep = await p.wait("endpoint", ep.id, scope, "ready", 60) or ep
    model_desired = p.desired(
        "model", {"name": "llm", "type": "LLM_MODEL", "version": VERSION}, {"workspace": ref(ws)}
    )
    model = await p.create("model", model_desired)
    return {"ws": ws, "ep": ep, "model": model}


# ---------------------------------------------------------------- the contract


def test_fabric_provider_satisfies_the_protocol(tmp_path: Path) -> None:
    provider = build_provider("fabric", {"url": "embedded", "token": TOKEN}, state_dir=tmp_path)
    assert isinstance(provider, Provider)
    assert set(provider.kinds) == {"workspace", "endpoint", "model", "service_instance"}
    assert provider.kinds["service_instance"].scope == ("workspace_id",)
    assert provider.kinds["endpoint"].asynchronous and not provider.kinds["model"].asynchronous
    asyncio.run(provider.aclose())


# ---------------------------------------------------------------- workspaces


def test_workspace_create_read_find_update_delete() -> None:
    async def body(p: FabricProvider) -> None:
        desired = p.desired("workspace", {"name": "main", "description": "team space"}, {})
        created = await p.create("workspace", desired)
        assert on_desired_keys(desired, created) == desired
        assert created.name == "main" and created.attributes["id"] == created.id
        assert await p.read("workspace", created.id, {}) == created
        assert await p.find("workspace", "main", {}) == created
        assert await p.find("workspace", "mai", {}) is None

        changed = {**desired, "description": "renamed space", "name": "main2"}
        updated = await p.update("workspace", created, changed)
        assert on_desired_keys(changed, updated) == changed
        assert await p.wait("workspace", created.id, {}, "ready", 5) == updated

        await p.delete("workspace", created.id, {})
        assert await p.read("workspace", created.id, {}) is None
        assert await p.wait("workspace", created.id, {}, "gone", 5) is None
        await p.delete("workspace", created.id, {})  # a missing object is not an error

    run(emulated(), body)


def test_list_reads_every_page_first_then_the_rest_concurrently() -> None:
    recorder = Recorder()

    async def body(p: FabricProvider) -> None:
        await asyncio.gather(*(workspace(p, f"ws-{n:03}") for n in range(230)))
        recorder.requests.clear()
        listed = await p.list("workspace", {})
        assert sorted(live.name or "" for live in listed) == [f"ws-{n:03}" for n in range(230)]
        assert len({live.id for live in listed}) == 230
        pages = [(r.url.params["offset"], r.url.params["limit"]) for r in recorder.requests]
        assert pages[0] == ("0", "100")
        assert sorted(pages) == [("0", "100"), ("100", "100"), ("200", "100")]

    run(emulated(recorder=recorder), body)


# ---------------------------------------------------------------- endpoints


def test_endpoint_lifecycle_waits_for_ready_and_gone() -> None:
    clock = FakeClock()

    async def body(p: FabricProvider) -> None:
        ws = await workspace(p)
        scope = {"workspace_id": ws.id}
        desired = p.desired("endpoint", endpoint_attrs(), {"workspace": ref(ws)})
        created = await p.create("endpoint", desired)
        assert created.status == "CREATING"
        ready = await p.wait("endpoint", created.id, scope, "ready", 60)
        assert ready is not None and ready.status == "RUNNING"
        assert on_desired_keys(desired, ready) == desired
        assert clock.sleeps[:4] == [0.2, 0.4, 0.8, 1.0]  # backoff up to poll_interval
        assert [live.id for live in await p.list("endpoint", scope)] == [created.id]

        bigger = {
            **desired,
            "description": "more",
            "reserved_resource": {"mu": {"spec_code": MU, "min": 0, "max": 8}},
        }
        updated = await p.update("endpoint", ready, bigger)
        assert updated.status == "UPDATING"
        settled = await p.wait("endpoint", created.id, scope, "ready", 60)
        assert settled is not None and on_desired_keys(bigger, settled) == bigger

        await p.delete("endpoint", created.id, scope)
        await p.delete("endpoint", created.id, scope)  # already DELETING: fine
        deleting = await p.read("endpoint", created.id, scope)
        assert deleting is not None and deleting.status == "DELETING"
        assert await p.wait("endpoint", created.id, scope, "gone", 60) is None
        assert await p.read("endpoint", created.id, scope) is None

    run(emulated(provision_seconds=3, clock=clock), body)


def test_wait_times_out_with_code_timeout() -> None:
    clock = FakeClock()

    async def body(p: FabricProvider) -> None:
        ws = await workspace(p)
        created = await p.create("endpoint", p.desired("endpoint", endpoint_attrs(), {"workspace": ref(ws)}))
        with pytest.raises(ProviderError) as caught:
            await p.wait("endpoint", created.id, {"workspace_id": ws.id}, "ready", 5)
        assert caught.value.code == "timeout" and "CREATING" in str(caught.value)
        assert sum(clock.sleeps) == pytest.approx(5)

    run(emulated(provision_seconds=100, clock=clock), body)


def test_read_of_missing_objects_and_scopes_is_none() -> None:
    async def body(p: FabricProvider) -> None:
        ws = await workspace(p)
        nobody = "00000000-0000-0000-0000-000000000000"
        assert await p.read("endpoint", nobody, {"workspace_id": ws.id}) is None  # 404
        assert await p.read("endpoint", nobody, {"workspace_id": nobody}) is None  # 400 00010003
        assert await p.read("service_instance", nobody, {"workspace_id": ws.id}) is None
        assert await p.read("model", nobody, {"workspace_id": ws.id}) is None
        assert await p.list("endpoint", {"workspace_id": nobody}) == []
        await p.delete("endpoint", nobody, {"workspace_id": ws.id})

    run(emulated(), body)


# ---------------------------------------------------------------- models


def test_model_version_is_normalised_and_updated_only_when_it_differs() -> None:
    async def body(p: FabricProvider) -> None:
        ws = await workspace(p)
        scope = {"workspace_id": ws.id}
        attrs = {"name": "llm", "description": "a model", "type": "LLM_MODEL", "version": VERSION}
        desired = p.desired("model", attrs, {"workspace": ref(ws)})
        created = await p.create("model", desired)
        assert on_desired_keys(desired, created) == desired
        first_version = created.attributes["version_id"]
        assert isinstance(first_version, str) and first_version

        renamed = await p.update("model", created, {**desired, "description": "same version"})
        assert renamed.attributes["version_id"] == first_version
        assert renamed.attributes["description"] == "same version"

        v2 = {
            "name": "v2",
            "config": {"llm_model_config": {"base_model_type": "llama3", "model_path": "obs://m/v2"}},
        }
        bumped = await p.update("model", renamed, {**desired, "version": v2})
        assert bumped.attributes["version"] == {**v2, "description": ""}
        assert bumped.attributes["version_id"] != first_version
        assert await p.read("model", created.id, scope) == bumped
        assert await p.find("model", "llm", scope) == bumped

        await p.delete("model", created.id, scope)
        assert await p.wait("model", created.id, scope, "gone", 5) is None

    run(emulated(), body)


# ---------------------------------------------------------------- service instances


def test_service_instance_deploy_update_delete() -> None:
    async def body(p: FabricProvider) -> None:
        stack = await serving_stack(p)
        scope = {"workspace_id": stack["ws"].id}
        refs = {"workspace": ref(stack["ws"]), "endpoint": ref(stack["ep"]), "model": ref(stack["model"])}
        desired = p.desired("service_instance", instance_attrs(), refs)
        assert desired["source"] == {
            "id": stack["model"].id,
            "version_id": stack["model"].attributes["version_id"],
        }
        created = await p.create("service_instance", desired)
        ready = await p.wait("service_instance", created.id, scope, "ready", 60)
        assert ready is not None and ready.status == "RUNNING"
        assert on_desired_keys(desired, ready) == desired
        assert "/invocations" in ready.attributes["url"]["address"]
        found = await p.find("service_instance", "svc", scope)  # a brief list item: no config, no url
        assert found is not None and found.id == ready.id and found.status == ready.status
        assert "url" not in found.attributes

        wider = p.desired("service_instance", instance_attrs(name="svc2", high=3), refs)
        updated = await p.update("service_instance", ready, wider)
        settled = await p.wait("service_instance", created.id, scope, "ready", 60)
        assert settled is not None and on_desired_keys(wider, settled) == wider
        assert updated.id == created.id

        await p.delete("service_instance", created.id, scope)
        assert await p.wait("service_instance", created.id, scope, "gone", 60) is None
        assert await p.list("service_instance", scope) == []

    run(emulated(), body)


def test_desired_with_unknown_references() -> None:
    p = emulated()
    unknown = RefValue("workspaces.main", UNKNOWN)
    desired = p.desired(
        "service_instance",
        instance_attrs(),
        {
            "workspace": unknown,
            "endpoint": RefValue("endpoints.e", UNKNOWN),
            "model": RefValue("models.m", UNKNOWN),
        },
    )
    assert desired["workspace_id"] is UNKNOWN and desired["endpoint_id"] is UNKNOWN
    assert desired["source"] == {"id": UNKNOWN, "version_id": UNKNOWN}
    assert desired["config"] == instance_attrs()["config"]

    known_model = RefValue("models.m", "m-1", {"version_id": UNKNOWN})  # a new version is on its way
    desired = p.desired(
        "service_instance",
        instance_attrs(),
        {"workspace": unknown, "endpoint": unknown, "model": known_model},
    )
    assert desired["source"] == {"id": "m-1", "version_id": UNKNOWN}
    assert p.desired("endpoint", {"name": "e", "type": "inference"}, {"workspace": unknown}) == {
        "workspace_id": UNKNOWN, "name": "e", "type": "inference",
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown"):
        asyncio.run(p.create("endpoint", {"workspace_id": "ws-1", "name": UNKNOWN, "type": "inference"}))
    asyncio.run(p.aclose())


def test_desired_rejects_fields_the_kind_does_not_have() -> None:
    p = emulated()
    with pytest.raises(UsageError, match="colour"):
        p.desired("workspace", {"name": "w", "colour": "blue"}, {})
    with pytest.raises(UsageError, match="needs a workspace"):
        p.desired("endpoint", {"name": "e", "type": "inference"}, {})
    with pytest.raises(UsageError, match="replicas"):
        p.desired("service_instance", {"config": {"model_instance_config": {"replicas": 2}}}, {
            "workspace": RefValue("w", "w"), "endpoint": RefValue("e", "e"), "model": RefValue("m", "m"),
        })  # fmt: skip
    asyncio.run(p.aclose())


def test_model_update_compares_the_version_with_the_platform_not_the_record() -> None:
    async def body(p: FabricProvider) -> None:
        ws = await workspace(p)
        desired = p.desired(
            "model", {"name": "llm", "type": "LLM_MODEL", "version": VERSION}, {"workspace": ref(ws)}
        )
        created = await p.create("model", desired)
        v2 = {
            "name": "v2",
            "config": {"llm_model_config": {"base_model_type": "llama3", "model_path": "obs://2"}},
        }
        drifted = await p.update("model", created, {**desired, "version": v2})  # changed out of band
        restored = await p.update("model", created, desired)  # `created` is what state recorded
        assert restored.attributes["version"]["name"] == "v1"
        assert len({created.attributes["version_id"], drifted.attributes["version_id"],
                    restored.attributes["version_id"]}) == 3  # fmt: skip

    run(emulated(), body)


# ---------------------------------------------------------------- errors


def test_wrong_token_is_apig_1002_and_never_shows_the_token() -> None:
    wrong = "wr0ng-secret-token-9d1c"

    async def body(p: FabricProvider) -> None:
        with pytest.raises(ProviderError) as caught:
            await p.list("workspace", {})
        error = caught.value
        assert (error.platform, error.code, error.status) == ("fabric", "APIG.1002", 401)
        assert error.operation == "ListWorkspaces" and not error.retryable
        assert wrong not in str(error) and TOKEN not in str(error)

    run(emulated(token=wrong), body)


def test_platform_validation_error_is_surfaced_with_code_and_message() -> None:
    async def body(p: FabricProvider) -> None:
        ws = await workspace(p)
        desired = p.desired("endpoint", {"name": "e", "type": "quantum"}, {"workspace": ref(ws)})
        with pytest.raises(ProviderError) as caught:
            await p.create("endpoint", desired)
        error = caught.value
        assert (error.code, error.status, error.operation) == ("common.01000001", 400, "CreateEndpoint")
        assert "type must be one of" in error.platform_message
        assert "HTTP 400 common.01000001" in str(error)

        await workspace(p, "taken")
        with pytest.raises(ProviderError) as caught:
            await workspace(p, "taken")
        assert caught.value.code == "common.01000001"

    run(emulated(), body)


def mocked(handler: Callable[[httpx.Request], Any], **kwargs: Any) -> FabricProvider:
    return provider_for(httpx.MockTransport(handler), **kwargs)


def test_failed_status_raises_with_the_objects_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        failed = {
            "id": "ep-1",
            "name": "e",
            "status": "CREATE_FAILED",
            "error_code": "dataartsfabric.00040001",
        }
        failed["error_msg"] = "no capacity in the region"
        return httpx.Response(200, json=failed)

    async def body(p: FabricProvider) -> None:
        with pytest.raises(ProviderError) as caught:
            await p.wait("endpoint", "ep-1", {"workspace_id": "ws-1"}, "ready", 60)
        assert caught.value.code == "dataartsfabric.00040001"
        assert caught.value.platform_message == "no capacity in the region"

    run(mocked(handler, clock=FakeClock()), body)


@pytest.mark.parametrize(
    ("status", "payload", "code", "message", "retryable"),
    [
        (403, {"error": {"code": "403", "message": FORBIDDEN, "title": "Forbidden"}, "error_code": 403,
               "title": "Forbidden"}, "403", FORBIDDEN, False),
        (500, {"error_code": "common.00000500", "error_msg": "internal error"}, "common.00000500",
         "internal error", True),
        (408, {"error_code": "common.00000408", "error_msg": "timeout exception occurred"}, "common.00000408",
         "timeout exception occurred", True),
        (502, "<html>bad gateway</html>", None, "<html>bad gateway</html>", True),
    ],
)  # fmt: skip
def test_error_envelopes(status: int, payload: Any, code: str | None, message: str, retryable: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(payload, str):
            return httpx.Response(status, text=payload)
        return httpx.Response(status, json=payload)

    async def body(p: FabricProvider) -> None:
        with pytest.raises(ProviderError) as caught:
            await p.read("endpoint", "ep-1", {"workspace_id": "ws-1"})
        error = caught.value
        assert (error.code, error.platform_message, error.retryable) == (code, message, retryable)
        assert error.operation == "ShowEndpoint" and not isinstance(error, TransportError)

    run(mocked(handler), body)


def test_transport_failures_become_retryable_transport_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused (sent {request.headers['X-Auth-Token']})", request=request)

    async def body(p: FabricProvider) -> None:
        with pytest.raises(TransportError) as caught:
            await p.list("workspace", {})
        assert caught.value.retryable and caught.value.status is None
        assert TOKEN not in str(caught.value) and "***" in str(caught.value)

    run(mocked(refuse), body)


def test_a_call_without_an_answer_times_out() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200, json={})

    async def body(p: FabricProvider) -> None:
        with pytest.raises(TransportError, match=r"no answer within 0\.05s"):
            await p.read("endpoint", "ep-1", {"workspace_id": "ws-1"})

    run(mocked(hang, timeout=0.05), body)


def test_calls_in_flight_are_bounded() -> None:
    state = {"now": 0, "most": 0}

    async def slow(request: httpx.Request) -> httpx.Response:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return httpx.Response(200, json={"id": request.url.path.rsplit("/", 1)[-1], "name": "e"})

    async def body(p: FabricProvider) -> None:
        reads = await asyncio.gather(
            *(p.read("endpoint", f"ep-{n}", {"workspace_id": "w"}) for n in range(12))
        )
        assert [r.id for r in reads if r] == [f"ep-{n}" for n in range(12)]

    run(mocked(slow, max_in_flight=3), body)
    assert state["most"] == 3


def test_find_refuses_to_guess_between_namesakes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        twins = [{"id": "w-1", "name": "twin"}, {"id": "w-2", "name": "twin"}, {"id": "w-3", "name": "twins"}]
        return httpx.Response(200, json={"total": 3, "workspaces": twins})

    async def body(p: FabricProvider) -> None:
        with pytest.raises(ProviderError) as caught:
            await p.find("workspace", "twin", {})
        assert caught.value.code == "ambiguous_name" and "w-1, w-2" in str(caught.value)
        found = await p.find("workspace", "twins", {})
        assert found is not None and found.id == "w-3"

    run(mocked(handler), body)


def test_create_keeps_the_id_when_the_read_back_fails() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json={"id": "m-1", "version_id": "v-1"})
        return httpx.Response(503, json={"error_code": "common.00000503", "error_msg": "busy"})

    async def body(p: FabricProvider) -> None:
        desired = {"workspace_id": "w-1", "name": "llm", "type": "LLM_MODEL", "version": VERSION}
        live = await p.create("model", desired)
        assert live.id == "m-1" and live.attributes["workspace_id"] == "w-1" and live.name == "llm"

    run(mocked(handler), body)


# ---------------------------------------------------------------- the provider block


def test_embedded_cloud_persists_under_the_state_dir(tmp_path: Path) -> None:
    block = {"url": "embedded", "token": TOKEN, "provision_seconds": 0}

    async def first() -> str:
        p = FabricProvider.from_block(block, state_dir=tmp_path)
        try:
            return (await workspace(p, "kept")).id
        finally:
            await p.aclose()

    async def second() -> Live | None:
        p = build_provider("fabric", block, state_dir=tmp_path)
        try:
            return await p.find("workspace", "kept", {})
        finally:
            await p.aclose()

    kept = asyncio.run(first())
    assert (tmp_path / "emulator" / "fabric.json").is_file()
    found = asyncio.run(second())
    assert found is not None and found.id == kept


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            {"url": "embedded", "token": "t", "ak": "a", "sk": "b"},
            "either `token` or `ak` and `sk`, not both",
        ),
        ({"url": "embedded", "ak": "a"}, "ak needs providers.fabric.sk"),
        ({"url": "embedded", "sk": "b"}, "sk needs providers.fabric.ak"),
        ({"url": "embedded", "token": "t", "project_id": "p"}, "project_id goes with `ak` and `sk`"),
        ({"url": "embedded", "ak": 1, "sk": "b"}, "ak must be a non-empty string"),
        ({"url": "ftp://x"}, "url must be"),
        ({"url": "https://fabric.example.com"}, "token is required"),
        ({"url": "embedded", "timeout": 0}, "timeout must be a positive number"),
        ({"url": "embedded", "regoin": "cn-north-4"}, "unknown key"),
        (
            {"url": "https://fabric.example.com", "token": "t", "provision_seconds": 1},
            "only to `url: embedded`",
        ),
    ],
)
def test_bad_provider_blocks_are_usage_errors(block: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=message):
        build_provider("fabric", block, state_dir=tmp_path)


def test_unknown_platform_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown platform 'openstack'"):
        build_provider("openstack", {}, state_dir=tmp_path)


def test_remote_block_uses_both_hosts(tmp_path: Path) -> None:
    block = {"url": "https://fabric.example.com", "ep_url": "https://fabric-ep.example.com", "token": "t"}
    p = FabricProvider.from_block(block, state_dir=tmp_path)
    assert str(p.control.http.base_url) == "https://fabric.example.com"
    assert str(p.ep.http.base_url) == "https://fabric-ep.example.com"
    assert p.control.http.headers["X-Auth-Token"] == "t"
    asyncio.run(p.aclose())


# ---------------------------------------------------------------- a real server


@pytest.fixture
def served() -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = EmulatorConfig(fabric_token=TOKEN, provision_seconds=0)
    server = uvicorn.Server(
        uvicorn.Config(build_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
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


def test_through_a_served_emulator(served: str, tmp_path: Path) -> None:
    block = {"url": served, "ep_url": served + "/", "token": TOKEN, "poll_interval": 0.05}

    async def body(p: FabricProvider) -> None:
        stack = await serving_stack(p)
        refs = {"workspace": ref(stack["ws"]), "endpoint": ref(stack["ep"]), "model": ref(stack["model"])}
        created = await p.create("service_instance", p.desired("service_instance", instance_attrs(), refs))
        ready = await p.wait("service_instance", created.id, {"workspace_id": stack["ws"].id}, "ready", 10)
        assert ready is not None and ready.status == "RUNNING"

    run(FabricProvider.from_block(block, state_dir=tmp_path), body)


# ---------------------------------------------------------------- declarations for the core


def _sdk_statuses(cls: Any) -> set[str]:
    return {v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)}


def test_status_enums_list_every_status_the_sdks_document() -> None:
    from huaweicloudsdkdataartsfabric.v1.model.endpoint_status import EndpointStatus as SdkEndpointStatus
    from huaweicloudsdkdataartsfabricep.v1.model.status_enum import StatusEnum as SdkInstanceStatus

    from reconciler.providers.fabric import (
        ENDPOINT_LIFECYCLE,
        SERVICE_INSTANCE_LIFECYCLE,
        EndpointStatus,
        ServiceInstanceStatus,
    )

    assert {s.value for s in EndpointStatus} == _sdk_statuses(SdkEndpointStatus)
    assert {s.value for s in ServiceInstanceStatus} == _sdk_statuses(SdkInstanceStatus)
    assert set(ENDPOINT_LIFECYCLE.statuses) == set(EndpointStatus)
    assert set(SERVICE_INSTANCE_LIFECYCLE.statuses) == set(ServiceInstanceStatus)


def test_kind_specs_declare_what_the_platform_returns() -> None:
    from reconciler.providers.base import Phase
    from reconciler.providers.fabric import _KINDS

    endpoint = _KINDS["endpoint"].spec
    assert endpoint.input_only == {"public_access"}  # custom_image_id is in every endpoint answer
    assert endpoint.lifecycle is not None
    assert endpoint.phase("e", Live("e", {}, "FROZEN", "x")) is Phase.STOPPED
    instance = _KINDS["service_instance"].spec
    assert instance.list_omits == {"config", "url"} and instance.change_marker == "update_time"
    assert instance.phase("i", Live("i", {}, "DELETED", "x")) is Phase.GONE
    # UpdateServiceInstance: name, description and max in place; min and the model version replace
    assert {"source.version_id", "config.model_instance_config.resource.min"} <= instance.force_new
    assert "config.model_instance_config.resource.max" not in instance.force_new
    for kind in _KINDS.values():
        heads = {p.split(".")[0] for p in kind.spec.input_only}
        for name in (*kind.fields, *kind.literal_refs):
            places = [name in kind.spec.read_back, name in heads, name in kind.spec.read_only,
                      name in kind.spec.scope]  # fmt: skip
            assert places.count(True) == 1, (kind.spec.name, name, places)


def test_waits_follow_the_lifecycle() -> None:
    from reconciler.providers.fabric import _settled

    def live(status: str) -> Live:
        return Live("e-1", {"error_msg": None}, status, "ep")

    assert _settled("endpoint", "e-1", live("RUNNING"), "ready")
    assert not _settled("endpoint", "e-1", live("UPDATING"), "ready")
    assert not _settled("endpoint", "e-1", live("DELETING"), "gone")
    assert _settled("endpoint", "e-1", live("DELETED"), "gone")
    assert not _settled("service_instance", "i-1", live("PENDING"), "ready")
    with pytest.raises(ProviderError) as stopped:
        _settled("endpoint", "e-1", live("FROZEN"), "ready")
    assert stopped.value.code == "FROZEN"
    with pytest.raises(ProviderError) as unknown:
        _settled("service_instance", "i-1", live("HIBERNATING"), "ready")
    assert unknown.value.code == "unknown_status"
    with pytest.raises(ProviderError):
        _settled("endpoint", "e-1", live("DELETE_FAILED"), "gone")


def test_stack_model_takes_the_walk_through_version_config() -> None:
    """The inference walk-through creates its model with ``base_model_type: ""`` and ``model_path: ""``."""
    from reconciler.stack.models import LlmModelConfig

    config = LlmModelConfig.model_validate({"base_model_type": "", "model_path": ""})
    assert (config.base_model_type, config.model_path) == ("", "")


def test_provider_converges_against_the_platform_as_documented() -> None:
    """Through the SDK-shaped transport nothing is cut, and every read-back field matches desired."""
    from tests.documented.fabric import router
    from tests.documented.shapes import DocumentedTransport

    config = EmulatorConfig(fabric_token=TOKEN, provision_seconds=0, clock=FakeClock())
    transport = DocumentedTransport(httpx.ASGITransport(app=build_app(config)), router)

    async def body(p: FabricProvider) -> None:
        stack = await serving_stack(p)
        scope = {"workspace_id": stack["ws"].id}
        ws_ref = {"workspace": ref(stack["ws"])}
        desired_ep = p.desired("endpoint", {**endpoint_attrs("pub"), "public_access": True}, ws_ref)
        ep = await p.create("endpoint", desired_ep)
        ep = await p.wait("endpoint", ep.id, scope, "ready", 60) or ep
        spec = p.kinds["endpoint"]
        compared = {k: v for k, v in desired_ep.items() if k in spec.read_back}
        assert project(ep.attributes, compared) == compared
        refs = {**ws_ref, "endpoint": ref(stack["ep"]), "model": ref(stack["model"])}
        desired = p.desired("service_instance", instance_attrs(), refs)
        created = await p.create("service_instance", desired)
        ready = await p.wait("service_instance", created.id, scope, "ready", 60)
        assert ready is not None and on_desired_keys(desired, ready) == desired
        listed = await p.list("service_instance", scope)
        assert [item.id for item in listed] == [ready.id]

    run(provider_for(transport), body)
    assert transport.pruned == []
