"""Where one command's time goes: named durations, for benchmarks. Off unless the CLI turns it on.

The hidden ``--timings FILE`` option of the ``reconciler`` command turns on a
process-wide :class:`Timings`; code on the paths worth measuring wraps a
phase in :func:`measure` (a no-op when timing is off: one global read). At
the end the CLI writes the file: one JSON object, name -> every sample in
seconds, in the order taken. Names in use:

``stack.load``    loading, rendering and validating the stack file
``state.read``    reading the state before planning
``refresh``       reading the live objects
``plan.build``    the planner
``plan.render``   rendering the plan for the terminal
``state.write``   one ``backend.write`` by the applier (several per step:
                  intent, result, outcome, readiness)
``apply``         the applier's whole run

Not a log and not a metric for production: it exists so that
``benchmarks/run.py`` can report the time spent persisting state per step
without guessing it from the outside.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path


class Timings:
    """Samples of named durations, in seconds."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.samples, indent=1, sort_keys=True) + "\n", encoding="utf-8")


_current: Timings | None = None


def start() -> Timings:
    """Turn timing on for this process (the CLI does, for ``--timings``); returns the recorder."""
    global _current
    _current = Timings()
    return _current


def stop() -> None:
    global _current
    _current = None


@contextlib.contextmanager
def measure(name: str) -> Iterator[None]:
    """Time the block as one sample of ``name`` when timing is on."""
    recorder = _current
    if recorder is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        recorder.add(name, time.perf_counter() - started)
