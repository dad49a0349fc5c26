"""The storage contract every state backend meets, and who holds a lock.

A backend stores one :class:`~reconciler.state.document.StateDoc` (one stack)
and one lock. Every backend passes the same contract tests
(``tests/state/test_local_backend.py::BackendContract``).
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from reconciler.state.document import StateDoc, utc_timestamp


@dataclass(frozen=True)
class LockInfo:
    """Who holds a state lock: enough for a person to find the run and decide.

    ``who`` is ``user@host``; ``since`` is ISO-8601 UTC; ``id`` is unique per
    acquisition, so a stale lock can be named exactly.
    """

    id: str
    who: str
    pid: int
    command: str
    since: str

    @classmethod
    def current(cls, command: str) -> LockInfo:
        """A fresh lock record for this process running ``command``."""
        return cls(
            id=str(uuid.uuid4()),
            who=f"{_user()}@{socket.gethostname()}",
            pid=os.getpid(),
            command=command,
            since=utc_timestamp(),
        )

    @classmethod
    def unknown(cls) -> LockInfo:
        """Stands for a holder whose lock record cannot be read."""
        return cls(id="unknown", who="unknown", pid=0, command="unknown", since="unknown")

    @property
    def host(self) -> str:
        """The host of ``who`` (``user@host``)."""
        return self.who.rpartition("@")[2]

    def describe(self) -> str:
        return (
            f"locked by {self.who} (pid {self.pid}, `{self.command}`) since {self.since}; lock id {self.id}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LockInfo:
        """Parse a stored lock record; raises ``ValueError`` if it is not one."""
        try:
            info = cls(
                id=str(data["id"]),
                who=str(data["who"]),
                pid=int(data["pid"]),
                command=str(data["command"]),
                since=str(data["since"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a lock record: {exc}") from None
        return info


@runtime_checkable
class Backend(Protocol):
    """Where the state of one stack lives.

    What must hold for every implementation:

    * ``read`` returns ``None`` when nothing was ever written, else the stored
      document; a stored document it cannot trust raises ``StateError``.
    * ``write`` is atomic (readers see the old or the new document, never a
      mix) and compare-and-set: it refuses (``StateError``, nothing changed) a
      document whose lineage differs from the stored one or whose serial is not
      greater than the stored serial. Concurrent writers of the same serial:
      exactly one wins. The previous version is kept as a backup.
    * ``lock`` is exclusive across processes and hosts sharing the storage, for
      the whole plan/apply. When held, it waits up to ``timeout`` seconds
      (bounded polling) and then raises ``LockError`` carrying the holder's
      :meth:`LockInfo.describe`. A lock whose holder is gone is reported as
      stale, never taken over silently.
    * ``force_unlock`` removes any lock and returns who held it (``None`` if
      nobody did).
    """

    def describe(self) -> str:
        """Where the state lives, for messages: e.g. ``local file state/quickstart.json``."""
        ...

    def read(self) -> StateDoc | None: ...

    def write(self, doc: StateDoc) -> None: ...

    def lock(self, command: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]: ...

    def lock_holder(self) -> tuple[LockInfo, bool] | None: ...

    def force_unlock(self) -> LockInfo | None: ...

    def check_writable(self) -> None:
        """Prove a write would succeed (before any platform change); else raise ``StateError`` naming
        the path or place and the OS reason."""
        ...


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return f"uid{os.getuid()}"
