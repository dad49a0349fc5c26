"""SIGINT and SIGTERM mid-apply: the run stops cleanly, says what is left, and a plain apply goes on.

Each test runs ``python -m reconciler apply`` as a subprocess against a served
emulator whose deployments take a few seconds to provision, waits (bounded)
for a line of its own output, and sends it a signal. The first signal stops
new steps, lets calls under way finish, writes the state and releases the
lock: exit 130 (SIGINT) or 143 (SIGTERM) with ``N done, M not started; run
apply again to continue``. A second SIGINT exits at once. In every case the
next plain ``apply`` (no force-unlock, no person) completes the stack, with
nothing created twice and nothing left untracked.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.faults.stacks import (
    Platforms,
    Served,
    check_true_to_platform,
    cli,
    one_of_each,
    read_state,
    serve,
    stop,
    write_stack,
)

LINE_TIMEOUT = 60.0  # seconds to wait for the line a signal is sent on
SUMMARY = re.compile(
    r"Interrupted by (SIGINT|SIGTERM): (\d+) done, (\d+) not started; run apply again to continue"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    tmp = tmp_path_factory.mktemp("signals")
    emulator = serve(tmp / "emulator", "--provision-seconds", "3")
    try:
        yield emulator, tmp
    finally:
        stop(emulator)


class Apply:
    """A ``reconciler apply`` subprocess whose output lines are read as they come (one thread per stream)."""

    def __init__(self, cwd: Path, stack: str, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RECONCILER_CRASH_AT"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", stack, *args],
            cwd=cwd,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: dict[str, list[str]] = {"out": [], "err": []}
        self.queue: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self.readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr))
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self.queue.put((name, line))
        self.queue.put((name, None))

    def wait_for(self, text: str, stream: str = "out") -> None:
        """Collect output until a line of ``stream`` holds ``text`` (bounded in time)."""
        deadline = time.monotonic() + LINE_TIMEOUT
        ended: set[str] = set()
        while time.monotonic() < deadline and len(ended) < 2:
            try:
                name, line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                ended.add(name)
                continue
            self.lines[name].append(line)
            if name == stream and text in line:
                return
        self.proc.kill()
        self.finish()
        raise AssertionError(f"never printed {text!r}:\n{self._text()}")

    def finish(self) -> tuple[int, str, str]:
        self.proc.wait(timeout=LINE_TIMEOUT)
        for reader in self.readers:
            reader.join(timeout=LINE_TIMEOUT)
        while not self.queue.empty():
            name, line = self.queue.get_nowait()
            if line is not None:
                self.lines[name].append(line)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode, "".join(self.lines["out"]), "".join(self.lines["err"])

    def _text(self) -> str:
        return "".join(self.lines["out"]) + "\n--- stderr\n" + "".join(self.lines["err"])


def _resumed(tmp: Path, emulator: Served, stack: str) -> None:
    """The next plain apply completes the stack; then nothing is left to do and the state is true."""
    again = cli(tmp, "apply", stack, "--auto-approve")
    assert again.code == 0, again.text
    assert "Apply complete!" in again.out
    assert "force-unlock" not in again.err
    settled = cli(tmp, "plan", stack, "--detailed-exitcode")
    assert settled.code == 0, settled.text
    states = [read_state(tmp, p.stem) for p in tmp.glob("state/*.json") if not p.name.endswith(".backup")]
    check_true_to_platform(Platforms(emulator).objects(), states)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_apply_cleanly_and_the_next_apply_goes_on(
    served: tuple[Served, Path], sig: signal.Signals, code: int
) -> None:
    emulator, tmp = served
    name = f"s{sig.name.lower()[3:]}"
    stack = write_stack(tmp, name, emulator, one_of_each(name))
    run = Apply(tmp, stack, "--auto-approve", "--parallelism", "1")
    run.wait_for("workspaces.w: Creating...")
    run.proc.send_signal(sig)
    returncode, out, err = run.finish()
    assert returncode == code, f"{out}\n{err}"
    assert "Traceback" not in err
    assert f"{sig.name}: stopping; no new step starts" in err
    summary = SUMMARY.search(err)
    assert summary is not None, err
    assert summary.group(1) == sig.name
    done, left = int(summary.group(2)), int(summary.group(3))
    assert left >= 1 and done + left <= 7, err  # the deployments wait on the workspace: not all started
    assert "not started: create deployments." in err
    assert "The state records everything done; the lock is released." in err
    state = read_state(tmp, name)
    assert state["journal"] == [], "every call made has its result recorded: nothing to recover"
    _resumed(tmp, emulator, stack)


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    """A served emulator answering every call after 1.5 s: a create is still under way at the 2nd signal."""
    tmp = tmp_path_factory.mktemp("slow")
    emulator = serve(tmp / "emulator", "--latency-ms", "1500")
    try:
        yield emulator, tmp
    finally:
        stop(emulator)


def test_a_second_sigint_exits_at_once_and_the_journal_covers_it(slow: tuple[Served, Path]) -> None:
    emulator, tmp = slow
    stack = write_stack(tmp, "twice", emulator, one_of_each("twice"))
    run = Apply(tmp, stack, "--auto-approve", "--parallelism", "1")
    run.wait_for("workspaces.w: Creating...")
    run.proc.send_signal(signal.SIGINT)  # the workspace's create call is under way (1.5 s)
    run.wait_for("SIGINT: stopping", stream="err")
    run.proc.send_signal(signal.SIGINT)
    returncode, out, err = run.finish()
    assert returncode == 130, f"{out}\n{err}"
    assert "Traceback" not in err
    assert "SIGINT again: exiting now; the next `reconciler apply` goes on from the journal" in err
    _resumed(tmp, emulator, stack)


def test_ctrl_c_at_the_prompt_changes_nothing(served: tuple[Served, Path]) -> None:
    emulator, tmp = served
    stack = write_stack(tmp, "prompt", emulator, one_of_each("prompt"))
    run = Apply(tmp, stack)
    run.wait_for("Do you want to perform these actions?")
    run.proc.send_signal(signal.SIGINT)
    returncode, out, err = run.finish()
    assert returncode == 130, f"{out}\n{err}"
    assert "Traceback" not in err
    assert "Interrupted by SIGINT; nothing on the platforms was changed." in err
    assert not any(o.name.startswith("prompt-") for o in Platforms(emulator).objects())
