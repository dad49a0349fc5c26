"""The fault matrix: a 30-resource stack on all three platforms, applied under each kind of fault.

Each kind gets its own served emulator (``--seed --fault-rate --fault-kinds``,
lifecycles settling at once) and its own directory. Under each, ``reconciler
apply`` either converges (exit 0) or rolls back fully (exit 1, "Rolled back",
nothing left on any platform); where it did not converge, a second apply must.
After every apply the platforms, read through their own APIs, hold exactly
what the state records: the same ids, no name twice, nothing the state does
not know. A plan then finds nothing to do.

``fail-provisioning`` dooms one deployment per platform (``--fail-provisioning
'*-doomed'``) on top of a mix of request faults, so the rollback itself runs
under faults; the same stack without doomed names then converges.

The scenarios are independent, so they run three at a time in threads (each
drives subprocesses); every kind is reported by its own test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import operations
from reconciler.emulators import EmulatorConfig, build_app
from reconciler.emulators.faults import FaultSettings
from reconciler.emulators.modelstudio import ModelStudioSettings, build_modelstudio_app
from reconciler.stack.spec import Lifecycle
from tests.fakes import FakeProvider, MemoryBackend, res, stack_of
from tests.faults.stacks import (
    LiveObject,
    Platforms,
    Run,
    Shape,
    check_true_to_platform,
    cli,
    read_state,
    resources,
    serve,
    stop,
    write_stack,
)

DOOMED = "*-doomed"
SCENARIOS: dict[str, tuple[str, ...]] = {
    "error": ("--fault-kinds", "error", "--fault-rate", "0.15"),
    "timeout": ("--fault-kinds", "timeout", "--fault-rate", "0.15"),
    "throttle": ("--fault-kinds", "throttle", "--fault-rate", "0.12"),  # each waits Retry-After: 1
    "drop": ("--fault-kinds", "drop", "--fault-rate", "0.15"),
    "lost": ("--fault-kinds", "lost", "--fault-rate", "0.2"),  # mutating requests only
    "slow": ("--fault-kinds", "slow", "--fault-rate", "0.1"),  # at most 2 s late each
    "fail-provisioning": (
        "--fail-provisioning",
        DOOMED,
        "--fault-kinds",
        "error,throttle,drop,lost",
        "--fault-rate",
        "0.08",
    ),
}
SEEDS = {kind: 1000 + n for n, kind in enumerate(SCENARIOS)}
ROLLED_BACK = "The platforms are as they were before this apply."


@dataclass
class Observed:
    """One command and, after it, the platforms and the state."""

    command: str
    run: Run
    live: list[LiveObject]
    state: dict[str, Any]


@dataclass
class Outcome:
    observed: list[Observed] = field(default_factory=list)
    error: BaseException | None = None
    seconds: float = 0.0

    def report(self) -> str:
        return "\n\n".join(f"$ {o.command}\n{o.run.text}" for o in self.observed)


def scenario(kind: str, tmp: Path) -> Outcome:
    outcome, started = Outcome(), time.monotonic()
    try:
        served = serve(tmp / "emulator", "--seed", str(SEEDS[kind]), *SCENARIOS[kind])
        try:
            platforms = Platforms(served)

            def run(*args: str) -> Run:
                done = cli(tmp, *args)
                outcome.observed.append(
                    Observed(" ".join(args), done, platforms.objects(), read_state(tmp, "mx"))
                )
                return done

            stack = write_stack(tmp, "mx", served, resources("mx", Shape()))
            first = run("apply", stack, "--auto-approve")
            if kind == "fail-provisioning":  # the user renames the doomed ones
                stack = write_stack(tmp, "mx", served, resources("mx", Shape(doomed=False)))
            if first.code != 0:
                run("apply", stack, "--auto-approve")
            run("plan", stack, "--detailed-exitcode")
        finally:
            stop(served)
    except BaseException as exc:  # reported by the kind's own test
        outcome.error = exc
    outcome.seconds = time.monotonic() - started
    return outcome


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    root = tmp_path_factory.mktemp("matrix")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {kind: pool.submit(scenario, kind, root / kind) for kind in SCENARIOS}
        yield {kind: future.result(timeout=600) for kind, future in futures.items()}


@pytest.mark.parametrize("kind", list(SCENARIOS))
def test_apply_under_faults_converges_or_rolls_back_fully(kind: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[kind]
    if outcome.error is not None:
        raise AssertionError(f"{kind}: the scenario broke\n{outcome.report()}") from outcome.error
    *applies, plan = outcome.observed
    first, last = applies[0], applies[-1]
    context = outcome.report()

    assert first.run.code in (0, 1), context
    if first.run.code == 1:
        # rolled back fully (or nothing had finished): the platforms are as before, i.e. empty
        assert ROLLED_BACK in first.run.err or "finished before the failure" not in first.run.err, context
        assert "Rollback could not restore everything" not in first.run.err, context
        assert first.live == [], context
        assert first.state["resources"] == {}, context
    if kind == "fail-provisioning":
        assert first.run.code == 1 and ROLLED_BACK in first.run.err, context
        doomed_failure = (
            "insufficient resources",  # Fabric CREATE_FAILED / FAILED
            "is FAILED",  # Model Studio (seed 002 returns no failure message)
            "is Failed",  # ZStack
        )
        assert any(text in first.run.err for text in doomed_failure), context

    for observed in applies:
        check_true_to_platform(observed.live, [observed.state])
        assert observed.state.get("journal", []) == [], context
    assert len(applies) <= 2, context
    assert last.run.code == 0, context
    assert len(last.state["resources"]) == Shape().count >= 30
    assert len(last.live) == Shape().count
    assert {o.status for o in last.live} <= {None, "RUNNING", "Running"}, context
    assert plan.run.code == 0, context


# -- the knobs behind the matrix, in-process ------------------------------------------------

MS_BODY = {
    "model_name": "qwen3-8b",
    "plan": "mu",
    "deploy_spec": "MU1",
    "capacity": 4,
    "billing_method": "POST_PAY",
}


def test_model_studio_fails_the_provisioning_of_doomed_names_in_either_app() -> None:
    doomed = ("*-doomed",)
    apps = {
        "all platforms": build_app(
            EmulatorConfig(provision_seconds=0, faults=FaultSettings(fail_provisioning=doomed))
        ),
        "model studio only": build_modelstudio_app(
            ModelStudioSettings(provision_seconds=0, fail_provisioning=doomed)
        ),
    }

    async def check(app: Any) -> None:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": "Bearer emulator-key"}
        async with httpx.AsyncClient(transport=transport, base_url="http://ms/api/v1", headers=headers) as c:
            made = {}
            for name, suffix in (("chat-doomed", "a1"), ("chat", "b1")):
                answer = await c.post("/deployments", json={**MS_BODY, "name": name, "suffix": suffix})
                assert answer.status_code == 200, answer.text
                made[name] = answer.json()["output"]["deployed_model"]
            failed = (await c.get(f"/deployments/{made['chat-doomed']}")).json()["output"]
            assert failed["status"] == "FAILED" and failed["ready_capacity"] == 0
            assert "message" not in failed  # seed 002 documents no failure message
            fine = (await c.get(f"/deployments/{made['chat']}")).json()["output"]
            assert fine["status"] == "RUNNING" and "message" not in fine
            # a failed deployment cannot change; it can be deleted
            scaled = await c.put(f"/deployments/{made['chat-doomed']}/scale", json={"capacity": 8})
            assert scaled.status_code == 409 and scaled.json()["code"] == "Conflict"
            assert (await c.delete(f"/deployments/{made['chat-doomed']}")).status_code == 200
            assert (await c.get(f"/deployments/{made['chat-doomed']}")).status_code == 404

    for app in apps.values():
        asyncio.run(check(app))


def test_the_model_studio_only_app_takes_request_faults() -> None:
    faults = FaultSettings(fault_rate=1.0, kinds=("throttle",), seed=3)
    app = build_modelstudio_app(ModelStudioSettings(), faults=faults)

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": "Bearer emulator-key"}
        async with httpx.AsyncClient(transport=transport, base_url="http://ms", headers=headers) as c:
            return await c.get("/api/v1/deployments")

    answer = asyncio.run(main())
    assert answer.status_code == 429 and answer.headers["retry-after"] == "1"
    assert answer.json()["code"] == "Throttling.RateQuota"


def test_a_lost_create_answer_in_a_create_before_destroy_replace_adopts_the_new_object() -> None:
    provider, backend = FakeProvider(), MemoryBackend()
    keep = Lifecycle(create_before_destroy=True)

    def apply(zone: str) -> operations.ApplyOutcome:
        stack = stack_of(res("models.svc", {"name": "svc", "zone": zone}, lifecycle=keep))

        async def go() -> operations.ApplyOutcome:
            plan, _, _ = await operations.plan_async(stack, backend, {"fake": provider})  # type: ignore[arg-type]
            return await operations.apply_async(plan, stack, backend, {"fake": provider})  # type: ignore[arg-type]

        return asyncio.run(go())

    assert apply("a").report.ok
    provider.lose_on.add(("create", "svc"))  # the replacement lands; its answer is lost
    assert apply("b").report.ok
    recorded = backend.read().resources["models.svc"]
    assert recorded.id in provider.objects, "the state records an object that was deleted"
    assert list(provider.objects) == [recorded.id], "an object is live that the state does not record"
