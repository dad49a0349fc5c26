"""Recorded state: the state document and the backends that store it.

* :mod:`~reconciler.state.document` -- :class:`StateDoc` and its parts, as
  immutable values; pure (no I/O). Serialises to checksummed JSON and refuses
  to read what it cannot trust (truncated, corrupted, newer format).
* :mod:`~reconciler.state.backend` -- the :class:`Backend` protocol (read,
  compare-and-set write, lock, force-unlock) and :class:`LockInfo`.
* :mod:`~reconciler.state.local` -- :class:`LocalBackend`, a JSON file with a
  backup and a lock file beside it. (A PostgreSQL backend follows the same
  protocol and passes the same contract tests.)

Only backends touch storage. Nothing here talks to platforms, prints, or
decides what to change: callers build new documents with the pure helpers,
bump the serial, and hand them to a backend.
"""

from __future__ import annotations

from reconciler.state.backend import Backend, LockInfo
from reconciler.state.document import (
    FORMAT_VERSION,
    JournalEntry,
    JournalPhase,
    ResourceState,
    StateDoc,
    utc_timestamp,
)
from reconciler.state.local import LocalBackend

__all__ = [
    "FORMAT_VERSION",
    "Backend",
    "JournalEntry",
    "JournalPhase",
    "LocalBackend",
    "LockInfo",
    "ResourceState",
    "StateDoc",
    "utc_timestamp",
]
