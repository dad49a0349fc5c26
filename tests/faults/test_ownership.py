"""Two stacks, the same names on every platform: neither ever takes the other's objects.

Stack ``alpha`` is applied. Stack ``beta`` declares a Fabric workspace and a
Model Studio deployment (model + suffix) that ``alpha`` already has: its plan
refuses them, names ``reconciler import``, and nothing is created. ZStack
objects are made with a client-chosen ``resourceUuid``, so a same-named model
service is allowed; killed right after its create landed (its answer never
used), beta's next plain apply adopts its own object by that uuid, never
alpha's namesake, and ``destroy`` of beta leaves alpha whole.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Served
from tests.faults.stacks import (
    Platforms,
    cli,
    fabric_workspace,
    in_process,
    ms_deployment,
    read_state,
    serve,
    stop,
    write_stack,
    zs_service,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    tmp = tmp_path_factory.mktemp("ownership")
    emulator = serve(tmp / "emulator")
    try:
        yield emulator, tmp
    finally:
        stop(emulator)


def test_a_same_named_object_of_another_stack_is_refused_at_plan_with_the_import_command(
    world: tuple[Served, Path],
) -> None:
    emulator, tmp = world
    shared = {
        "workspaces": {"w": fabric_workspace("shared", 0)},
        "deployments": {"ms": ms_deployment("chat", "shared1")},
    }
    alpha = write_stack(tmp, "alpha", emulator, shared)
    assert in_process(tmp, "apply", alpha, "--auto-approve").code == 0
    recorded = read_state(tmp, "alpha")["resources"]
    before = sorted(o.id for o in Platforms(emulator).objects())

    beta = write_stack(tmp, "beta", emulator, shared)
    refused = in_process(tmp, "plan", beta)
    assert refused.code == 1, refused.text
    ws, ms = recorded["workspaces.w"]["id"], recorded["deployments.ms"]["id"]
    assert (
        f"workspaces.w: fabric workspace shared-ws0 ({ws}) exists, not managed by this stack: "
        f"import it with `reconciler import beta.yaml workspaces.w {ws}`" in refused.err
    )
    assert f"deployments.ms: modelstudio deployment qwen3-8b/shared1 ({ms}) exists" in refused.err
    assert "Traceback" not in refused.err
    assert in_process(tmp, "apply", beta, "--auto-approve").code == 1
    assert sorted(o.id for o in Platforms(emulator).objects()) == before  # nothing made, nothing taken
    assert read_state(tmp, "beta")["resources"] == {}


def test_a_killed_zstack_create_adopts_its_own_uuid_never_the_namesake(world: tuple[Served, Path]) -> None:
    emulator, tmp = world
    sections = {"models": {"svc": zs_service("same-svc")}}
    gamma = write_stack(tmp, "gamma", emulator, sections)
    assert in_process(tmp, "apply", gamma, "--auto-approve").code == 0
    theirs = read_state(tmp, "gamma")["resources"]["models.svc"]["id"]

    delta = write_stack(tmp, "delta", emulator, sections)
    killed = cli(tmp, "apply", delta, "--auto-approve", env={"RECONCILER_CRASH_AT": "response:1"})
    assert killed.code == -signal.SIGKILL, killed.text
    resumed = cli(tmp, "apply", delta, "--auto-approve")
    assert resumed.code == 0, resumed.text
    mine = read_state(tmp, "delta")["resources"]["models.svc"]["id"]
    assert mine != theirs
    services = [o for o in Platforms(emulator).zstack() if o.name == "same-svc"]
    assert sorted(o.id for o in services) == sorted([mine, theirs])  # made once each

    assert in_process(tmp, "destroy", delta, "--auto-approve").code == 0
    left = [o.id for o in Platforms(emulator).zstack() if o.name == "same-svc"]
    assert left == [theirs]
