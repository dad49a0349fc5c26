"""The ZStack provider against the in-process emulator (and, for failure shapes, a mock transport).

Every test is a plain function that runs its coroutine with :func:`asyncio.run`.
The emulator and the provider share a :class:`FakeClock`; the provider's
``sleep`` advances it, so jobs and lifecycles move exactly as far as the
provider waits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.emulators.store import Store
from reconciler.emulators.zstack import (
    BROKEN_MODEL_UUID,
    MODEL_CENTER_UUID,
    ZONE_1_UUID,
    ZONE_2_UUID,
    ZStackSettings,
    build_zstack_app,
)
from reconciler.errors import ProviderError, UsageError
from reconciler.providers.base import UNKNOWN, Live, Provider, RefValue
from reconciler.providers.zstack import ZStackProvider
from reconciler.providers.zstack_session import password_digest, zstack_client, zstack_retry_on
from reconciler.refresh import find_untracked

PASSWORD = "pa55-under-test-9c1d"
SERVICE = "model_service"
GROUP = "model_service_instance_group"
LOGIN = "/zstack/v1/accounts/login"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """An httpx event hook keeping every request sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path == path)

    def starts(self, path: str) -> list[int]:
        return sorted(
            int(r.url.params["start"]) for r in self.requests if r.method == "GET" and r.url.path == path
        )


def provider_for(
    transport: httpx.AsyncBaseTransport,
    *,
    password: str = PASSWORD,
    clock: FakeClock | None = None,
    recorder: Recorder | None = None,
    wait_timeout: float = 600.0,
) -> ZStackProvider:
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [recorder]} if recorder is not None else {}
    clock = clock or FakeClock()
    api = zstack_client(
        "http://zstack.test/zstack/v1",
        password=password,
        transport=transport,
        event_hooks=hooks,
        sleep=clock.sleep,
    )
    return ZStackProvider(
        api, account="admin", password=password, zone_uuid=ZONE_1_UUID, model_center_uuid=MODEL_CENTER_UUID,
        wait_timeout=wait_timeout, poll_interval=1.0, clock=clock, sleep=clock.sleep,
    )  # fmt: skip


def emulated(
    *, provision_seconds: float = 0, clock: FakeClock | None = None, session_ttl: float = 7200, **kwargs: Any
) -> ZStackProvider:
    clock = clock or FakeClock()
    settings = ZStackSettings(
        password=PASSWORD, provision_seconds=provision_seconds, session_ttl_seconds=session_ttl, clock=clock
    )
    app = build_zstack_app(settings, Store(clock=clock))
    return provider_for(httpx.ASGITransport(app=app), clock=clock, **kwargs)


def run(provider: ZStackProvider, body: Callable[[ZStackProvider], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await body(provider)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def service_attrs(name: str = "chat", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "yaml": "model: qwen",
        "requestCpu": 4,
        "requestMemory": 8 * 1024**3,
        "installPath": "/opt/chat",
        "startCommand": "python serve.py",
        **fields,
    }


def group_attrs(name: str = "chat-group", **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "Container", **fields}


def ref(live: Live) -> dict[str, RefValue]:
    return {"model_service": RefValue("deployments.chat", live.id, live.attributes)}


async def add_service(p: ZStackProvider, name: str = "chat", **fields: Any) -> Live:
    return await p.create(SERVICE, p.desired(SERVICE, service_attrs(name, **fields), {}))


# ---------------------------------------------------------------- the contract


def test_zstack_provider_satisfies_the_protocol_and_embeds_its_emulator(tmp_path: Path) -> None:
    block = {"url": "embedded", "provision_seconds": 0}
    provider = ZStackProvider.from_block(block, state_dir=tmp_path)
    assert isinstance(provider, Provider)
    assert set(provider.kinds) == {SERVICE, GROUP}
    assert provider.kinds[GROUP].asynchronous and not provider.kinds[SERVICE].asynchronous
    assert (
        "installPath" in provider.kinds[SERVICE].force_new and "zoneUuid" in provider.kinds[GROUP].force_new
    )
    assert provider.scope_of(GROUP, {}) == {}

    async def body(p: ZStackProvider) -> Live:
        service = await add_service(p)
        return await p.create(GROUP, p.desired(GROUP, group_attrs(), ref(service)))

    group = run(provider, body)
    assert provider.desired(GROUP, group_attrs(), ref(group))["zoneUuid"] == ZONE_1_UUID  # embedded default
    assert "zoneUuid" not in group.attributes  # the group view (Go SDK) does not carry it
    cloud = json.loads((tmp_path / "emulator" / "zstack.json").read_text())
    assert ZONE_1_UUID in json.dumps(cloud)  # the deploy sent the default zone
    again = ZStackProvider.from_block(block, state_dir=tmp_path)  # a later CLI run sees the same cloud
    assert run(again, lambda p: p.read(GROUP, group.id, {})) is not None


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        ({"url": "embedded", "colour": "red"}, "unknown key(s) colour"),
        ({"url": "ftp://zstack:8080"}, "must be `embedded` or http(s)"),
        ({"url": "http://zstack:8080", "account": "admin"}, "`account` and `password` are required"),
        ({"url": "http://zstack:8080", "account": "a", "password": "p", "provision_seconds": 0}, "only to"),
        ({"url": "embedded", "wait_timeout": 0}, "wait_timeout must be a positive number"),
        ({"url": "embedded", "zone_uuid": 7}, "zone_uuid must be a non-empty string"),
    ],
)
def test_bad_blocks_are_usage_errors(tmp_path: Path, block: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError, match=r"providers\.zstack") as caught:
        ZStackProvider.from_block(block, state_dir=tmp_path)
    assert fragment in str(caught.value)


def test_a_real_url_gets_the_api_prefix_once(tmp_path: Path) -> None:
    for url in ("http://zstack:8080", "http://zstack:8080/", "http://zstack:8080/zstack/v1"):
        p = ZStackProvider.from_block({"url": url, "account": "a", "password": "p"}, state_dir=tmp_path)
        assert str(p.session.api.http.base_url) == "http://zstack:8080/zstack/v1/"
        asyncio.run(p.aclose())


def test_desired_checks_fields_and_fills_defaults() -> None:
    p = emulated()
    desired = p.desired(SERVICE, service_attrs(type="FineTune"), {})
    assert desired["modelCenterUuid"] == MODEL_CENTER_UUID and desired["type"] == "FineTune"
    pending = RefValue("deployments.chat", UNKNOWN)
    group = p.desired(
        GROUP, group_attrs(environmentVariables={"N": 2, "DEBUG": True}), {"model_service": pending}
    )
    assert group["modelServiceUuid"] is UNKNOWN and group["zoneUuid"] == ZONE_1_UUID
    assert group["environmentVariables"] == {"N": "2", "DEBUG": "true"}
    with pytest.raises(UsageError, match="unknown field"):
        p.desired(SERVICE, service_attrs(colour="red"), {})
    with pytest.raises(UsageError, match=r"missing required field.*installPath"):
        p.desired(SERVICE, {k: v for k, v in service_attrs().items() if k != "installPath"}, {})
    with pytest.raises(UsageError, match="source must be one of"):
        p.desired(SERVICE, service_attrs(source="GitHub"), {})
    with pytest.raises(UsageError, match="requestCpu must be a whole number"):
        p.desired(SERVICE, service_attrs(requestCpu="4"), {})
    with pytest.raises(UsageError, match="modelServiceUuid"):
        p.desired(GROUP, group_attrs(), {})
    with pytest.raises(ValueError, match="still unknown"):
        run(p, lambda q: q.create(GROUP, group))


# ---------------------------------------------------------------- model services


def test_model_service_create_read_find_update_delete() -> None:
    async def body(p: ZStackProvider) -> None:
        created = await add_service(p, description="first")
        assert len(created.id) == 32 and created.status is None and created.name == "chat"
        assert (
            created.attributes["requestCpu"] == 4
            and created.attributes["modelCenterUuid"] == MODEL_CENTER_UUID
        )
        assert (await p.read(SERVICE, created.id, {})) == created
        assert (await p.find(SERVICE, "chat", {})) == created
        assert await p.find(SERVICE, "nothing", {}) is None
        want = p.desired(SERVICE, service_attrs(description="second", requestCpu=8), {})
        updated = await p.update(SERVICE, created, want)
        assert updated.attributes["description"] == "second" and updated.attributes["requestCpu"] == 8
        await p.delete(SERVICE, created.id, {})
        assert await p.read(SERVICE, created.id, {}) is None
        await p.delete(SERVICE, created.id, {})  # already gone: not an error
        assert await p.wait(SERVICE, created.id, {}, "gone", 10) is None

    run(emulated(), body)


def test_list_reads_every_page_concurrently() -> None:
    recorder = Recorder()

    async def body(p: ZStackProvider) -> None:
        await asyncio.gather(*(add_service(p, f"svc-{i:03d}") for i in range(230)))
        before = len(recorder.requests)
        listed = await p.list(SERVICE, {})
        assert sorted(live.name or "" for live in listed) == [f"svc-{i:03d}" for i in range(230)]
        assert len(recorder.requests) - before == 3  # start=0, then 100 and 200 together
        assert recorder.starts("/zstack/v1/ai/model-services") == [0, 100, 200]
        assert recorder.count("PUT", LOGIN) == 1

    run(emulated(recorder=recorder), body)


def test_find_refuses_to_guess_between_namesakes_and_reads_odd_names() -> None:
    async def body(p: ZStackProvider) -> None:
        await add_service(p, "twin")
        await add_service(p, "twin")
        with pytest.raises(ProviderError) as caught:
            await p.find(SERVICE, "twin", {})
        assert caught.value.code == "ambiguous_name"
        odd = await add_service(p, "a!=b")  # would read as another operator: found by listing
        assert (await p.find(SERVICE, "a!=b", {})) == odd

    run(emulated(), body)


# ---------------------------------------------------------------- instance groups


def test_instance_group_deploy_wait_update_and_delete_with_the_clock() -> None:
    clock = FakeClock()

    async def body(p: ZStackProvider) -> None:
        service = await add_service(p)
        start = clock.now
        want = p.desired(
            GROUP, group_attrs(zoneUuid=ZONE_2_UUID, environmentVariables={"A": "1"}), ref(service)
        )
        group = await p.create(GROUP, want)
        assert group.status == "ServiceBootingUp"  # the deploy job ends when the instances boot
        assert group.attributes["modelServiceUuid"] == service.id and "zoneUuid" not in group.attributes
        ready = await p.wait(GROUP, group.id, {}, "ready", 300)
        assert ready is not None and ready.status == "Running"
        assert clock.now - start >= 20  # two lifecycle steps of 10 fake seconds
        assert ready.attributes["instances"][0]["url"].startswith("http://")
        assert (await p.find(GROUP, "chat-group", {})) == ready
        assert [g.id for g in await p.list(GROUP, {})] == [group.id]
        renamed = p.desired(
            GROUP, group_attrs("renamed", zoneUuid=ZONE_2_UUID, environmentVariables={"A": "2"}), ref(service)
        )
        updated = await p.update(GROUP, ready, renamed)
        assert updated.name == "renamed" and "environmentVariables" not in updated.attributes
        assert (await p.wait(GROUP, group.id, {}, "ready", 300)) is not None
        with pytest.raises(ProviderError) as caught:  # the template is still in use
            await p.delete(SERVICE, service.id, {})
        assert caught.value.code == "SYS.1006" and caught.value.operation == "DeleteModelService"
        assert not caught.value.retryable and group.id in str(caught.value)
        await p.delete(GROUP, group.id, {})
        assert await p.wait(GROUP, group.id, {}, "gone", 300) is None
        await p.delete(SERVICE, service.id, {})

    run(emulated(provision_seconds=10, clock=clock), body)


def test_a_failed_group_raises_while_waiting() -> None:
    async def body(p: ZStackProvider) -> None:
        service = await add_service(p)
        group = await p.create(
            GROUP, p.desired(GROUP, group_attrs(modelUuid=BROKEN_MODEL_UUID), ref(service))
        )
        with pytest.raises(ProviderError) as caught:
            await p.wait(GROUP, group.id, {}, "ready", 300)
        assert caught.value.code == "Failed" and group.id in str(caught.value)

    run(emulated(provision_seconds=5), body)


def test_wait_is_bounded_by_its_timeout() -> None:
    async def body(p: ZStackProvider) -> None:
        service = await add_service(p)
        group = await p.create(GROUP, p.desired(GROUP, group_attrs(), ref(service)))
        with pytest.raises(ProviderError, match="did not become ready within 30s") as caught:
            await p.wait(GROUP, group.id, {}, "ready", 30)
        assert caught.value.code == "timeout"

    run(emulated(provision_seconds=100), body)


# ---------------------------------------------------------------- sessions and failures


def test_an_expired_session_is_renewed_once_and_the_call_repeated() -> None:
    clock, recorder = FakeClock(), Recorder()

    async def body(p: ZStackProvider) -> None:
        service = await add_service(p)
        assert recorder.count("PUT", LOGIN) == 1
        clock.now += 101
        reads = await asyncio.gather(*(p.read(SERVICE, service.id, {}) for _ in range(5)))
        assert all(r == service for r in reads)
        assert recorder.count("PUT", LOGIN) == 2 and p.session.logins == 2  # one extra login for all five
        clock.now += 101
        second = await add_service(p, "second")  # an asynchronous API: refused through its job, then resent
        assert second.name == "second" and recorder.count("PUT", LOGIN) == 3
        assert [s.name for s in await p.list(SERVICE, {})].count("second") == 1

    run(emulated(clock=clock, session_ttl=100, recorder=recorder), body)


def test_a_wrong_password_is_reported_without_the_password() -> None:
    provider = emulated(password="not-the-password")
    with pytest.raises(ProviderError) as caught:
        run(provider, lambda p: p.list(SERVICE, {}))
    error = caught.value
    assert error.code == "ID.1000" and error.operation == "LogInByAccount" and not error.retryable
    assert "not-the-password" not in str(error) and password_digest("not-the-password") not in str(error)
    assert "wrong account name or password" in str(error)


def test_a_failed_job_is_surfaced_with_its_code() -> None:
    async def body(p: ZStackProvider) -> None:
        want = p.desired(SERVICE, service_attrs(modelCenterUuid="a" * 32), {})
        with pytest.raises(ProviderError) as caught:
            await p.create(SERVICE, want)
        error = caught.value
        assert (error.code, error.status, error.operation) == ("SYS.1007", 503, "AddModelService")
        assert "ModelCenterVO" in str(error) and not error.retryable

    run(emulated(), body)


def test_job_polling_is_bounded_and_rides_out_transport_errors() -> None:
    clock = FakeClock()
    polls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == LOGIN:
            return httpx.Response(200, json={"inventory": {"uuid": "1" * 32}})
        if request.url.path.endswith("/api-jobs/" + "9" * 32):
            polls.append(request.url.path)
            if len(polls) == 2:
                raise httpx.ConnectError("reset")
            return httpx.Response(202)
        location = "http://10.0.0.1:8080/zstack/v1/api-jobs/" + "9" * 32  # an internal host: not used
        return httpx.Response(202, json={"location": location})

    provider = provider_for(httpx.MockTransport(handler), clock=clock, wait_timeout=60)
    with pytest.raises(ProviderError, match="did not finish within 60s") as caught:
        run(provider, lambda p: p.delete(SERVICE, "2" * 32, {}))
    assert caught.value.code == "timeout" and caught.value.operation == "DeleteModelService"
    assert 10 < len(polls) < 100 and clock.now - 1_700_000_000.0 == pytest.approx(60)


def test_update_refused_in_the_seed_envelope_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == LOGIN:
            return httpx.Response(200, json={"inventory": {"uuid": "1" * 32}})
        error = {
            "code": "SYS.1007",
            "description": "One or more API argument is invalid",
            "details": "bad name",
        }
        return httpx.Response(200, json={"success": False, "error": error})

    live = Live(id="3" * 32, attributes={"name": "x"})
    provider = provider_for(httpx.MockTransport(handler))
    with pytest.raises(ProviderError, match="bad name") as caught:
        run(provider, lambda p: p.update(SERVICE, live, {"name": "y"}))
    assert caught.value.code == "SYS.1007"


def test_the_password_travels_only_as_its_digest() -> None:
    recorder = Recorder()
    run(emulated(recorder=recorder), lambda p: p.list(SERVICE, {}))
    login = next(r for r in recorder.requests if r.url.path == LOGIN)
    assert PASSWORD.encode() not in login.content
    assert hashlib.sha512(PASSWORD.encode()).hexdigest().encode() in login.content
    assert all(
        r.headers["Authorization"].startswith("OAuth ") for r in recorder.requests if r.url.path != LOGIN
    )


def zstack_answer(status: int, code: str | None = None) -> httpx.Response:
    body = {"error": {"code": code, "description": "d", "details": "x"}} if code else None
    return httpx.Response(status, json=body) if body else httpx.Response(status, text="proxy says no")


@pytest.mark.parametrize(
    ("response", "transient"),
    [
        (zstack_answer(503, "SYS.1007"), False),
        (zstack_answer(503, "SYS.1006"), False),
        (zstack_answer(503, "ID.1001"), False),
        (zstack_answer(503, "ID.1000"), False),
        (zstack_answer(503, "SYS.1000"), True),
        (zstack_answer(503, "SYS.1001"), True),
        (zstack_answer(429, "SYS.1000"), True),
        (zstack_answer(502), True),
        (zstack_answer(400), False),
        (zstack_answer(404), False),
    ],
)
def test_retry_on_tells_transient_failures_from_final_ones(response: httpx.Response, transient: bool) -> None:
    assert zstack_retry_on(response) is transient


def test_a_transient_poll_failure_is_retried_and_a_deploy_is_never_resent() -> None:
    sent: list[str] = []
    job = "7" * 32

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        if request.url.path == LOGIN:
            return httpx.Response(200, json={"inventory": {"uuid": "1" * 32}})
        if request.method == "PUT" and request.url.path.endswith("/actions"):
            raise httpx.ReadError("connection reset after the request was sent")
        if request.url.path.endswith(f"/api-jobs/{job}"):
            if sent.count(f"GET {request.url.path}") == 1:
                return zstack_answer(503, "SYS.1000")  # the poll itself failed: asked again
            return httpx.Response(200, json={"inventory": {"uuid": "5" * 32, "name": "chat"}})
        return httpx.Response(202, json={"location": f"http://zstack.test/zstack/v1/api-jobs/{job}"})

    async def body(p: ZStackProvider) -> None:
        created = await p.create(SERVICE, p.desired(SERVICE, service_attrs(), {}))
        assert created.id == "5" * 32
        want = p.desired(GROUP, group_attrs(), {"model_service": RefValue("x.y", created.id)})
        with pytest.raises(ProviderError) as caught:
            await p.create(GROUP, want)
        assert caught.value.retryable and caught.value.operation == "DeployModelService"

    run(provider_for(httpx.MockTransport(handler)), body)
    assert sum(1 for line in sent if line.startswith("PUT") and line.endswith("/actions")) == 1


def test_a_lost_create_is_found_by_its_resource_uuid_and_never_by_a_namesake() -> None:
    """The journaled token is the resourceUuid: recovery reads that uuid, not the name someone else uses."""
    mine, theirs = "a" * 32, "b" * 32

    async def body(p: ZStackProvider) -> None:
        other = await p.create(SERVICE, p.desired(SERVICE, service_attrs("chat"), {}), token=theirs)
        assert other.id == theirs
        assert await find_untracked(p, SERVICE, "chat", {}, set(), token=mine) is None  # the namesake stays
        made = await p.create(SERVICE, p.desired(SERVICE, service_attrs("chat"), {}), token=mine)
        assert made.id == mine
        found = await find_untracked(p, SERVICE, "chat", {}, set(), token=mine)
        assert found is not None and found.id == mine
        group = await p.create(GROUP, p.desired(GROUP, group_attrs(), ref(made)), token="c" * 32)
        assert group.id == "c" * 32

    run(emulated(), body)


def test_request_bodies_as_the_go_sdk_and_seed_003_send_them() -> None:
    """Add and Deploy wrap their fields in ``params`` with the client token as ``resourceUuid``
    (Go SDK AddModelServiceParam, DeployModelServiceParam); UpdateModelService sends them flat,
    as seed 003's example does (the Go SDK wraps them: the page is followed)."""
    recorder = Recorder()

    async def body(p: ZStackProvider) -> None:
        service = await p.create(SERVICE, p.desired(SERVICE, service_attrs(), {}), token="5" * 32)
        group = await p.create(GROUP, p.desired(GROUP, group_attrs(), ref(service)), token="6" * 32)
        assert (service.id, group.id) == ("5" * 32, "6" * 32)
        await p.update(SERVICE, service, p.desired(SERVICE, service_attrs(description="new"), {}))

    run(emulated(recorder=recorder), body)
    sent = {(r.method, r.url.path): json.loads(r.content) for r in recorder.requests if r.content}
    add = sent[("POST", "/zstack/v1/ai/model-services")]
    assert list(add) == ["params"] and add["params"]["resourceUuid"] == "5" * 32
    deploy = sent[("PUT", f"/zstack/v1/ai/model-services/{'5' * 32}/actions")]
    assert list(deploy) == ["params"] and deploy["params"]["resourceUuid"] == "6" * 32
    assert deploy["params"]["zoneUuid"] == ZONE_1_UUID and deploy["params"]["name"] == "chat-group"
    update = sent[("PUT", f"/zstack/v1/ai/model-services/{'5' * 32}")]
    assert update["description"] == "new" and "params" not in update and "updateModelService" not in update


def test_update_model_service_answered_with_a_job_is_followed() -> None:
    """Seed 003 says synchronous; a platform answering 202 with a job location is polled to its result."""
    uuid, job = "7" * 32, "8" * 32
    polls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == LOGIN:
            return httpx.Response(200, json={"inventory": {"uuid": "1" * 32}})
        if request.url.path == f"/zstack/v1/ai/model-services/{uuid}" and request.method == "PUT":
            return httpx.Response(202, json={"location": f"http://mn.internal/zstack/v1/api-jobs/{job}"})
        assert request.url.path == f"/zstack/v1/api-jobs/{job}", request.url.path
        polls.append(request.url.path)
        if len(polls) < 3:
            return httpx.Response(202)
        inventory = {"uuid": uuid, "name": "chat", "description": "by job", "requestCpu": 2}
        return httpx.Response(200, json={"inventory": inventory})

    live = Live(id=uuid, attributes={"name": "chat", "description": "old"})
    updated = run(
        provider_for(httpx.MockTransport(handler)),
        lambda p: p.update(SERVICE, live, {"description": "by job"}),
    )
    assert updated.attributes["description"] == "by job" and updated.attributes["requestCpu"] == 2
    assert len(polls) == 3  # 202, 202, then the result


def test_group_statuses_map_to_phases_and_an_unknown_one_is_an_error() -> None:
    from reconciler.providers.base import Phase
    from reconciler.providers.zstack_schema import GROUP_LIFECYCLE, GroupStatus

    phases = {status.value: GROUP_LIFECYCLE.statuses[status] for status in GroupStatus}
    assert phases == {
        "Deploying": Phase.IN_PROGRESS,
        "ServiceBootingUp": Phase.IN_PROGRESS,
        "Running": Phase.READY,
        "Failed": Phase.FAILED,
        "Deleting": Phase.DELETING,
    }
    provider = emulated()
    booting = Live(id="9" * 32, attributes={}, status="ServiceBootingUp")
    assert provider.settled(GROUP, booting.id, booting, "ready") is False
    with pytest.raises(ProviderError) as caught:
        provider.settled(GROUP, booting.id, Live(id=booting.id, attributes={}, status="Hibernating"), "ready")
    assert caught.value.code == "unknown_status" and "Hibernating" in str(caught.value)
    service = Live(id="a" * 32, attributes={"name": "chat"})
    assert provider.settled(SERVICE, service.id, service, "ready") is True  # no status: present is ready
    run(provider, lambda p: asyncio.sleep(0))
