"""The Model Studio emulator, served on 127.0.0.1, driven by the official ``dashscope`` client.

Both of the client's deployment surfaces are exercised: the 2.x
``dashscope.Client(base_url=..., api_key=...).deployments`` (httpx) and the
1.x ``dashscope.Deployments`` (requests, pointed at the emulator through
``dashscope.base_http_api_url``). Every call must succeed and parse as the
client parses the real platform's answers; a wrong key must fail the way the
platform fails. The reconciler's own provider is run against the same server
over real TCP. Skipped when ``dashscope`` is not installed.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import pytest
import uvicorn
from dashscope import Client
from dashscope.v2 import errors as v2_errors

from reconciler.emulators.modelstudio import ModelStudioSettings, build_modelstudio_app
from reconciler.providers.modelstudio import KIND, ModelStudioProvider

KEY = "sk-official-client-test"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
STARTUP_SECONDS = 10.0
# The 2.x client annotates ``deploy_spec`` as a dict; the platform documents a spec name ("MU1")
# and the client sends the value as given, so a string it is (typed Any here).
MU1: Any = "MU1"
MU5: Any = "MU5"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The emulator served by uvicorn in a background thread; ``http://127.0.0.1:PORT/api/v1``."""
    app = build_modelstudio_app(ModelStudioSettings(api_key=KEY, provision_seconds=0))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))  # the port is ours before the server starts: no race
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"the emulator did not start within {STARTUP_SECONDS:g}s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        server.should_exit = True
        thread.join(STARTUP_SECONDS)
        listener.close()


@pytest.fixture
def client(base_url: str) -> Iterator[Client]:
    with Client(api_key=KEY, base_url=base_url, max_retries=0, timeout=10) as official:
        yield official


# ---------------------------------------------------------------- the 2.x client


def test_v2_create_get_list_scale_delete(client: Client) -> None:
    deployments = client.deployments
    created = deployments.create(
        model="qwen3-8b", capacity=4, plan="mu", deploy_spec=MU1, billing_method="POST_PAY", suffix="v2a"
    )
    assert not created.is_error and created.request_id
    assert re.fullmatch(r"qwen3-8b-[0-9a-f]{8}-v2a", created.deployed_model or "")
    assert (created.model, created.status, created.capacity, created.base_capacity) == (
        "qwen3-8b",
        "PENDING",
        4,
        2,  # seed 002, China (Beijing): qwen3-8b MU1 x 2
    )
    assert TIME.fullmatch(created.created_at or "") and created.charge_type == "post_paid"
    dm = created.deployed_model
    assert dm is not None

    got = deployments.get(dm)
    assert (got.status, got.ready_capacity, got.model) == ("RUNNING", 4, "qwen3-8b")
    assert (got.model_extra or {})["model_unit_spec"] == "MU1"  # per-plan fields ride along as extras

    listed = deployments.list(page_no=1, page_size=10)
    assert listed.total_count >= 1 and (listed.page_no, listed.page_size) == (1, 10)
    assert dm in [d.deployed_model for d in listed.deployments]

    scaled = deployments.scale(dm, capacity=8)
    assert (scaled.status, scaled.capacity) == ("UPDATING", 8)
    assert deployments.get(dm).status == "RUNNING"

    deleted = deployments.delete(dm)
    assert deleted.status == "DELETING" and not deleted.is_error
    with pytest.raises(v2_errors.NotFoundError) as gone:
        deployments.get(dm)
    assert (gone.value.status_code, gone.value.code) == (404, "NotFound")
    assert gone.value.message == f"Model: {dm} not found!"


def test_v2_stream_events_parse(client: Client) -> None:
    created = client.deployments.create(
        model="qwen3-8b", capacity=1, plan="mu", deploy_spec=MU5, billing_method="POST_PAY", suffix="v2s"
    )
    assert created.deployed_model is not None
    events = list(client.deployments.stream_events(created.deployed_model))
    assert len(events) == 1 and not events[0].is_error
    assert (
        isinstance(events[0].output, dict)
        and events[0].output["output"]["deployed_model"] == created.deployed_model
    )
    client.deployments.delete(created.deployed_model)


def test_v2_a_wrong_key_fails_as_the_platform_fails(base_url: str) -> None:
    stranger = Client(api_key="sk-wrong", base_url=base_url, max_retries=0, timeout=10)
    with stranger, pytest.raises(v2_errors.AuthenticationError) as refused:
        stranger.deployments.list()
    assert (refused.value.status_code, refused.value.code) == (401, "InvalidApiKey")
    assert refused.value.message == "Invalid API-key provided."


def test_v2_refusals_map_to_the_client_errors(client: Client) -> None:
    with pytest.raises(v2_errors.BadRequestError) as invalid:
        client.deployments.create(
            model="qwen3-8b", capacity=5, plan="mu", deploy_spec=MU1, billing_method="POST_PAY"
        )
    assert invalid.value.code == "InvalidParameter"
    assert invalid.value.message == (
        "Invalid capacity (5), capacity must be larger than or equal to 0 "
        "and multiples of 2 and less than 1000!"
    )
    with pytest.raises(v2_errors.NotFoundError):
        client.deployments.create(model="qwen-none", capacity=1)
    first = client.deployments.create(model="emo", capacity=1)
    with pytest.raises(v2_errors.APIStatusError) as conflict:  # 409 has no class of its own in the client
        client.deployments.create(model="emo", capacity=1)
    assert (conflict.value.status_code, conflict.value.code) == (409, "Conflict")
    assert (
        conflict.value.message
        == f"Deployed model {first.deployed_model} already exists, please specify a suffix."
    )
    assert first.deployed_model is not None
    client.deployments.delete(first.deployed_model)


# ---------------------------------------------------------------- the 1.x client


def test_v1_deployments_call_get_list_scale_delete(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", base_url)
    Deployments = dashscope.Deployments
    created = Deployments.call(model="emo", capacity=1, suffix="legacy1", api_key=KEY)
    assert created.status_code == 200 and created.output is not None
    assert re.fullmatch(r"emo-[0-9a-f]{8}-legacy1", created.output.deployed_model)
    assert (created.output.status, created.output.base_capacity) == ("PENDING", 1)
    dm = created.output.deployed_model

    got = Deployments.get(dm, api_key=KEY)
    assert (got.status_code, got.output.status, got.output.ready_capacity) == (200, "RUNNING", 1)

    listed = Deployments.list(page_no=1, page_size=10, api_key=KEY)
    assert listed.status_code == 200 and listed.output.total >= 1
    assert dm in [d.deployed_model for d in listed.output.deployments]

    scaled = Deployments.scale(dm, capacity=2, api_key=KEY)
    assert (scaled.status_code, scaled.output.capacity, scaled.output.status) == (200, 2, "UPDATING")

    deleted = Deployments.delete(dm, api_key=KEY)
    assert (deleted.status_code, deleted.output.status) == (200, "DELETING")
    gone = Deployments.get(dm, api_key=KEY)
    assert (gone.status_code, gone.code) == (404, "NotFound")


def test_v1_a_wrong_key_fails_as_the_platform_fails(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashscope, "base_http_api_url", base_url)
    refused = dashscope.Deployments.list(api_key="sk-wrong")
    assert (refused.status_code, refused.code, refused.message) == (
        401,
        "InvalidApiKey",
        "Invalid API-key provided.",
    )


# ---------------------------------------------------------------- the provider over real TCP


def test_the_provider_reaches_a_served_emulator(base_url: str, tmp_path: Path) -> None:
    block = {"url": base_url, "api_key": KEY, "poll_interval": 0.05, "wait_timeout": 10}

    async def go() -> None:
        provider = ModelStudioProvider.from_block(block, state_dir=tmp_path, environ={})
        try:
            desired = {"model_name": "qwen3-32b", "name": "served", "plan": "mu", "deploy_spec": "MU1"}
            created = await provider.create(KIND, {**desired, "capacity": 4, "suffix": "tcp1"})
            ready = await provider.wait(KIND, created.id, {}, "ready", 10)
            assert ready is not None and ready.attributes["capacity"] == 4
            found = await provider.find(KIND, "qwen3-32b/tcp1", {})
            assert found is not None and found.id == created.id
            await provider.delete(KIND, created.id, {})
            assert await provider.wait(KIND, created.id, {}, "gone", 10) is None
        finally:
            await provider.aclose()

    asyncio.run(go())
