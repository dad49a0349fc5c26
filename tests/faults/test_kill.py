"""Kill -9 at 24 points of an apply on all three platforms: the next apply converges, nothing twice.

``RECONCILER_CRASH_AT=<point>:<n>`` makes ``reconciler apply`` SIGKILL itself
the n-th time it reaches ``point`` (see :mod:`reconciler.crashpoints`). The
apply runs with ``--parallelism 1``, so the n-th point is the same step every
run. A crash-free apply of the same stack (7 resources: Fabric workspace,
endpoint, model, service instance; a Model Studio deployment; a ZStack model
service and instance group) first counts how often each point is reached
(today 26 state writes: per resource the journal intent, the recorded result,
the journal's done and, for the four asynchronous kinds, the result once
ready; then the write that clears the journal). The kill points are spread
evenly over those counts, first and last included: 15 state writes, 5
answers that landed but were never used (``response``: the create happened,
the client never learned its id; when that was the workspace's create, the next run adopts it)
and the start of each of the 4 waits. Counting first keeps the points valid
when the applier writes its state more or less often.

Every point gets its own stack (names prefixed ``k<n>``) and state file on one
served emulator. Then, for each point, as a user would: ``apply`` is refused
takes over the lock of the dead run (one line says so) and converges; ``plan --detailed-exitcode`` is 0; and
the platform, read through its APIs, holds exactly what the state records,
each name once. A last test checks all points together: nothing on any
platform that no state records.

The first point runs every command as ``python -m reconciler``. To keep the
test fast, the other killed applies are processes forked from a server that
has already imported reconciler (:class:`~tests.faults.stacks.Forks`; still one
process per apply, SIGKILLed by its own crash point), and the commands after
them run the same CLI in-process (click's CliRunner).

Last, a kill during the rollback of a create-before-destroy replacement (at the
rollback's first state write, found by a dry run): the next apply deletes the
parked replacement before creating the address again.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler import crashpoints
from tests.cli.conftest import Served
from tests.faults.stacks import (
    Forks,
    Platforms,
    Run,
    check_true_to_platform,
    cli,
    fabric_instance,
    in_process,
    ms_deployment,
    one_of_each,
    read_state,
    serve,
    stop,
    write_stack,
)

SLOTS = {"state-write": 15, "response": 5, "wait": 4}
"""How many kill points of each kind, spread evenly over the times a crash-free apply reaches it."""
POINTS = [f"{point}#{i + 1}of{n}" for point, n in SLOTS.items() for i in range(n)]
RESOURCES = 7


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    tmp = tmp_path_factory.mktemp("kill")
    emulator = serve(tmp / "emulator", "--fail-provisioning", "*-doomed")
    try:
        yield emulator, tmp
    finally:
        stop(emulator)


def counting(tmp: Path, *args: str) -> dict[str, int]:
    """How often an in-process ``reconciler ARGS`` reaches each crash point (it is not killed)."""
    counts = dict.fromkeys(SLOTS, 0)

    def count(point: str) -> None:
        counts[point] += 1

    reached, crashpoints.reached = crashpoints.reached, count
    try:
        done = in_process(tmp, *args)
    finally:
        crashpoints.reached = reached
    assert done.code == 0, done.text
    return counts


@pytest.fixture(scope="module")
def targets(served: tuple[Served, Path]) -> dict[str, str]:
    """Each slot's ``RECONCILER_CRASH_AT`` value, from a crash-free apply of the same shape."""
    emulator, tmp = served
    stack = write_stack(tmp, "dry", emulator, one_of_each("dry"))
    counts = counting(tmp, "apply", stack, "--auto-approve", "--parallelism", "1")
    assert in_process(tmp, "destroy", stack, "--auto-approve").code == 0
    out = {}
    for slot in POINTS:
        point, _, position = slot.partition("#")
        i, n = (int(x) for x in position.split("of"))
        total = counts[point]
        assert total >= 1, counts
        out[slot] = f"{point}:{1 + round((i - 1) * (total - 1) / max(1, n - 1))}"
    return out


@pytest.fixture(scope="module")
def killed(served: tuple[Served, Path], targets: dict[str, str]) -> dict[str, tuple[str, Run]]:
    """Every point's stack file and its killed apply."""
    emulator, tmp = served
    stacks = {
        slot: write_stack(tmp, f"k{n}", emulator, one_of_each(f"k{n}")) for n, slot in enumerate(POINTS)
    }
    forks = Forks()

    def kill(slot: str) -> Run:
        crash = {"RECONCILER_CRASH_AT": targets[slot]}
        args = ("apply", stacks[slot], "--auto-approve", "--parallelism", "1")
        if slot == POINTS[0]:  # `python -m reconciler`, as a user runs it
            return cli(tmp, *args, env=crash, timeout=60)
        return forks(tmp, *args, env=crash)

    return {slot: (stacks[slot], kill(slot)) for slot in POINTS}


RECOVERED: set[str] = set()


def test_there_are_twenty_or_more_distinct_points(targets: dict[str, str]) -> None:
    assert len(set(targets.values())) == len(POINTS) >= 20, targets


@pytest.mark.parametrize("point", POINTS)
def test_killed_apply_is_resumed_without_duplicates_or_orphans(
    point: str,
    served: tuple[Served, Path],
    targets: dict[str, str],
    killed: dict[str, tuple[str, Run]],
) -> None:
    emulator, tmp = served
    stack, died = killed[point]
    crash = targets[point]
    name = stack.removesuffix(".yaml")
    assert died.code == -signal.SIGKILL, f"not killed at {crash}\n{died.text}"
    assert "Apply complete!" not in died.out

    def run(*args: str) -> Run:
        return cli(tmp, *args) if point == POINTS[0] else in_process(tmp, *args)

    # the workspace's create landed, its answer was never used: the next run must adopt it
    landed = "workspaces.w" not in read_state(tmp, name)["resources"] and any(
        o.name == f"{name}-ws0" for o in Platforms(emulator).fabric()
    )
    # a plain apply, as a CI job runs it: the dead run's lock is taken over, nobody force-unlocks
    resumed = run("apply", stack, "--auto-approve")
    assert resumed.code == 0, resumed.text
    assert "took over the lock" in resumed.err and "its holder is gone" in resumed.err, resumed.text
    assert run("plan", stack, "--detailed-exitcode").code == 0

    state = read_state(tmp, name)
    assert len(state["resources"]) == RESOURCES and state["journal"] == []
    if landed:  # the workspace was created, its id never learned: adopted by name
        assert f"adopted {name}-ws0" in resumed.err, resumed.text

    # the platforms hold exactly what the state records, each name once
    mine = [o for o in Platforms(emulator).objects() if o.name.startswith(f"{name}-")]
    check_true_to_platform(mine, [state])
    assert len(mine) == RESOURCES, sorted(o.name for o in mine)
    RECOVERED.add(point)


def test_after_every_point_nothing_on_any_platform_is_untracked(served: tuple[Served, Path]) -> None:
    if set(POINTS) != RECOVERED:
        pytest.skip("needs every point recovered first (run the whole module)")
    emulator, tmp = served
    states = [read_state(tmp, f"k{n}") for n in range(len(POINTS))]
    ours = [o for o in Platforms(emulator).objects() if re.match(r"k\d+-", o.name)]
    check_true_to_platform(ours, states)
    assert len(ours) == RESOURCES * len(POINTS)


def test_the_crash_point_variable_is_not_set_here() -> None:
    assert "RECONCILER_CRASH_AT" not in os.environ


# -- killed while rolling back a create-before-destroy replacement ---------------------------


def replaced(p: str, *, renamed: bool, doomed: bool) -> dict[str, Any]:
    """A service instance kept by create_before_destroy; ``renamed`` replaces it (name and min)."""
    chat = fabric_instance(f"{p}-chat", "w", "e", "m", mn=1, mx=1)
    chat["lifecycle"] = {"create_before_destroy": True}
    if renamed:
        chat["name"] = f"{p}-chat2"
        chat["config"]["model_instance_config"]["resource"].update({"min": 2, "max": 2})
    out = one_of_each(p)
    out["deployments"] = {"chat": chat}
    if doomed:  # fails its provisioning once the replacement is done: the apply rolls back
        out["deployments"]["doomed"] = ms_deployment(f"{p}-x-doomed", p) | {
            "depends_on": ["deployments.chat"]
        }
    return out


def test_killed_while_rolling_back_a_create_before_destroy_replace(
    served: tuple[Served, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, root = served
    tmp, p = root / "kr", "kr"
    tmp.mkdir()

    def stack(**variant: bool) -> str:
        return write_stack(tmp, p, emulator, replaced(p, **variant))

    assert in_process(tmp, "apply", stack(renamed=False, doomed=False), "--auto-approve").code == 0

    # a dry run finds the first state write of the rollback, which holds `deployments.chat#new`
    writes: list[bool] = []

    def count(point: str) -> None:
        if point == "state-write":
            writes.append("deployments.chat#new" in read_state(tmp, p)["resources"])

    failing = stack(renamed=True, doomed=True)
    with monkeypatch.context() as patch:
        patch.setattr(crashpoints, "reached", count)
        rolled = in_process(tmp, "apply", failing, "--auto-approve", "--parallelism", "1")
    assert rolled.code == 1 and "Rolled back:" in rolled.err, rolled.text
    assert True in writes, writes
    point = f"state-write:{writes.index(True) + 1}"

    crash = {"RECONCILER_CRASH_AT": point}
    died = Forks()(tmp, "apply", failing, "--auto-approve", "--parallelism", "1", env=crash)
    assert died.code == -signal.SIGKILL, f"not killed at {crash}\n{died.text}"
    assert "deployments.chat#new" in read_state(tmp, p)["resources"]

    fixed = stack(renamed=True, doomed=False)  # the user drops what failed and applies again
    resumed = in_process(tmp, "apply", fixed, "--auto-approve", "--parallelism", "1")
    assert resumed.code == 0, resumed.text
    assert in_process(tmp, "plan", fixed, "--detailed-exitcode").code == 0
    mine = [o for o in Platforms(emulator).objects() if o.name.startswith(f"{p}-")]
    check_true_to_platform(mine, [read_state(tmp, p)])
