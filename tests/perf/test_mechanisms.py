"""What makes plans and applies fast at scale, pinned by counting calls and bytes (nothing is timed).

* a no-op plan of 1,000 resources reads list pages, no more: its calls stay
  within the page count (counted by the emulator's request metrics);
* resources waiting for their lifecycle share list reads: N waiters on one
  scope cost about one list per poll, not N reads per poll;
* recording one finished step appends a bounded number of bytes, the same
  at 100 and at 2,000 recorded resources, and leaves the state file alone.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from benchmarks import stackgen
from reconciler import operations
from reconciler.applier import Applier
from reconciler.emulators import EmulatorConfig, build_app
from reconciler.emulators.zstack import MODEL_CENTER_UUID, ZONE_1_UUID
from reconciler.planner import build_plan
from reconciler.providers import fabric, modelstudio, zstack
from reconciler.providers.base import Provider
from reconciler.providers.fabric import FabricProvider, fabric_error
from reconciler.providers.http import ApiClient
from reconciler.providers.modelstudio import ModelStudioProvider, modelstudio_error
from reconciler.providers.zstack import ZStackProvider
from reconciler.providers.zstack_session import zstack_client
from reconciler.refresh import refresh
from reconciler.stack import load_stack
from reconciler.state import LocalBackend, ResourceState, StateDoc
from reconciler.watch import Watcher
from tests.core.test_watch import Clock, Lifecycles
from tests.fakes import FakeProvider, res, stack_of

BASE = "http://emulator.test"


def providers_over(app: Starlette) -> dict[str, Provider]:
    """The three providers, talking to ``app`` in process (no sockets), polling briskly."""
    transport = httpx.ASGITransport(app=app)

    def client(base: str, platform: str, headers: Mapping[str, str], parser: Any) -> ApiClient:
        http = httpx.AsyncClient(base_url=base, transport=transport, headers=dict(headers))
        return ApiClient(http, platform=platform, error_parser=parser, max_in_flight=10)

    return {
        "fabric": FabricProvider(
            client(BASE, "fabric", {"X-Auth-Token": "emulator-token"}, fabric_error), poll_interval=0.1
        ),
        "modelstudio": ModelStudioProvider(
            client(
                f"{BASE}/api/v1", "modelstudio", {"Authorization": "Bearer emulator-key"}, modelstudio_error
            ),
            poll_interval=0.1,
        ),
        "zstack": ZStackProvider(
            zstack_client(f"{BASE}/zstack/v1", password="password", transport=transport),
            account="admin",
            password="password",
            zone_uuid=ZONE_1_UUID,
            model_center_uuid=MODEL_CENTER_UUID,
            poll_interval=0.1,
        ),
    }


def write_stack(tmp: Path, sections: Mapping[str, dict[str, Any]]) -> Path:
    blocks = stackgen.providers_block(BASE, rate=0, in_flight=10, poll_interval=0.1)
    path = tmp / "stack.yaml"
    path.write_text(stackgen.stack_text("perf", dict(sections), blocks, str(tmp / "state.json")))
    return path


async def converge(stack_file: Path, providers: Mapping[str, Provider], parallelism: int = 50) -> None:
    stack = load_stack(stack_file)
    backend = operations.backend_for(stack)
    plan, _, _ = await operations.plan_async(stack, backend, providers)
    outcome = await operations.apply_async(plan, stack, backend, providers, parallelism=parallelism)
    assert outcome.report.ok, outcome.report.failed


def test_a_no_op_plan_of_1000_resources_reads_no_more_than_its_list_pages(tmp_path: Path) -> None:
    app = build_app(EmulatorConfig(provision_seconds=0))
    counts = app.state.request_counts
    m = stackgen.mix(1000)
    stack_file = write_stack(tmp_path, stackgen.resources(m))

    async def main() -> tuple[bool, dict[str, Any]]:
        providers = providers_over(app)
        try:
            await converge(stack_file, providers)
            counts.reset()
            stack = load_stack(stack_file)
            plan, _, _ = await operations.plan_async(stack, operations.backend_for(stack), providers)
            return plan.has_changes, counts.snapshot()
        finally:
            for p in providers.values():
                await p.aclose()

    changes, seen = asyncio.run(main())
    assert m.total == 1000 and not changes
    per_workspace = (m.endpoints, m.models, m.instances)
    pages = (
        math.ceil(m.workspaces / fabric.PAGE_SIZE)
        + sum(math.ceil(n / m.workspaces / fabric.PAGE_SIZE) for n in per_workspace) * m.workspaces
    )
    pages += math.ceil(m.ms_deployments / modelstudio.PAGE_SIZE)
    pages += math.ceil(m.zs_services / zstack.PAGE_SIZE) + math.ceil(m.zs_groups / zstack.PAGE_SIZE)
    preflight = 3  # one cheap call per platform (reconciler.preflight), made by every plan
    assert seen["total"] <= pages + preflight + 1, seen  # + a ZStack login of a new session, if needed
    assert pages <= 20
    assert all(route.startswith(("GET ", "PUT /zstack/v1/accounts/login")) for route in seen["routes"]), seen


def test_waiters_on_one_scope_share_each_list_read() -> None:
    clock = Clock()
    platform = Lifecycles(clock)
    waiters = 200
    for n in range(waiters):
        platform.ready_at[f"d{n}"] = clock.now + 3 + (n % 7) * 0.5  # ready between 3 s and 6 s

    async def main() -> list[Any]:
        watcher = Watcher(clock=clock, sleep=clock.sleep)
        try:
            waits = (watcher.wait(platform, "slow", f"d{n}", {}, "ready", 60) for n in range(waiters))
            return await asyncio.gather(*waits)
        finally:
            await watcher.aclose()

    ready = asyncio.run(main())
    assert all(live.status == "RUNNING" for live in ready)
    lists, reads = platform.count("list"), platform.count("read")
    assert reads == 0
    assert lists <= 12, (
        lists
    )  # one per poll: 6 s at backoff 0.2 s .. 1 s; one waiter alone would poll ~9 times
    assert lists < waiters / 10


def test_an_apply_waits_for_100_deployments_through_list_reads(tmp_path: Path) -> None:
    app = build_app(EmulatorConfig(provision_seconds=0.5))
    counts = app.state.request_counts
    stack_file = write_stack(tmp_path, {"deployments": stackgen.ms_deployments(100)})

    async def main() -> dict[str, Any]:
        providers = providers_over(app)
        try:
            await converge(stack_file, providers, parallelism=10)
            return counts.snapshot()["routes"]
        finally:
            for p in providers.values():
                await p.aclose()

    routes = asyncio.run(main())
    assert routes["POST /api/v1/deployments"] == 100
    assert routes.get("GET /api/v1/deployments/{deployed_model}", 0) == 0  # nobody polled one by one
    assert routes["GET /api/v1/deployments"] <= 40, routes  # polls of one page, shared by all 100


def _step_bytes(tmp: Path, n: int) -> tuple[int, bool]:
    """Bytes the state files gain while an apply records one create among ``n`` recorded resources,
    and whether the state document itself was rewritten."""
    provider = FakeProvider()
    detail = "x" * 600  # about 1 KiB a resource: the documents are well past the journal threshold
    specs = [res(f"models.m{i}", {"name": f"m{i}", "detail": detail}) for i in range(n)]
    resources: dict[str, ResourceState] = {}
    for i, spec in enumerate(specs):
        oid = f"id-{i}"
        provider.objects[oid] = {**spec.attrs, "_kind": "thing"}
        resources[spec.address] = ResourceState(
            address=spec.address,
            platform="fake",
            kind="thing",
            id=oid,
            name=f"m{i}",
            attributes=dict(spec.attrs),
        )
    provider._n = n
    stack = stack_of(*specs, res("models.new", {"name": "new", "detail": detail}))
    state = StateDoc.new("t").model_copy(update={"resources": resources}).bumped()
    backend = LocalBackend(tmp / f"n{n}" / "state.json")
    backend.write(state)
    assert backend.read() == state
    before = os.stat(backend.path)

    async def main() -> None:
        live = await refresh(state, {"fake": provider})
        plan = build_plan(stack, state, live, {"fake": provider})
        assert [c.address for c in plan.actionable] == ["models.new"]
        report = await Applier(plan, stack, {"fake": provider}, backend, state).run()
        assert report.ok

    asyncio.run(main())
    after = os.stat(backend.path)
    rewritten = (before.st_ino, before.st_mtime_ns) != (after.st_ino, after.st_mtime_ns)
    appended = backend.journal_path.stat().st_size if backend.journal_path.exists() else 0
    assert LocalBackend(backend.path).read() == backend.read()
    return appended, rewritten


def test_recording_one_step_appends_the_same_bytes_at_100_and_at_2000_resources(tmp_path: Path) -> None:
    small, small_rewritten = _step_bytes(tmp_path, 100)
    large, large_rewritten = _step_bytes(tmp_path, 2000)
    assert not small_rewritten and not large_rewritten
    assert 0 < small <= 8 * 1024, small  # intent, result, done and the cleared journal: four short lines
    assert abs(large - small) <= 32, (small, large)  # only the digits of the ids differ
