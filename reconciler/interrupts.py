"""Stopping an apply on SIGINT / SIGTERM without losing anything.

The first signal asks the apply to stop (:class:`StopRequest`): no new step
starts, calls in flight finish and are recorded, steps waiting for their
objects to settle stop waiting (their results are recorded; the next apply
waits for them), state is written and the lock released; the command then
exits 130 (SIGINT) or 143 (SIGTERM). A second signal exits at once: every
state write is atomic and every call's intent is journaled before it is made,
so the next plain run recovers from there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class StopRequest:
    """A request to stop an apply, set from a signal handler on the apply's own event loop."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event: asyncio.Event | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        if self._event is not None:
            self._event.set()

    def event(self) -> asyncio.Event:
        """Set once a stop is requested (made on the running loop, on first use)."""
        if self._event is None:
            self._event = asyncio.Event()
            if self.reason is not None:
                self._event.set()
        return self._event


def _exit_now(name: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"\n{name} again: exiting now; the next `reconciler apply` goes on from the journal\n")
    sys.stderr.flush()
    os._exit(EXIT_CODES[name])


@contextmanager
def stopping_on_signals(stop: StopRequest, say: Callable[[str], None]) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM request ``stop`` (once) and then exit at once.

    Installed on the running event loop; a no-op where the loop cannot take
    signal handlers (not the main thread, or a platform without them).
    """
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, signal._HANDLER]] = []

    def handler(sig: signal.Signals) -> None:
        if stop.requested:
            _exit_now(sig.name)
        stop.request(sig.name)
        say(
            f"\n{sig.name}: stopping; no new step starts, calls under way finish and are recorded "
            f"({sig.name} again exits at once)"
        )

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, handler, sig)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            continue
        installed.append((sig, previous))
    try:
        yield
    finally:
        for sig, previous in installed:
            loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)
