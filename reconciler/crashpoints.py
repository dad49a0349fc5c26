"""Deterministic crash points, for proving crash safety: a test sets an environment variable
and the process kills itself with SIGKILL at exactly that point, as `kill -9` would.

``RECONCILER_CRASH_AT=<point>:<n>`` kills the process the n-th time (1-based) ``point`` is
reached. Points:

* ``state-write``: right after a state write (a journal intent or a step's result) is durable;
* ``response``: after a platform answered a request, before the answer is used (the change
  landed, the client never learns of it);
* ``wait``: when the applier starts waiting for an asynchronous lifecycle.

Unset (the normal case), :func:`reached` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get("RECONCILER_CRASH_AT", "")
    point, _, count = spec.partition(":")
    if not point or not count.isdigit():
        return None
    return point, int(count)


def reached(point: str) -> None:
    target = _target()
    if target is None or target[0] != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
