"""After an interrupted apply, objects still provisioning are shown as such and awaited by the next apply.

An apply on the in-process Fabric emulator (a fake clock: provisioning takes 5
simulated seconds) is stopped as a signal would stop it, right after the
deployment's create call: the deployment is recorded, still provisioning. The
next plan does not say "No changes": it shows the deployment as still
provisioning with its live status, and counts it. The next apply waits for it
(no platform change) and records it ready; then the plan is empty.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from reconciler.applier import Applier, ApplyReport, Event
from reconciler.interrupts import StopRequest
from reconciler.plan import Action, Plan, plan_from_dict, plan_to_dict
from reconciler.planner import build_plan
from reconciler.refresh import refresh
from reconciler.render.plan_text import plan_text
from reconciler.schemas import PlanFile
from reconciler.stack.loader import load_stack
from reconciler.state.document import StateDoc
from tests.core.test_constraint_order import stack_text
from tests.fakes import MemoryBackend
from tests.providers.test_fabric_provider import FakeClock, emulated


def test_an_interrupted_create_is_planned_as_still_provisioning_and_the_next_apply_waits(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    provider = emulated(provision_seconds=5, clock=clock)
    providers = {"fabric": provider}
    backend = MemoryBackend()
    file = tmp_path / "resume.yaml"
    file.write_text(stack_text(4, [2]))
    stack = load_stack(file, env={})

    async def plan() -> Plan:
        state = backend.read()
        return build_plan(stack, state, await refresh(state, providers), providers)

    async def apply(the_plan: Plan, stop: StopRequest | None = None) -> ApplyReport:
        def progress(event: Event) -> None:
            if stop is not None and event.address == "deployments.d0" and event.phase == "start":
                stop.request("SIGINT")  # as the first Ctrl-C does: the create goes on, the wait stops

        state = backend.read() or StateDoc.new(stack.name)
        applier = Applier(
            the_plan, stack, providers, backend, state, sleep=clock.sleep, progress=progress, stop=stop
        )
        return await applier.run()

    async def main() -> None:
        try:
            interrupted = await apply(await plan(), StopRequest())
            assert interrupted.interrupted == "SIGINT"
            assert [s.change.address for s in interrupted.provisioning] == ["deployments.d0"]
            recorded = backend.read()
            assert recorded is not None and recorded.journal == ()
            assert "deployments.d0" in recorded.resources

            resumed = await plan()
            d0 = resumed.change("deployments.d0")
            assert d0 is not None and d0.action is Action.NOOP
            assert d0.provisioning == "CREATING"
            assert resumed.has_changes and not resumed.actionable
            saved = plan_to_dict(resumed)
            PlanFile.model_validate(saved)  # the published plan schema describes it
            assert plan_from_dict(saved, "saved").change("deployments.d0") == d0
            text = plan_text(resumed)
            assert "No changes" not in text
            assert (
                "  ... deployments.d0 (fabric service_instance): still provisioning (CREATING);"
                " apply waits for it" in text
            )
            assert "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete. 1 still provisioning." in text

            waited = await apply(resumed)
            assert waited.ok and waited.interrupted is None
            assert [(e.address, e.op) for e in waited.done] == [("deployments.d0", "wait")]
            state = backend.read()
            assert state is not None and state.resources["deployments.d0"].status == "RUNNING"
            settled = await plan()
            assert not settled.has_changes
        finally:
            await provider.aclose()

    asyncio.run(main())
