"""Crash campaign: random kills during applies on all three platforms; how many runs need a person.

    python benchmarks/crash_campaign.py                 # 60 kills, seed 13
    python benchmarks/crash_campaign.py --kills 200 --seed 7 --out crash.json

Each round writes its own stack (the seven resources of ``tests/faults``:
Fabric workspace, endpoint, model, service instance; a Model Studio
deployment; a ZStack model service and instance group) on one served
emulator, and starts ``reconciler apply`` in a process of its own, which
dies at a point drawn at random (seeded):

* ``kill -9`` at the n-th state write, the n-th platform answer (the change
  landed, the client never learned of it) or the n-th wait
  (``RECONCILER_CRASH_AT``, :mod:`reconciler.crashpoints`), n drawn from the
  counts of a crash-free apply of the same shape;
* or a SIGTERM (a CI cancel) sent once the apply printed its first step.

Then, as a CI job would, a plain ``reconciler apply --auto-approve``, with no
``force-unlock`` and nobody at the terminal. A round *needs a person* when
that apply does not converge (any exit but 0) or when ``plan
--detailed-exitcode`` after it is not 0. Every round also checks the
platforms hold exactly what its state records, each name once; a last check
covers all rounds together (nothing untracked anywhere).

The last run is in ``benchmarks/crash_campaign.json``. The summary (JSON, ``--out``) gives the kills, how each died, the rounds that
needed a person (with the output that said why) and the duplicates or orphans
found; the exit code is 1 when any round needed a person.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler import crashpoints
from tests.faults.stacks import (
    Forks,
    Platforms,
    check_true_to_platform,
    in_process,
    one_of_each,
    read_state,
    serve,
    stop,
    write_stack,
)

POINTS = ("state-write", "response", "wait")
RESOURCES = 7


def counts(tmp: Path, stack: str) -> dict[str, int]:
    """How often a crash-free apply of ``stack`` reaches each point."""
    seen = dict.fromkeys(POINTS, 0)

    def count(point: str) -> None:
        seen[point] += 1

    reached, crashpoints.reached = crashpoints.reached, count
    try:
        done = in_process(tmp, "apply", stack, "--auto-approve", "--parallelism", "1")
    finally:
        crashpoints.reached = reached
    if done.code != 0:
        raise SystemExit(f"the crash-free apply failed:\n{done.text}")
    return seen


def sigterm_apply(tmp: Path, stack: str, at: int, timeout: float = 120.0) -> tuple[int, str]:
    """``reconciler apply`` in a subprocess, sent SIGTERM once it started its ``at``-th step."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", stack, "--auto-approve", "--parallelism", "1"],
        cwd=tmp,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    out: list[str] = []
    deadline = time.monotonic() + timeout
    started = 0
    for line in proc.stdout:  # ends when the process closes its output
        out.append(line)
        started += line.rstrip().endswith(": Creating...")
        if started >= at or time.monotonic() > deadline:
            proc.send_signal(signal.SIGTERM)
            break
    rest, _ = proc.communicate(timeout=timeout)
    return proc.returncode, "".join(out) + (rest or "")


def campaign(kills: int, seed: int, sigterm_share: float) -> dict[str, Any]:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="crash-campaign-"))
    emulator = serve(tmp / "emulator")
    started = time.monotonic()
    rounds: list[dict[str, Any]] = []
    try:
        total = counts(tmp, write_stack(tmp, "dry", emulator, one_of_each("dry")))
        in_process(tmp, "destroy", "dry.yaml", "--auto-approve")
        forks = Forks()
        for k in range(kills):
            name = f"c{k}"
            stack = write_stack(tmp, name, emulator, one_of_each(name))
            if rng.random() < sigterm_share:
                step = rng.randint(1, RESOURCES)
                how = f"SIGTERM:{step}"
                code, text = sigterm_apply(tmp, stack, step)
            else:
                point = rng.choice(POINTS)
                how = f"{point}:{rng.randint(1, total[point])}"
                args = ("apply", stack, "--auto-approve", "--parallelism", "1")
                died = forks(tmp, *args, env={"RECONCILER_CRASH_AT": how})
                code, text = died.code, died.text
            resumed = in_process(tmp, "apply", stack, "--auto-approve")
            again = in_process(tmp, "plan", stack, "--detailed-exitcode")
            state = read_state(tmp, name)
            mine = [o for o in Platforms(emulator).objects() if o.name.startswith(f"{name}-")]
            problem = ""
            try:
                check_true_to_platform(mine, [state])
                if len(state["resources"]) != RESOURCES:
                    problem = f"{len(state['resources'])} resources recorded, not {RESOURCES}"
            except AssertionError as exc:
                problem = str(exc)
            rounds.append(
                {
                    "round": k,
                    "killed_by": how,
                    "exit": code,
                    "resumed_exit": resumed.code,
                    "plan_exit": again.code,
                    "needed_person": resumed.code != 0 or again.code != 0,
                    "problem": problem,
                    "output": "" if resumed.code == 0 else resumed.text[-2000:],
                    "killed_output": text[-600:] if code not in (-signal.SIGKILL, 143) else "",
                }
            )
            print(
                f"round {k:3d} {how:16s} died {code:4d}  resumed {resumed.code}  plan {again.code}"
                f"{'  ' + problem if problem else ''}",
                flush=True,
            )
        everything = Platforms(emulator).objects()
        states = [read_state(tmp, f"c{k}") for k in range(kills)]
        ours = [o for o in everything if o.name.split("-", 1)[0].startswith("c")]
        overall = ""
        try:
            check_true_to_platform(ours, states)
        except AssertionError as exc:
            overall = str(exc)
    finally:
        stop(emulator)
    how = Counter(r["killed_by"].split(":")[0] for r in rounds)
    return {
        "kills": kills,
        "seed": seed,
        "killed_by": dict(how),
        "died_as_planned": sum(1 for r in rounds if r["exit"] in (-signal.SIGKILL, 143, 130)),
        "needed_person": sum(1 for r in rounds if r["needed_person"]),
        "problems": [r for r in rounds if r["problem"] or r["needed_person"]],
        "overall_problem": overall,
        "seconds": round(time.monotonic() - started, 1),
        "rounds": rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--sigterm-share", type=float, default=0.2, help="share of rounds ended by SIGTERM")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    summary = campaign(args.kills, args.seed, args.sigterm_share)
    text = json.dumps(summary, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    brief = {k: v for k, v in summary.items() if k not in ("rounds", "problems")}
    print(json.dumps(brief, indent=2))
    return 1 if summary["needed_person"] or summary["overall_problem"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
