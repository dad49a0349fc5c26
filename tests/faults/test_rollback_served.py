"""Rollback of every action kind over a served emulator, health gates, and a rollback that fails.

One served emulator (``--fail-provisioning '*-doomed'``, lifecycles settling at
once) holds a base stack on all three platforms. Each test changes the stack
so that one action of a kind runs (a create, an update, a replace with and
without ``create_before_destroy``, a delete), and adds a Model Studio
deployment called ``...-doomed`` that depends on it, so that it starts only
once that action finished and then fails its provisioning. The apply must exit
1, report the failed step with the platform's message, then every undone step;
afterwards the base stack plans no change (the platforms are as before), the
recorded ids are the base's (except where the rollback had to re-create an
object: a new id for the same attributes), and what is live is exactly what
the state records.

Health gates: a Fabric deployment whose ``health_check`` passes (in the base
stack), one whose invocation cannot answer in time (a second emulator adds 40
ms to every answer; the gate allows 10 ms), and :meth:`FabricProvider.probe`
itself in-process. A rollback that itself fails: a service instance renamed
(in place) to a doomed name, then replaced, so that re-creating it fails too:
exit 3, and the state is true to the platform. Last, a failing create that is
the apply's only step: its landed (FAILED) object is rolled back too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.emulators import EmulatorConfig, build_app
from reconciler.errors import ProviderError
from reconciler.providers.base import Live, RefValue
from reconciler.providers.fabric import HEALTH_CHECK_FAILED, FabricProvider, fabric_error
from reconciler.providers.http import ApiClient
from tests.cli.conftest import Served
from tests.faults.stacks import (
    Platforms,
    Run,
    check_true_to_platform,
    cli,
    fabric_endpoint,
    fabric_instance,
    fabric_model,
    fabric_workspace,
    in_process,
    ms_deployment,
    read_state,
    serve,
    stop,
    write_stack,
)

NAME = "rb"
ROLLED_BACK = "The platforms are as they were before this apply."
DOOMED_MESSAGE = "is FAILED"  # seed 002 returns no failure message: the status is what a user sees


def base() -> dict[str, dict[str, Any]]:
    chat = fabric_instance("rb-chat", "main", "infer", "llama", mn=1, mx=1)
    chat["lifecycle"] = {"create_before_destroy": True}
    chat["health_check"] = {"timeout": 10, "prompt": "are you there?"}
    old = ms_deployment("rb-old", "rbold")
    old["depends_on"] = ["workspaces.spare"]
    return {
        "workspaces": {"main": fabric_workspace(NAME, 0), "spare": fabric_workspace(NAME, 1)},
        "endpoints": {"infer": fabric_endpoint(NAME, 0, "main")},
        "models": {"llama": fabric_model(NAME, 0, "main")},
        "deployments": {
            "chat": chat,
            "qa": fabric_instance("rb-qa", "main", "infer", "llama", mn=1, mx=1),
            "ms": ms_deployment("rb-ms", "rbms"),
            "old": old,
        },
    }


def doomed(after: str) -> dict[str, Any]:
    """A deployment that fails its provisioning, started only once ``after``'s step finished."""
    spec = ms_deployment("rb-x-doomed", "rbx")
    spec["depends_on"] = [after]
    return spec


class World:
    """The served emulator, the base stack applied, and what it looked like then."""

    def __init__(self, tmp: Path, served: Served) -> None:
        self.tmp, self.served = tmp, served
        self.platforms = Platforms(served)
        self.stack = f"{NAME}.yaml"
        self.dirty = True
        self.base_ids: dict[str, str] = {}

    def write(self, sections: dict[str, dict[str, Any]]) -> None:
        write_stack(self.tmp, NAME, self.served, sections)

    def cli(self, *args: str) -> Run:
        return cli(self.tmp, *args)

    def apply(self, *flags: str) -> Run:
        return self.cli("apply", self.stack, "--auto-approve", *flags)

    def state(self) -> dict[str, Any]:
        return read_state(self.tmp, NAME)

    def ids(self) -> dict[str, str]:
        return {address: rs["id"] for address, rs in self.state()["resources"].items()}

    def reset(self) -> None:
        """Make the platforms hold the base stack again (only after a test that left them changed)."""
        if self.dirty:
            self.write(base())
            done = in_process(self.tmp, "apply", self.stack, "--auto-approve")
            assert done.code == 0, done.text
            self.base_ids = self.ids()
            self.dirty = False

    def assert_as_before(self, *, recreated: tuple[str, ...] = ()) -> None:
        """The base stack plans no change; ids are the base's but for ``recreated``; state true to live."""
        self.write(base())
        plan = in_process(self.tmp, "plan", self.stack, "--detailed-exitcode")
        assert plan.code == 0, plan.text
        ids = self.ids()
        assert sorted(ids) == sorted(self.base_ids)
        for address, id in ids.items():
            if address in recreated:
                assert id != self.base_ids[address], f"{address} should have been re-created"
            else:
                assert id == self.base_ids[address], f"{address} changed id"
        self.base_ids = ids
        check_true_to_platform(self.platforms.objects(), [self.state()])
        self.dirty = False


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("rollback")
    served = serve(tmp / "emulator", "--fail-provisioning", "*-doomed")
    try:
        yield World(tmp, served)
    finally:
        stop(served)


@pytest.fixture
def w(world: World) -> World:
    world.reset()
    world.dirty = True  # until the test shows otherwise
    return world


def assert_report(run: Run, failed: str, message: str, undone: list[str]) -> None:
    """Exit 1; the failed step with the platform's message, then every undone step."""
    assert run.code == 1, run.text
    err = run.err
    assert "Apply failed:" in err and ROLLED_BACK in err, run.text
    failure = err.index(f"  {failed}: ")
    assert message in err[failure:].splitlines()[0], run.text
    rolled = err.index("Rolled back: ")
    assert failure < rolled, run.text
    line = err[rolled:].splitlines()[0]
    for step in undone:
        assert step in line, f"{step!r} not undone:\n{run.text}"


def test_the_base_stack_passes_its_health_gate(w: World) -> None:
    assert w.base_ids["deployments.chat"]
    w.assert_as_before()


def test_a_create_is_undone(w: World) -> None:
    sections = base()
    sections["models"]["extra"] = fabric_model(NAME, 9, "main")
    sections["deployments"]["doomed"] = doomed("models.extra")
    w.write(sections)
    run = w.apply()
    assert_report(
        run,
        "create deployments.doomed",
        "modelstudio WaitDeployment failed: FAILED: deployment qwen3-8b-",
        ["delete models.extra", "delete deployments.doomed"],
    )
    assert DOOMED_MESSAGE in run.err
    w.assert_as_before()


def test_an_update_is_undone(w: World) -> None:
    sections = base()
    sections["workspaces"]["main"]["description"] = "changed"
    sections["deployments"]["doomed"] = doomed("workspaces.main")
    w.write(sections)
    run = w.apply()
    assert_report(run, "create deployments.doomed", DOOMED_MESSAGE, ["update workspaces.main"])
    assert "delete deployments.doomed" in run.err
    w.assert_as_before()


def test_a_replace_is_undone_by_recreating_the_old_object(w: World) -> None:
    sections = base()
    sections["deployments"]["ms"]["name"] = "rb-ms-renamed"  # forces a replacement, delete first
    sections["deployments"]["doomed"] = doomed("deployments.ms")
    w.write(sections)
    run = w.apply()
    assert_report(
        run, "create deployments.doomed", DOOMED_MESSAGE, ["delete deployments.ms", "create deployments.ms"]
    )
    w.assert_as_before(recreated=("deployments.ms",))
    # the platform returns no name: the state holds the one the recreated deployment was sent
    recorded = read_state(w.tmp, NAME)["resources"]["deployments.ms"]["attributes"]
    assert recorded["name"] == "rb-ms"


def test_a_create_before_destroy_replace_gets_the_old_object_back(w: World) -> None:
    sections = base()
    chat = sections["deployments"]["chat"]
    chat["name"] = "rb-chat-2"
    chat["config"]["model_instance_config"]["resource"].update({"min": 2, "max": 2})  # forces a replacement
    sections["deployments"]["doomed"] = doomed("deployments.chat")
    w.write(sections)
    run = w.apply()
    assert_report(run, "create deployments.doomed", DOOMED_MESSAGE, ["delete deployments.chat#new"])
    w.assert_as_before()  # the very same instance, not a copy
    names = [o.name for o in w.platforms.fabric()]
    assert "rb-chat" in names and "rb-chat-2" not in names


def test_a_delete_is_undone_by_recreating_it(w: World) -> None:
    # an object the stack does not know keeps the spare workspace from being deleted
    spare = w.state()["resources"]["workspaces.spare"]["id"]
    with w.served.client() as client:
        made = client.post(
            f"/v1/workspaces/{spare}/models", json=without_workspace(fabric_model("oob", 0, ""))
        )
    assert made.status_code == 201, made.text
    sections = base()
    del sections["workspaces"]["spare"], sections["deployments"]["old"]
    w.write(sections)
    try:
        run = w.apply()
    finally:
        with w.served.client() as client:
            gone = client.delete(f"/v1/workspaces/{spare}/models/{made.json()['id']}")
        assert gone.status_code < 300, gone.text
    # `old` depends on `spare`, so its delete finished before the workspace's failed
    assert_report(
        run,
        "delete workspaces.spare",
        "common.01000001: failed to read http request",
        ["create deployments.old"],
    )
    w.assert_as_before(recreated=("deployments.old",))


def test_no_rollback_keeps_what_succeeded(w: World) -> None:
    sections = base()
    sections["models"]["extra"] = fabric_model(NAME, 9, "main")
    sections["deployments"]["doomed"] = doomed("models.extra")
    w.write(sections)
    run = w.apply("--no-rollback")
    assert run.code == 1, run.text
    assert "kept (no rollback): create models.extra" in run.err and "Rolled back" not in run.err, run.text
    state = w.state()
    assert {"models.extra", "deployments.doomed"} <= set(state["resources"])
    assert state["resources"]["deployments.doomed"]["status"] in ("PENDING", "FAILED")
    check_true_to_platform(w.platforms.objects(), [state])
    w.write(base())
    cleaned = in_process(w.tmp, "apply", w.stack, "--auto-approve")
    assert cleaned.code == 0 and "2 destroyed" in cleaned.out, cleaned.text
    w.assert_as_before()


def test_a_rollback_that_fails_exits_3_and_the_state_is_true_to_the_platform(w: World) -> None:
    sections = base()
    sections["deployments"]["qa"]["name"] = "rb-qa-doomed"  # a rename is in place: nothing provisions
    w.write(sections)
    renamed = w.apply()
    assert renamed.code == 0 and "1 updated" in renamed.out, renamed.text
    # a replacement (delete, then create) of a doomed name fails; so does the rollback's re-create
    sections["deployments"]["qa"]["config"]["model_instance_config"]["resource"].update({"min": 2, "max": 2})
    w.write(sections)
    run = w.apply()
    assert run.code == 3, run.text
    err = run.err
    assert "Apply failed:" in err and "create deployments.qa: " in err, run.text
    assert "Rollback could not restore everything:" in err, run.text
    assert "undo create deployments.qa: " in err and "common.00000500" in err, run.text
    assert "The state records exactly what is live" in err
    state = w.state()
    check_true_to_platform(w.platforms.objects(), [state])
    assert state["resources"]["deployments.qa"]["status"] == "FAILED"


def test_a_failing_health_gate_rolls_back(tmp_path: Path) -> None:
    served = serve(tmp_path / "emulator", "--latency-ms", "40")
    try:
        chat = fabric_instance("hg-chat", "main", "infer", "llama", mn=1, mx=1)
        chat["health_check"] = {"timeout": 0.01, "prompt": "ping"}  # no answer can come in 10 ms
        sections = {
            "workspaces": {"main": fabric_workspace("hg", 0)},
            "endpoints": {"infer": fabric_endpoint("hg", 0, "main")},
            "models": {"llama": fabric_model("hg", 0, "main")},
            "deployments": {"chat": chat},
        }
        stack = write_stack(tmp_path, "hg", served, sections)
        run = cli(tmp_path, "apply", stack, "--auto-approve")
        assert_report(
            run,
            "create deployments.chat",
            f"{HEALTH_CHECK_FAILED}: service instance hg-chat failed its health check: no complete answer",
            [
                "delete deployments.chat",
                "delete endpoints.infer",
                "delete models.llama",
                "delete workspaces.main",
            ],
        )
        assert read_state(tmp_path, "hg")["resources"] == {}
        assert Platforms(served).objects() == []
    finally:
        stop(served)


# -- the probe itself, in-process -----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def fabric(transport: httpx.AsyncBaseTransport) -> FabricProvider:
    http = httpx.AsyncClient(
        transport=transport, base_url="http://fabric.test", headers={"X-Auth-Token": "t"}
    )
    return FabricProvider(ApiClient(http, platform="fabric", error_parser=fabric_error, max_in_flight=1))


def without_workspace(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in ("workspace", "endpoint", "model", "platform")}


async def instance(provider: FabricProvider, clock: Clock) -> Live:
    """A service instance on the in-process emulator, left CREATING (its lifecycle takes 60 s)."""
    ws = await provider.create("workspace", provider.desired("workspace", fabric_workspace("p", 0), {}))
    on_ws = {"workspace": RefValue("workspaces.w", ws.id, ws.attributes)}
    ep = await provider.create(
        "endpoint", provider.desired("endpoint", without_workspace(fabric_endpoint("p", 0, "w")), on_ws)
    )
    model = await provider.create(
        "model", provider.desired("model", without_workspace(fabric_model("p", 0, "w")), on_ws)
    )
    clock.now += 60  # the endpoint is RUNNING
    refs = {
        **on_ws,
        "endpoint": RefValue("endpoints.e", ep.id, ep.attributes),
        "model": RefValue("models.m", model.id, model.attributes),
    }
    attrs = without_workspace(fabric_instance("p-chat", "w", "e", "m"))
    return await provider.create("service_instance", provider.desired("service_instance", attrs, refs))


def test_probe_passes_on_a_running_instance_and_fails_with_the_platform_code_before() -> None:
    clock = Clock()
    config = EmulatorConfig(fabric_token="t", provision_seconds=60, clock=clock)
    provider = fabric(httpx.ASGITransport(app=build_app(config)))

    async def main() -> None:
        try:
            live = await instance(provider, clock)
            assert live.status == "CREATING"
            with pytest.raises(ProviderError) as info:
                await provider.probe("service_instance", live, "ping", 5)
            assert info.value.code == "common.01000001" and info.value.status == 400
            assert "not running, status: CREATING" in str(info.value)
            clock.now += 60
            await provider.probe("service_instance", live, "ping", 5)
            assert not provider.ep.pacing.semaphore.locked()
        finally:
            await provider.aclose()

    asyncio.run(main())


def chunk(text: str) -> str:
    return "data: " + json.dumps(
        {"object": "chat.completion.chunk", "choices": [{"delta": {"content": text}}]}
    )


async def too_slow(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(0.5)  # the probe allows 0.05 s: it gives up long before
    return httpx.Response(200, text=chunk("late") + "\n\ndata: [DONE]\n\n")


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def answering(status: int, body: str) -> Any:
    return lambda request: httpx.Response(status, text=body)


@pytest.mark.parametrize(
    ("handler", "code", "text"),
    [
        (answering(200, chunk("hi") + "\n\n"), HEALTH_CHECK_FAILED, "ended before data: [DONE]"),
        (answering(200, "data: [DONE]\n\n"), HEALTH_CHECK_FAILED, "without a single chat.completion.chunk"),
        (answering(200, "data: {nope\n\n"), HEALTH_CHECK_FAILED, "an event is not JSON"),
        (answering(200, 'data: {"object": "list"}\n\n'), HEALTH_CHECK_FAILED, "unexpected event"),
        (
            answering(200, 'data: {"error": {"code": "model.overloaded", "message": "busy"}}\n\n'),
            "model.overloaded",
            "service instance chat: busy",
        ),
        (
            answering(503, '{"error_code": "common.00000500", "error_msg": "internal error"}'),
            "common.00000500",
            "HTTP 503 common.00000500: internal error",
        ),
        (too_slow, HEALTH_CHECK_FAILED, "failed its health check: no complete answer within 0.05s"),
        (dropped, HEALTH_CHECK_FAILED, "could not reach the platform: peer closed connection"),
    ],
    ids=["no-done", "no-chunk", "not-json", "not-a-chunk", "error-event", "http-503", "too-slow", "dropped"],
)
def test_probe_fails_unless_a_whole_stream_arrives_in_time(handler: Any, code: str, text: str) -> None:
    sent: list[httpx.Request] = []

    async def recording(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = handler(request)
        return await answer if asyncio.iscoroutine(answer) else answer

    provider = fabric(httpx.MockTransport(recording))
    live = Live(id="i-1", attributes={"workspace_id": "w-1"}, status="RUNNING", name="chat")

    async def main() -> ProviderError:
        try:
            with pytest.raises(ProviderError) as info:
                await provider.probe("service_instance", live, "hello?", 0.05)
            assert not provider.ep.pacing.semaphore.locked()  # the slot is given back, whatever happened
            return info.value
        finally:
            await provider.aclose()

    error = asyncio.run(main())
    assert error.code == code and error.platform == "fabric", error
    assert error.retryable == (code == "common.00000500")  # the platform's verdict on its own error
    assert text in str(error), error
    assert error.operation == "InvokeServiceInstance"
    assert [(r.method, r.url.path) for r in sent] == [
        ("POST", "/v1/workspaces/w-1/services/instances/i-1/invocations")
    ]  # sent once, never retried
    assert json.loads(sent[0].content) == {"messages": [{"role": "user", "content": "hello?"}]}


def test_a_lone_failing_create_is_rolled_back_too(world: World) -> None:
    stack = write_stack(
        world.tmp, "lone", world.served, {"deployments": {"d": ms_deployment("rb-lone-doomed", "lone")}}
    )
    try:
        run = cli(world.tmp, "apply", stack, "--auto-approve")
        assert run.code == 1 and DOOMED_MESSAGE in run.err, run.text
        assert [o.id for o in world.platforms.modelstudio() if o.id.endswith("-lone")] == [], run.text
        assert read_state(world.tmp, "lone")["resources"] == {}
    finally:  # leave the shared emulator as the other tests expect it
        in_process(world.tmp, "destroy", stack, "--auto-approve")
