"""The Model Studio provider against the emulator, in-process, on a fake clock.

The provider's ``sleep`` advances the emulator's clock, so waits are exact and instant.
Paging and odd platform answers are checked against small ``httpx.MockTransport`` handlers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from reconciler.emulators.modelstudio import DEPLOYMENTS, ModelStudioSettings, build_modelstudio_app
from reconciler.errors import ProviderError, TransportError, UsageError
from reconciler.planner import diff_attributes
from reconciler.providers.base import UNKNOWN, Provider
from reconciler.providers.http import ApiClient
from reconciler.providers.modelstudio import (
    KIND,
    KINDS,
    ModelStudioProvider,
    default_suffix,
    modelstudio_error,
    suffix_of,
)

KEY = "sk-provider-test"
T = TypeVar("T")
MU = {"model_name": "qwen3-8b", "name": "chat", "plan": "mu", "deploy_spec": "MU1", "capacity": 4}
PTU = {"model_name": "qwen-flash-2025-07-28", "name": "flash", "plan": "ptu"}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class World:
    """An emulator and a provider sharing one fake clock; ``sleep`` moves that clock."""

    def __init__(self, provision_seconds: float = 10, key: str = KEY) -> None:
        self.now = 1_750_158_038.0
        self.sleeps: list[float] = []
        settings = ModelStudioSettings(api_key=KEY, provision_seconds=provision_seconds, clock=self.clock)
        self.app = build_modelstudio_app(settings)
        http = httpx.AsyncClient(
            base_url="http://modelstudio.test/api/v1",
            transport=httpx.ASGITransport(app=self.app),
            headers={"Authorization": f"Bearer {key}"},
        )
        client = ApiClient(http, platform="modelstudio", error_parser=modelstudio_error, secrets=(key,))
        self.provider = ModelStudioProvider(client, poll_interval=2.0, clock=self.clock, sleep=self.sleep)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def stored(self, deployed_model: str) -> dict[str, Any]:
        objects: dict[str, dict[str, Any]] = self.app.state.store.collection(DEPLOYMENTS)
        return objects[deployed_model]


def mocked(
    handler: Callable[[httpx.Request], httpx.Response], backoffs: list[float] | None = None
) -> ModelStudioProvider:
    """A provider over ``handler``; the client's retry backoffs are recorded in ``backoffs``, not slept."""

    async def sleep(seconds: float) -> None:
        (backoffs if backoffs is not None else []).append(seconds)

    http = httpx.AsyncClient(base_url="http://mock/api/v1", transport=httpx.MockTransport(handler))
    client = ApiClient(
        http, platform="modelstudio", error_parser=modelstudio_error, secrets=(KEY,), sleep=sleep
    )
    return ModelStudioProvider(client, poll_interval=0.01)


def deployment(number: int, **extra: Any) -> dict[str, Any]:
    return {
        "deployed_model": f"qwen3-8b-{number:08x}",
        "model_name": "qwen3-8b",
        "status": "RUNNING",
        **extra,
    }


def changes(desired: dict[str, Any], live: Any) -> tuple[Any, ...]:
    """The plan's diff of ``live`` against ``desired`` (input-only fields taken from what was sent)."""
    return diff_attributes(desired, KINDS[KIND].with_inputs(live.attributes, desired), KINDS[KIND])


async def settled(world: World, desired: dict[str, Any]) -> tuple[Any, Any]:
    provider = world.provider
    want = provider.desired(KIND, desired, {})
    created = await provider.create(KIND, want)
    ready = await provider.wait(KIND, created.id, {}, "ready", 600)
    return want, ready


# ---------------------------------------------------------------- the pure half


def test_it_is_a_provider_with_one_asynchronous_listable_kind() -> None:
    assert isinstance(World().provider, Provider)
    spec = KINDS[KIND]
    assert spec.asynchronous and spec.listable and spec.updatable
    assert {"model_name", "plan", "deploy_spec", "suffix", "name", "billing_method"} <= spec.force_new
    assert not {"capacity", "ptu_capacity", "rpm_limit", "tpm_limit"} & spec.force_new
    assert {"deployed_model", "status", "ready_capacity"} <= spec.read_only


def test_desired_keeps_the_fields_the_stack_sets() -> None:
    provider = World().provider
    attrs = {**MU, "rpm_limit": None, "ptu_capacity": {"input_tpm": 20000, "output_tpm": None}}
    assert provider.desired(KIND, attrs, {}) == {**MU, "ptu_capacity": {"input_tpm": 20000}}
    assert provider.scope_of(KIND, {}) == {}
    with pytest.raises(UsageError, match="unknown field\\(s\\) replicas; allowed: model_name"):
        provider.desired(KIND, {**MU, "replicas": 2}, {})
    with pytest.raises(UsageError, match="ptu_capacity: unknown field\\(s\\) speed"):
        provider.desired(KIND, {**PTU, "ptu_capacity": {"speed": 1}}, {})
    with pytest.raises(ValueError, match="no kind 'endpoint'"):
        provider.desired("endpoint", MU, {})


@pytest.mark.parametrize(
    ("deployed", "model", "suffix"),
    [
        ("emo-35b3f106-sample01", "emo", "sample01"),
        ("qwen3-8b-0a1b2c3d", "qwen3-8b", None),
        ("qwen3-8b_chat", "qwen3-8b", "chat"),  # the 1.x SDK's documented model_suffix form
        ("other-0a1b2c3d-x", "qwen3-8b", None),
    ],
)
def test_suffix_is_read_back_from_the_deployed_model(deployed: str, model: str, suffix: str | None) -> None:
    assert suffix_of(deployed, model) == suffix


# ---------------------------------------------------------------- create, read, the empty-plan law


@pytest.mark.parametrize(
    "desired",
    [
        {**MU, "suffix": "a1", "enable_thinking": True, "max_context_length": 32768, "rpm_limit": 60},
        {**MU, "billing_method": "POST_PAY", "tpm_limit": 100000},
        {**PTU, "ptu_capacity": {"input_tpm": 20000, "output_tpm": 2000}},
        {**PTU, "billing_method": "POST_PAY"} | {"plan": "ptu", "name": "p2", "suffix": "p2"},
        {"model_name": "emo", "name": "legacy", "plan": "cu", "capacity": 2},
        {"model_name": "qwen3-8b", "name": "adapter", "plan": "lora", "suffix": "lora1"},
    ],
)
def test_apply_then_plan_is_empty(desired: dict[str, Any]) -> None:
    async def go() -> None:
        world = World()
        want, ready = await settled(world, desired)
        assert ready is not None and ready.status == "RUNNING"
        assert changes(want, ready) == ()
        again = await world.provider.read(KIND, ready.id, {})
        assert again is not None and changes(want, again) == ()
        await world.provider.aclose()

    run(go())


def test_live_attributes_name_the_platform_fields_the_stack_way() -> None:
    async def go() -> None:
        world = World()
        _, ready = await settled(world, {**MU, "suffix": "s1"})
        attrs = ready.attributes
        assert ready.id == attrs["deployed_model"] and ready.id.endswith("-s1")
        # seed 002 returns no name: a deployment is known by its model and suffix
        assert ready.name == "qwen3-8b/s1"
        assert (attrs["deploy_spec"], attrs["billing_method"]) == ("MU1", "POST_PAY")
        assert (attrs["suffix"], attrs["ready_capacity"], attrs["status"]) == ("s1", 4, "RUNNING")
        assert "model_unit_spec" not in attrs and "charge_type" not in attrs
        assert world.sleeps and sum(world.sleeps) >= 10

    run(go())


def test_create_answers_at_once_with_the_pending_deployment() -> None:
    async def go() -> None:
        world = World()
        created = await world.provider.create(KIND, dict(MU))
        assert created.status == "PENDING" and created.attributes["ready_capacity"] == 0
        assert world.sleeps == []

    run(go())


def test_unknown_values_are_never_sent() -> None:
    with pytest.raises(ValueError, match="still unknown"):
        run(World().provider.create(KIND, {**MU, "name": UNKNOWN}))


# ---------------------------------------------------------------- platform errors


def test_platform_errors_carry_code_message_and_status() -> None:
    async def go() -> None:
        world = World()
        await settled(world, MU)
        with pytest.raises(ProviderError) as conflict:
            await world.provider.create(KIND, dict(MU))
        assert (conflict.value.status, conflict.value.code) == (409, "Conflict")
        assert "please specify a suffix" in conflict.value.platform_message
        with pytest.raises(ProviderError) as invalid:
            await world.provider.create(KIND, {**MU, "capacity": 5, "suffix": "b"})
        assert (invalid.value.status, invalid.value.code, invalid.value.retryable) == (
            400,
            "InvalidParameter",
            False,
        )
        assert invalid.value.platform_message == (
            "Invalid capacity (5), capacity must be larger than or equal to 0 "
            "and multiples of 2 and less than 1000!"
        )
        with pytest.raises(ProviderError) as missing:
            await world.provider.create(KIND, {**MU, "model_name": "qwen-none"})
        assert (missing.value.code, missing.value.platform_message) == (
            "NotFound",
            "Model: qwen-none not found!",
        )
        assert missing.value.operation == "CreateDeployment" and missing.value.platform == "modelstudio"

    run(go())


def test_a_wrong_key_fails_as_the_platform_fails_and_is_never_shown() -> None:
    async def go() -> None:
        world = World(key="sk-wrong-secret")
        with pytest.raises(ProviderError) as refused:
            await world.provider.list(KIND, {})
        assert (refused.value.status, refused.value.code) == (401, "InvalidApiKey")
        assert refused.value.platform_message == "Invalid API-key provided."
        assert "sk-wrong-secret" not in str(refused.value)

    run(go())


def test_a_200_carrying_a_code_is_an_error_as_the_sdk_reads_it() -> None:
    body = {"request_id": "r", "code": "Throttling", "message": "Requests rate limit exceeded."}
    provider = mocked(lambda request: httpx.Response(200, json=body))
    with pytest.raises(ProviderError) as error:
        run(provider.read(KIND, "x", {}))
    assert (error.value.status, error.value.code) == (200, "Throttling")


def test_odd_answers_and_lost_connections_become_provider_errors() -> None:
    with pytest.raises(ProviderError, match="unexpected answer: the deployment carries no deployed_model"):
        run(mocked(lambda request: httpx.Response(200, json={"output": {"no": "id"}})).read(KIND, "x", {}))

    attempts: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request.method)
        raise httpx.ConnectError("connection refused", request=request)

    backoffs: list[float] = []
    with pytest.raises(TransportError) as lost:
        run(mocked(refuse, backoffs).list(KIND, {}))
    assert lost.value.retryable and len(attempts) == 5 and len(backoffs) == 4  # the shared client's policy


@pytest.mark.parametrize(
    ("action", "method"),
    [("create", "POST"), ("scale", "PUT")],
)
def test_changes_are_not_replayed_after_an_answer_was_lost(action: str, method: str) -> None:
    """A create or scale that may have landed is not sent twice; the error says it may be retried later."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        if request.method == "GET":
            return httpx.Response(
                200, json={"request_id": "r", "output": deployment(1, plan="mu", capacity=4)}
            )
        return httpx.Response(502, json={"request_id": "r", "code": "BadGateway", "message": "upstream"})

    provider = mocked(handler)

    async def go() -> None:
        if action == "create":
            await provider.create(KIND, dict(MU))
        else:
            live = await provider.read(KIND, "qwen3-8b-00000001", {})
            assert live is not None
            await provider.update(KIND, live, {**MU, "capacity": 8})

    with pytest.raises(ProviderError) as lost:
        run(go())
    assert lost.value.retryable and lost.value.status == 502
    assert sent.count(method) == 1


# ---------------------------------------------------------------- list and find


def test_list_reads_the_first_page_then_the_rest_concurrently() -> None:
    seen: list[tuple[str, str]] = []
    everything = [deployment(i) for i in range(450)]

    def handler(request: httpx.Request) -> httpx.Response:
        number, size = int(request.url.params["page_no"]), int(request.url.params["page_size"])
        seen.append((request.url.params["page_no"], request.url.params["page_size"]))
        size = min(size, 100)  # a server that caps page_size
        page = everything[(number - 1) * size : number * size]
        if number == 3:
            page = [everything[0], *page]  # an object shifted between pages is listed once
        output = {"page_no": number, "page_size": size, "total": len(everything), "deployments": page}
        return httpx.Response(200, json={"request_id": "r", "output": output})

    listed = run(mocked(handler).list(KIND, {}))
    assert [d.id for d in listed] == [d["deployed_model"] for d in everything]
    assert seen[0] == ("1", "200") and sorted(int(n) for n, _ in seen) == [1, 2, 3, 4, 5]


def test_list_and_find_against_the_emulator() -> None:
    async def go() -> None:
        world = World(provision_seconds=0)
        provider = world.provider
        for i in range(3):
            await provider.create(KIND, {**MU, "name": "chat", "suffix": f"s{i}"})
        names = [d.name for d in await provider.list(KIND, {})]
        assert names == ["qwen3-8b/s0", "qwen3-8b/s1", "qwen3-8b/s2"]
        found = await provider.find(KIND, "qwen3-8b/s1", {})
        assert found is not None and found.attributes["suffix"] == "s1"
        # the same display name, another suffix or another model: not this deployment
        assert await provider.find(KIND, "chat", {}) is None
        assert await provider.find(KIND, "qwen3-8b/s9", {}) is None
        assert await provider.find(KIND, "qwen3-14b/s1", {}) is None

    run(go())


def test_find_skips_deleting_deployments_unless_nothing_else_matches() -> None:
    objects = [
        deployment(1, suffix="a", status="DELETING"),
        deployment(2, suffix="a"),
        deployment(3, suffix="b", status="DELETING"),
    ]
    for obj in objects:
        obj["deployed_model"] += "-" + obj.pop("suffix")

    def handler(request: httpx.Request) -> httpx.Response:
        output = {"page_no": 1, "page_size": 200, "total": 3, "deployments": objects}
        return httpx.Response(200, json={"request_id": "r", "output": output})

    provider = mocked(handler)
    assert run(provider.find(KIND, "qwen3-8b/a", {})).id == "qwen3-8b-00000002-a"  # type: ignore[union-attr]
    assert run(provider.find(KIND, "qwen3-8b/b", {})).status == "DELETING"  # type: ignore[union-attr]


def test_a_deployment_without_a_suffix_has_no_identity_to_be_found_by() -> None:
    objects = [deployment(1), deployment(2)]

    def handler(request: httpx.Request) -> httpx.Response:
        output = {"page_no": 1, "page_size": 200, "total": 2, "deployments": objects}
        return httpx.Response(200, json={"request_id": "r", "output": output})

    listed = run(mocked(handler).list(KIND, {}))
    assert [d.name for d in listed] == [None, None]


def test_a_stack_without_a_suffix_gets_a_stable_one_derived_from_stack_and_key() -> None:
    spec = KINDS[KIND]
    assert spec.create_defaults is not None
    first = spec.create_defaults("chat-stack/deployments.chat")["suffix"]
    assert first == spec.create_defaults("chat-stack/deployments.chat")["suffix"]
    assert first != spec.create_defaults("other-stack/deployments.chat")["suffix"]
    assert len(first) <= 8 and first.startswith("rc") and first.isalnum()
    # not mistaken for the 8 hex digits the platform puts before the suffix
    assert suffix_of(f"qwen3-8b-35b3f106-{first}", "qwen3-8b") == first


# ---------------------------------------------------------------- update


def test_update_scales_capacity_in_place() -> None:
    async def go() -> None:
        world = World()
        want, ready = await settled(world, MU)
        changed = {**want, "capacity": 12}
        assert [d.path for d in changes(changed, ready)] == ["capacity"]
        updating = await world.provider.update(KIND, ready, changed)
        assert (updating.status, updating.attributes["capacity"]) == ("UPDATING", 12)
        done = await world.provider.wait(KIND, ready.id, {}, "ready", 600)
        assert done is not None and changes(changed, done) == ()

    run(go())


def test_update_sends_limits_then_waits_then_scales() -> None:
    async def go() -> None:
        world = World()
        want, ready = await settled(world, MU)
        changed = {**want, "capacity": 8, "rpm_limit": 120, "tpm_limit": 90000}
        before = world.now
        updating = await world.provider.update(KIND, ready, changed)
        assert world.now - before >= 10  # the second call waited for the first to settle
        assert updating.status == "UPDATING"
        done = await world.provider.wait(KIND, ready.id, {}, "ready", 600)
        assert done is not None and changes(changed, done) == ()

    run(go())


def test_update_of_ptu_sends_the_whole_ptu_capacity() -> None:
    async def go() -> None:
        world = World()
        want, ready = await settled(world, {**PTU, "ptu_capacity": {"input_tpm": 20000}})
        changed = {**want, "ptu_capacity": {"output_tpm": 3000}}
        await world.provider.update(KIND, ready, changed)
        done = await world.provider.wait(KIND, ready.id, {}, "ready", 600)
        assert done is not None
        assert done.attributes["ptu_capacity"] == {
            "input_tpm": 20000,
            "output_tpm": 3000,
            "thinking_output_tpm": 0,
        }

    run(go())


def test_update_with_nothing_to_send_reads_the_deployment_again() -> None:
    async def go() -> None:
        world = World()
        want, ready = await settled(world, MU)
        same = await world.provider.update(KIND, ready, want)
        assert same.id == ready.id and same.status == "RUNNING"

    run(go())


# ---------------------------------------------------------------- delete and wait


def test_delete_then_wait_until_gone() -> None:
    async def go() -> None:
        world = World()
        _, ready = await settled(world, MU)
        await world.provider.delete(KIND, ready.id, {})
        assert (await world.provider.read(KIND, ready.id, {})).status == "DELETING"  # type: ignore[union-attr]
        await world.provider.delete(KIND, ready.id, {})  # a retried delete is fine
        assert await world.provider.wait(KIND, ready.id, {}, "gone", 600) is None
        assert await world.provider.read(KIND, ready.id, {}) is None
        await world.provider.delete(KIND, ready.id, {})  # so is deleting what is gone

    run(go())


def test_a_failed_deployment_raises_its_status_and_names_it() -> None:
    """Seed 002 documents no error message on a deployment: the status is all a FAILED one says."""

    async def go() -> None:
        world = World()
        created = await world.provider.create(KIND, dict(MU))
        world.stored(created.id).update(status="FAILED")
        world.stored(created.id).pop("_transition")
        with pytest.raises(ProviderError) as failed:
            await world.provider.wait(KIND, created.id, {}, "ready", 600)
        assert (failed.value.code, failed.value.platform_message) == (
            "FAILED",
            f"deployment {created.id} is FAILED",
        )

    run(go())


def test_wait_gives_up_at_its_deadline_and_reports_the_last_status() -> None:
    async def go() -> None:
        world = World(provision_seconds=1000)
        created = await world.provider.create(KIND, dict(MU))
        with pytest.raises(
            ProviderError, match="did not become ready within 30s \\(last status: PENDING\\)"
        ) as late:
            await world.provider.wait(KIND, created.id, {}, "ready", 30)
        assert late.value.code == "timeout"
        assert max(world.sleeps) <= 2.0  # backoff is capped at poll_interval

    run(go())


def test_waiting_for_ready_on_a_deployment_that_went_away_fails() -> None:
    async def go() -> None:
        world = World(provision_seconds=0)
        created = await world.provider.create(KIND, dict(MU))
        await world.provider.delete(KIND, created.id, {})
        with pytest.raises(ProviderError, match="while waiting for it to become ready") as gone:
            await world.provider.wait(KIND, created.id, {}, "ready", 60)
        assert gone.value.code == "not_found"

    run(go())


# ---------------------------------------------------------------- the provider block


def test_embedded_runs_the_emulator_and_keeps_its_cloud_under_the_state_dir(tmp_path: Path) -> None:
    block = {"url": "embedded", "provision_seconds": 0, "poll_interval": 0.01}

    async def first() -> str:
        provider = ModelStudioProvider.from_block(block, state_dir=tmp_path, environ={})
        created = await provider.create(KIND, dict(MU))
        ready = await provider.wait(KIND, created.id, {}, "ready", 10)
        await provider.aclose()
        assert ready is not None
        return ready.id

    async def second(deployed: str) -> None:
        provider = ModelStudioProvider.from_block(block, state_dir=tmp_path, environ={})
        assert [d.id for d in await provider.list(KIND, {})] == [deployed]
        await provider.aclose()

    deployed = run(first())
    stored = json.loads((tmp_path / "emulator" / "modelstudio.json").read_text())
    assert deployed in stored["collections"][DEPLOYMENTS]
    run(second(deployed))


def test_a_served_url_gets_bearer_auth_and_the_workspace_header(tmp_path: Path) -> None:
    block = {
        "url": "http://127.0.0.1:8080/api/v1/",
        "api_key": KEY,
        "workspace": "llm-ws1",
        "region": "ap-southeast-1",
    }
    provider = ModelStudioProvider.from_block(block, state_dir=tmp_path)
    headers = provider.client.http.headers
    assert headers["Authorization"] == f"Bearer {KEY}" and headers["X-DashScope-WorkSpace"] == "llm-ws1"
    assert str(provider.client.http.base_url) == "http://127.0.0.1:8080/api/v1/"
    assert provider.region == "ap-southeast-1"
    from_env = ModelStudioProvider.from_block(
        {"url": "https://dashscope-intl.aliyuncs.com/api/v1"},
        state_dir=tmp_path,
        environ={"DASHSCOPE_API_KEY": "sk-env"},
    )
    assert from_env.client.http.headers["Authorization"] == "Bearer sk-env"
    assert not (tmp_path / "emulator").exists()


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        ({"url": "embedded", "token": "x"}, "unknown key(s) token"),
        ({"url": "ftp://x"}, "url must be `embedded` or an http(s) base URL"),
        ({"url": "https://dashscope.aliyuncs.com/api/v1"}, "api_key is required"),
        (
            {"url": "https://x/api/v1", "api_key": "k", "provision_seconds": 0},
            "applies only to `url: embedded`",
        ),
        ({"url": "embedded", "timeout": 0}, "providers.modelstudio.timeout must be a positive number"),
        (
            {"url": "embedded", "max_in_flight": True},
            "providers.modelstudio.max_in_flight must be a positive",
        ),
        ({"url": "embedded", "max_retries": -1}, "providers.modelstudio.max_retries must be a non-negative"),
        ({"url": "embedded", "provision_seconds": -1}, "provision_seconds must be a non-negative number"),
        ({"url": "embedded", "workspace": ""}, "workspace must be a non-empty string"),
    ],
)
def test_bad_blocks_are_usage_errors(tmp_path: Path, block: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError) as bad:
        ModelStudioProvider.from_block(block, state_dir=tmp_path, environ={})
    assert fragment in str(bad.value)


# ---------------------------------------------------------------- identity: model_name + suffix


def _stack(**attrs: Any) -> Any:
    from dataclasses import replace

    from tests.fakes import res, stack_of

    spec = replace(res("deployments.chat", {**MU, **attrs}), platform="modelstudio", kind=KIND)
    return replace(stack_of(spec), name="chat-stack", providers={"modelstudio": {}})


def test_a_create_without_a_suffix_plans_the_stable_default_and_recovery_finds_only_that_one() -> None:
    from reconciler.planner import build_plan
    from reconciler.refresh import recover, refresh
    from reconciler.state.document import JournalEntry, StateDoc

    async def go() -> None:
        world = World(provision_seconds=0)
        providers = {"modelstudio": world.provider}
        stack = _stack()
        plan = build_plan(stack, None, {}, providers)
        (change,) = plan.changes
        suffix = default_suffix("chat-stack/deployments.chat")
        assert change.after["suffix"] == suffix and change.name == f"qwen3-8b/{suffix}"
        # another stack's deployment of the same model, with the same display name
        await world.provider.create(KIND, {**MU, "suffix": "theirs"})
        entry = JournalEntry(
            seq=1, address="deployments.chat", action="create", phase="intent", name=change.name,
            token="tok", time="2026-12-03T00:00:00Z", platform="modelstudio", kind=KIND,
            inputs={"name": "chat"},
        )  # fmt: skip
        lost = StateDoc.new("chat-stack").model_copy(update={"journal": (entry,)})
        nothing = (await recover(lost, providers)).state
        assert nothing.resources == {}  # the namesake is never taken
        ours = await world.provider.create(KIND, dict(change.after))  # the create whose answer was lost
        state = (await recover(lost, providers)).state
        assert state.resources["deployments.chat"].id == ours.id
        assert state.resources["deployments.chat"].attributes["name"] == "chat"  # journaled input
        live = await refresh(state, providers)
        assert not build_plan(stack, state, live, providers).has_changes

    run(go())


def test_a_deployment_recorded_without_a_suffix_is_not_changed_by_the_default() -> None:
    from reconciler.planner import build_plan
    from reconciler.refresh import refresh
    from reconciler.state.document import ResourceState, StateDoc

    async def go() -> None:
        world = World(provision_seconds=0)
        providers = {"modelstudio": world.provider}
        made = await world.provider.create(KIND, dict(MU))  # made before suffixes were defaulted
        rs = ResourceState(
            address="deployments.chat", platform="modelstudio", kind=KIND, id=made.id, name=None,
            scope={}, attributes={**made.attributes, "name": "chat"}, status=made.status, dependencies=(),
        )  # fmt: skip
        state = StateDoc.new("chat-stack").with_resource(rs)
        live = await refresh(state, providers)
        plan = build_plan(_stack(), state, live, providers)
        assert not plan.has_changes, [c.diff for c in plan.changes]

    run(go())
