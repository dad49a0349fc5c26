"""State operations: rm, mv, pull, push, history, restore, migrate and force-unlock.

Two layers, as everywhere in reconciler:

* pure decisions on documents -- :func:`removed`, :func:`moved` and
  :func:`transfer_of` (what pushing or migrating one document over another
  means) -- which take values and return values or raise;
* verbs on backends -- :func:`remove`, :func:`move`, :func:`pull`,
  :func:`push`, :func:`history`, :func:`restore`, :func:`migrate`,
  :func:`force_unlock` -- each mutating one holding the backend's lock for its
  command and writing a greater serial (a restore writes the old document as
  a *new* serial; it never rewinds).

Nothing here talks to platforms (importing a live object is
:mod:`reconciler.adoption`), prints or exits.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from reconciler.errors import LockError, StateError, UsageError
from reconciler.stack.spec import SECTIONS
from reconciler.state.backend import Backend
from reconciler.state.document import ResourceState, StateDoc
from reconciler.state.history import Version, VersionedBackend


@dataclass(frozen=True)
class Transfer:
    """What writing ``doc`` over the stored state takes.

    ``how``: ``"write"`` (an ordinary compare-and-set write: no state yet, or
    the same lineage at an older serial), ``"replace"`` (forced: lineage may
    differ; compare-and-set on ``over_serial``) or ``"none"`` (already there).
    """

    doc: StateDoc
    how: Literal["write", "replace", "none"]
    over_serial: int | None = None


# -- pure decisions ----------------------------------------------------------------------------


def removed(doc: StateDoc, addresses: Sequence[str]) -> StateDoc:
    """``doc`` without ``addresses`` (each must be recorded). Serial left alone."""
    _no_open_journal(doc, "state rm")
    unknown = [a for a in addresses if a not in doc.resources]
    if unknown:
        raise UsageError(f"not in the state: {', '.join(unknown)} (recorded: {_recorded(doc)})")
    out = doc
    for address in addresses:
        out = out.without_resource(address)
    return out


def moved(doc: StateDoc, source: str, destination: str) -> StateDoc:
    """``doc`` with ``source`` recorded at ``destination`` instead; dependencies follow. Serial left alone."""
    _no_open_journal(doc, "state mv")
    if source not in doc.resources:
        raise UsageError(f"{source} is not in the state (recorded: {_recorded(doc)})")
    if destination in doc.resources:
        raise UsageError(
            f"{destination} is already in the state (id {doc.resources[destination].id}); "
            f"remove it first with `reconciler state rm`"
        )
    section, dot, key = destination.partition(".")
    if not dot or section not in SECTIONS or not key:
        raise UsageError(
            f"{destination!r} is not a resource address; expected SECTION.KEY with a section of "
            f"{', '.join(SECTIONS)}"
        )
    if section != source.partition(".")[0]:
        raise UsageError(
            f"cannot move {source} to {destination}: the section decides the kind of resource; "
            f"move it within {source.partition('.')[0]}"
        )
    resources: dict[str, ResourceState] = {}
    for address, resource in doc.resources.items():
        if address == source:
            address, resource = destination, resource.model_copy(update={"address": destination})
        if source in resource.dependencies:
            renamed = tuple(destination if d == source else d for d in resource.dependencies)
            resource = resource.model_copy(update={"dependencies": renamed})
        resources[address] = resource
    return doc.model_copy(update={"resources": resources})


def transfer_of(
    stored: StateDoc | None, incoming: StateDoc, *, stack: str, force: bool, what: str
) -> Transfer:
    """What writing ``incoming`` over ``stored`` (the state of ``stack``) takes; ``what`` names the command.

    Refused (``StateError``) without ``force`` when ``incoming`` is of another
    stack, of another lineage, older than ``stored``, or of the same serial
    with other contents. Forced, it replaces the stored state with a serial
    greater than the stored one (the serial never goes back).
    """
    if stored is None:
        if incoming.stack != stack and not force:
            raise StateError(
                f"refusing to {what}: the document is the state of stack {incoming.stack!r}, "
                f"not {stack!r}; use --force if that is intended"
            )
        return Transfer(incoming, "write")
    problem: str | None = None
    if incoming.stack != stack:
        problem = f"the document is the state of stack {incoming.stack!r}, not {stack!r}"
    elif incoming.lineage != stored.lineage:
        problem = (
            f"its lineage {incoming.lineage} differs from the stored lineage {stored.lineage}: "
            "it is an unrelated state, and writing it would replace the recorded one"
        )
    elif incoming.serial < stored.serial:
        problem = (
            f"its serial {incoming.serial} is older than the stored serial {stored.serial}: "
            "writing it would lose later changes"
        )
    elif incoming.serial == stored.serial:
        if incoming.to_json() == stored.to_json():
            return Transfer(stored, "none")
        problem = f"it has the stored serial {stored.serial} but other contents: the two copies diverged"
    if problem is None:
        return Transfer(incoming, "write")
    if not force:
        raise StateError(f"refusing to {what}: {problem}; use --force to write it anyway")
    serial = max(incoming.serial, stored.serial + 1)
    return Transfer(incoming.model_copy(update={"serial": serial}), "replace", stored.serial)


# -- verbs on backends -------------------------------------------------------------------------


def remove(
    backend: Backend, addresses: Sequence[str], *, lock_timeout: float = 0.0
) -> tuple[ResourceState, ...]:
    """Forget ``addresses`` (the platform objects stay as they are); returns what was removed."""
    with backend.lock("reconciler state rm", lock_timeout):
        doc = _existing(backend)
        gone = tuple(doc.resources[a] for a in dict.fromkeys(addresses) if a in doc.resources)
        backend.write(removed(doc, addresses).bumped())
    return gone


def move(backend: Backend, source: str, destination: str, *, lock_timeout: float = 0.0) -> ResourceState:
    """Record ``source`` at ``destination``; returns the moved resource."""
    with backend.lock("reconciler state mv", lock_timeout):
        doc = moved(_existing(backend), source, destination).bumped()
        backend.write(doc)
    return doc.resources[destination]


def pull(backend: Backend) -> str:
    """The stored state as canonical JSON text (what ``state push`` takes back)."""
    return _existing(backend).to_json()


def push(
    backend: Backend,
    text: str,
    *,
    source: str,
    stack: str,
    force: bool = False,
    lock_timeout: float = 0.0,
) -> Transfer:
    """Write the state ``text`` (read from ``source``) as the state of ``stack``; see :func:`transfer_of`."""
    incoming = StateDoc.from_json(text, source, backup=f"good copy of {source}")
    with backend.lock("reconciler state push", lock_timeout):
        change = transfer_of(backend.read(), incoming, stack=stack, force=force, what="push")
        _carry_out(backend, change)
    return change


def history(backend: Backend, limit: int | None = None) -> tuple[Version, ...]:
    """Kept versions, newest first."""
    return _versioned(backend).history(limit)


def restore(backend: Backend, serial: int, *, lock_timeout: float = 0.0) -> StateDoc:
    """Write the version ``serial`` again, as a new serial; returns what was written."""
    versioned = _versioned(backend)
    with backend.lock("reconciler state restore", lock_timeout):
        current = backend.read()
        if current is not None and current.serial == serial:
            raise UsageError(
                f"serial {serial} is the current state of {backend.describe()}; nothing to restore"
            )
        old = versioned.version(serial)
        base = current.serial if current is not None else old.serial
        doc = old.model_copy(update={"serial": base + 1})
        versioned.replace(doc, over_serial=current.serial if current is not None else None)
    return doc


def migrate(source: Backend, target: Backend, *, force: bool = False, lock_timeout: float = 0.0) -> Transfer:
    """Copy the state from ``source`` to ``target``, keeping lineage and serial. Both are locked.

    ``target`` may hold nothing, the same state, or an older serial of the
    same lineage; anything else is refused unless ``force``. ``source`` is left as it is.
    """
    if source.describe() == target.describe():
        raise UsageError(f"the state is already in {source.describe()}; choose another target")
    with (
        source.lock("reconciler state migrate", lock_timeout),
        target.lock("reconciler state migrate", lock_timeout),
    ):
        doc = source.read()
        if doc is None:
            raise UsageError(f"there is no state in {source.describe()} to migrate")
        change = transfer_of(
            target.read(), doc, stack=doc.stack, force=force, what=f"migrate to {target.describe()}"
        )
        _carry_out(target, change)
    return change


def force_unlock(backend: Backend, lock_id: str) -> str:
    """Remove the lock ``lock_id`` (the id the lock message shows, as Terraform asks for it).

    Refused when another lock holds the state, and when the holder is a live
    process on this host (its flock is held: stopping that run is the way).
    """
    found = backend.lock_holder()
    if found is None:
        return "The state was not locked."
    current, stale = found
    if current.id != lock_id:
        raise UsageError(f"{backend.describe()} is {current.describe()}, not lock {lock_id}; nothing removed")
    from reconciler.state.local import LocalBackend

    if isinstance(backend, LocalBackend) and not stale and current.host == socket.gethostname():
        raise LockError(
            f"{backend.describe()} is {current.describe()}, and that process is running on this host; "
            f"stop it (kill {current.pid}) instead: a lock dies with its process"
        )
    holder = backend.force_unlock()
    if holder is None:
        return "The state was not locked."
    message = f"Removed the lock ({holder.describe()})."
    from reconciler.state.postgres import PostgresBackend  # here: only postgres users need psycopg loaded

    if isinstance(backend, PostgresBackend):
        message += (
            "\nThe PostgreSQL lock is held by a database session and ends with it, so a run that dies "
            "releases it by itself; this ended the session that still held it (a run that hangs, or a "
            "client that vanished without closing its connection). If that run is still going, its next "
            "state write fails."
        )
    return message


# -- helpers -----------------------------------------------------------------------------------


def _carry_out(backend: Backend, change: Transfer) -> None:
    if change.how == "write":
        backend.write(change.doc)
    elif change.how == "replace":
        _versioned(backend).replace(change.doc, over_serial=change.over_serial)


def _existing(backend: Backend) -> StateDoc:
    doc = backend.read()
    if doc is None:
        raise UsageError(f"there is no state in {backend.describe()} yet; run apply (or import) first")
    return doc


def _versioned(backend: Backend) -> VersionedBackend:
    if not isinstance(backend, VersionedBackend):
        raise UsageError(f"{backend.describe()} keeps no history of versions")
    return backend


def _no_open_journal(doc: StateDoc, command: str) -> None:
    if doc.journal_open():
        addresses = ", ".join(sorted({e.address for e in doc.journal_open()}))
        raise UsageError(
            f"the state records operations an interrupted run left unfinished ({addresses}); "
            f"run `reconciler plan` first to resolve them, then `reconciler {command}`"
        )


def _recorded(doc: StateDoc) -> str:
    return ", ".join(sorted(doc.resources)) or "none"
