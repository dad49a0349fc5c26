"""Every error reconciler raises on purpose, in one tree.

    ReconcilerError (exit 1)
    ├── UsageError              bad flags or arguments
    ├── StackError              a stack file is invalid; carries every Issue found
    │   └── PolicyFileError     a --policy file is invalid (same Issues, file:line)
    ├── StateError              a state file is unreadable, newer, or corrupted
    │   └── LockError           the state is locked by someone else
    ├── PlanFileError           a saved plan is unreadable, newer, or stale
    ├── ProviderError           a platform call failed (platform code and message)
    │   └── TransportError      the platform could not be reached at all
    ├── PolicyError             a change is refused by lifecycle or policy
    ├── StateWriteFailed        (exit 3) the state could not be written mid-apply
    ├── ApplyError              an apply stopped on a failed step
    │   └── RollbackIncomplete  (exit 3) undo could not restore everything
    └── Interrupted             (exit 130 SIGINT, 143 SIGTERM) a signal stopped the run

Anything else that escapes is a bug and keeps its traceback.
The CLI is the one place that turns these into output and an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base of every deliberate error; `exit_code` is what the CLI exits with."""

    exit_code: int = 1

    def render(self) -> str:
        return str(self)


class UsageError(ReconcilerError):
    pass


@dataclass(frozen=True)
class Issue:
    """One problem in a stack file: where it is and what is allowed."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class StackError(ReconcilerError):
    """A stack file failed to load or validate. Holds every issue found, sorted by line."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(sorted(issues, key=lambda i: (i.file, i.line or 0, i.path)))
        super().__init__("\n".join(str(i) for i in self.issues))

    def render(self) -> str:
        n = len(self.issues)
        head = f"the stack is invalid ({n} problem{'s' if n != 1 else ''}); nothing was called or written:"
        return head + "\n" + "\n".join(f"  {i}" for i in self.issues)


class PolicyFileError(StackError):
    """A ``--policy`` file failed to load or validate; its issues name file and line like a stack's."""

    def render(self) -> str:
        n = len(self.issues)
        problems = f"{n} problem{'s' if n != 1 else ''}"
        head = f"the policy file is invalid ({problems}); nothing was called or written:"
        return head + "\n" + "\n".join(f"  {i}" for i in self.issues)


class StateError(ReconcilerError):
    pass


class LockError(StateError):
    pass


class StateWriteFailed(StateError):
    """The state could not be written during an apply: what was done is in a fallback file; a
    person must make the state writable and push it (exit 3)."""

    exit_code = 3


class PlanFileError(ReconcilerError):
    pass


class PolicyError(ReconcilerError):
    pass


class ProviderError(ReconcilerError):
    """A platform answered with an error. `code` and `message` are the platform's own."""

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        operation: str = "",
        address: str | None = None,
        retryable: bool = False,
    ) -> None:
        self.platform = platform
        self.code = code
        self.status = status
        self.operation = operation
        self.address = address
        self.platform_message = message
        self.retryable = retryable
        super().__init__(self._text())

    def _text(self) -> str:
        who = f"{self.address}: " if self.address else ""
        op = f"{self.operation} " if self.operation else ""
        status = f"HTTP {self.status} " if self.status is not None else ""
        code = f"{self.code}: " if self.code else ""
        return f"{who}{self.platform} {op}failed: {status}{code}{self.platform_message}"

    def at(self, address: str) -> ProviderError:
        """The same error, attributed to a resource address."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.address = address
        Exception.__init__(clone, clone._text())
        return clone


class TransportError(ProviderError):
    """The request never got an answer (connection refused, reset, timed out)."""


class ApplyError(ReconcilerError):
    pass


class RollbackIncomplete(ApplyError):
    exit_code = 3


class Interrupted(ReconcilerError):
    """A signal stopped the run; the state records what was done. Exit 128 + the signal's number."""

    def __init__(self, message: str, signal_name: str = "SIGINT") -> None:
        self.signal_name = signal_name
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
        super().__init__(message)

    def render(self) -> str:
        return str(self)
