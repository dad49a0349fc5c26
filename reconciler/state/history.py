"""Earlier versions of a stack's state, and the backends that keep them.

Every write to a :class:`VersionedBackend` is kept as a :class:`Version`
(serial, lineage, who wrote it, when, with which command) beside the current
document, so that ``reconciler state history`` can list earlier versions and
``reconciler state restore`` can bring one back. A restore never rewinds the
serial: the old document is written again as a *new* serial.

:meth:`VersionedBackend.replace` is the one write that may change the lineage
(``state push --force``, ``state restore`` of a version from another lineage,
``state migrate --force``). It is still compare-and-set, on the serial the
caller read: a stale caller gets a :class:`~reconciler.errors.StateError` and
nothing is overwritten.

This module only defines values and the protocol; the local and PostgreSQL
backends implement it.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from reconciler.errors import StateError
from reconciler.state.backend import Backend
from reconciler.state.document import StateDoc

HISTORY_KEEP = 100
"""How many versions a backend keeps per stack by default (the newest ones).

A stack sets its own with ``history_keep: N`` in its backend block (1 or more).
"""

HISTORY_KEEP_MAX = 1_000_000
"""The largest ``history_keep`` a stack file may ask for."""

# Versions are stored compressed: each one is its canonical JSON document, gzip-compressed
# on its own (``compress``/``decompress``: level 6, no timestamp, so equal documents give
# equal bytes). No version depends on another (no deltas): pruning, a torn write or a lost
# file costs only that version. Measured: 100 versions of a 50-resource state (45 KiB
# each, one resource changed per write) took 4,546,830 bytes as plain JSON files (4.8 MB
# on disk) and take 217,484 bytes gzip-compressed (400 KB on disk in 4 KiB blocks): about
# 21x less data, 12x less disk (local backend). PostgreSQL already compressed the text column
# (TOAST, pglz): those 100 rows took 330,230 bytes of document as text, 217,140 as gzip
# bytea (table with index: 434,176 -> 352,256 bytes).
# Versions written uncompressed by earlier releases are still read, and converted a few
# per write (local: ``N.json`` -> ``N.json.gz``; PostgreSQL: ``document`` -> ``document_gz``).

_COMPRESS_LEVEL = 6

UNKNOWN_COMMAND = "unknown (written without the state lock)"
"""The command recorded for a write made while this backend object held no lock."""


@dataclass(frozen=True)
class Version:
    """One stored version of a stack's state (the document itself is read with ``version``).

    ``written_at`` is ISO-8601 UTC; ``who`` is ``user@host``; ``command`` is
    the command that held the lock while writing it (e.g. ``reconciler apply``).
    """

    serial: int
    lineage: str
    written_at: str
    who: str
    command: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class VersionedBackend(Backend, Protocol):
    """A backend that keeps earlier versions. Passes ``tests/state/test_history_contract.py``.

    * ``history`` lists kept versions, newest first (the current one included),
      at most ``limit`` of them.
    * ``version`` returns the document stored as ``serial`` (``StateError``
      naming ``reconciler state history`` when it is not kept).
    * ``replace`` writes ``doc`` whatever its lineage, provided the stored
      serial is still ``over_serial`` (``None``: nothing stored) and
      ``doc.serial`` is greater than it; else ``StateError``, nothing changed.
    """

    def history(self, limit: int | None = None) -> tuple[Version, ...]: ...

    def version(self, serial: int) -> StateDoc: ...

    def replace(self, doc: StateDoc, *, over_serial: int | None) -> None: ...


def compress(document: bytes) -> bytes:
    """One stored version: the document's bytes, gzip-compressed (deterministic: no timestamp)."""
    return gzip.compress(document, compresslevel=_COMPRESS_LEVEL, mtime=0)


def decompress(stored: bytes, where: str) -> str:
    """The text of a version stored by :func:`compress`; ``StateError`` naming ``where`` if damaged."""
    try:
        return gzip.decompress(stored).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise StateError(
            f"the version stored in {where} is damaged (not gzip-compressed JSON: {exc})"
        ) from None


def check_replaces(where: str, stored_serial: int | None, doc: StateDoc, over_serial: int | None) -> None:
    """Raise ``StateError`` unless ``doc`` may replace what ``where`` holds at ``stored_serial``."""
    if stored_serial != over_serial:
        expected = "no state" if over_serial is None else f"serial {over_serial}"
        found = "no state" if stored_serial is None else f"serial {stored_serial}"
        raise StateError(
            f"refusing to replace the state in {where}: expected {expected} but found {found}; "
            "the state changed since it was read (another run wrote it); read it again and retry"
        )
    if stored_serial is not None and doc.serial <= stored_serial:
        raise StateError(
            f"refusing to write serial {doc.serial} over {where} at serial {stored_serial}: "
            "a replacement must carry a greater serial"
        )


def missing_version(serial: int, where: str, stack: str) -> StateError:
    """The error for a serial that is not (or no longer) kept."""
    return StateError(
        f"no version with serial {serial} is kept in {where}; "
        f"list the kept ones with `reconciler state history {stack}`"
    )
