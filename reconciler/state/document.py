"""The state document: what reconciler recorded about one stack, as a value.

A :class:`StateDoc` is immutable. Every helper returns a new document; nothing
here reads or writes storage (that is what backends are for).

On disk a document is canonical JSON (sorted keys, two-space indent) with one
extra top-level field, ``checksum``: ``"sha256:<hex>"`` of the canonical compact
JSON of everything else. :meth:`StateDoc.from_json` refuses, with a
:class:`~reconciler.errors.StateError` naming the source and what to do, a text
that is not JSON, is truncated, was written by a newer format, fails its
checksum or does not validate. A document without a checksum (written by hand)
is accepted; one with a checksum must match it.

What must hold for every document:

* ``resources[address].address == address``;
* journal ``seq`` strictly increase;
* ``format_version`` is at most :data:`FORMAT_VERSION` (newer ones are refused
  before anything else is read, never misread).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from reconciler.errors import StateError

FORMAT_VERSION = 1
"""The state format this reconciler writes and the newest it reads."""

DEPOSED = "#deposed"
"""Suffix of the address under which a replaced object waits for its deletion (create_before_destroy)."""

CHECKSUM_FIELD = "checksum"
_CHECKSUM_PREFIX = "sha256:"

JournalPhase = Literal["intent", "done", "failed"]


def utc_timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as ISO-8601 UTC with seconds, e.g. ``2026-11-24T15:40:01Z``."""
    moment = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ResourceState(BaseModel, frozen=True, extra="forbid"):
    """One managed object as last recorded.

    ``attributes`` are the last-read, normalised attributes in the provider's
    comparable shape; secrets are never among them. ``scope`` holds what
    addresses the object besides its id (e.g. ``{"workspace_id": "..."}``).
    ``dependencies`` are the addresses this resource depended on when it was
    recorded, so that deletes can run in reverse order after the stack forgot it.
    """

    address: str
    platform: str
    kind: str
    id: str
    name: str | None = None
    scope: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    status: str | None = None
    dependencies: tuple[str, ...] = ()


class JournalEntry(BaseModel, frozen=True, extra="forbid"):
    """One line of the apply journal.

    Before a provider call the applier records an ``intent``; after it, ``done``
    or ``failed`` with the same ``token``. An intent with no later outcome is a
    call whose result is unknown (the process died, the response was lost) and
    must be resolved by reading the platform, never by calling again blindly.

    ``platform``, ``kind``, ``scope`` and ``dependencies`` are what that
    resolution needs when the resource is not in state yet (an interrupted
    create is found by ``name`` in ``scope`` on ``platform``, then recorded).
    """

    seq: int
    address: str
    action: str
    phase: JournalPhase
    name: str | None = None
    token: str
    id: str | None = None
    time: str
    detail: str | None = None
    platform: str | None = None
    kind: str | None = None
    scope: dict[str, str] = {}
    dependencies: tuple[str, ...] = ()
    inputs: dict[str, Any] = {}
    """A create intent's input-only values (never secrets): recovery records them with the object."""


class StateDoc(BaseModel, frozen=True, extra="forbid"):
    """Everything recorded about one stack.

    ``lineage`` is fixed when the state is created and tells two unrelated
    states apart; ``serial`` grows by one on every persisted change, so that a
    backend can refuse a write based on an older read (compare-and-set).
    """

    format_version: int = Field(default=FORMAT_VERSION, ge=1, le=FORMAT_VERSION)
    lineage: str
    serial: int = Field(default=0, ge=0)
    stack: str
    resources: dict[str, ResourceState] = {}
    outputs: dict[str, Any] = {}
    journal: tuple[JournalEntry, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> StateDoc:
        for key, resource in self.resources.items():
            if resource.address != key:
                raise ValueError(f"resources.{key} records address {resource.address!r}; they must agree")
        for before, after in pairwise(entry.seq for entry in self.journal):
            if after <= before:
                raise ValueError(f"journal seq must strictly increase, found {before} then {after}")
        return self

    # -- construction ---------------------------------------------------------------

    @classmethod
    def new(cls, stack: str) -> StateDoc:
        """An empty state for ``stack`` with a fresh lineage and serial 0."""
        return cls(lineage=str(uuid.uuid4()), stack=stack)

    # -- pure updates (each returns a new document; serial is left alone) -----------

    def with_resource(self, resource: ResourceState) -> StateDoc:
        """This document with ``resource`` recorded at its address (added or replaced)."""
        return self.model_copy(update={"resources": {**self.resources, resource.address: resource}})

    def without_resource(self, address: str) -> StateDoc:
        """This document without ``address`` (unchanged if it was not recorded)."""
        if address not in self.resources:
            return self
        return self.model_copy(
            update={"resources": {k: v for k, v in self.resources.items() if k != address}}
        )

    def with_outputs(self, outputs: Mapping[str, Any]) -> StateDoc:
        """This document with its outputs replaced by ``outputs``."""
        return self.model_copy(update={"outputs": dict(outputs)})

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next journal entry should carry."""
        return self.journal[-1].seq + 1 if self.journal else 1

    def with_journal(self, entry: JournalEntry) -> StateDoc:
        """This document with ``entry`` appended to the journal.

        Raises ``ValueError`` if ``entry.seq`` does not follow the last entry's
        (use :attr:`next_seq`): that is a bug in the caller, not a state problem.
        """
        if self.journal and entry.seq <= self.journal[-1].seq:
            raise ValueError(f"journal seq {entry.seq} does not follow {self.journal[-1].seq}")
        return self.model_copy(update={"journal": (*self.journal, entry)})

    def journal_open(self) -> tuple[JournalEntry, ...]:
        """Intents with no later ``done``/``failed`` for the same token, in journal order.

        If one token has several intents without an outcome, the latest is returned.
        """
        open_by_token: dict[str, JournalEntry] = {}
        for entry in self.journal:
            if entry.phase == "intent":
                open_by_token.pop(entry.token, None)
                open_by_token[entry.token] = entry
            else:
                open_by_token.pop(entry.token, None)
        return tuple(open_by_token.values())

    def cleared_journal(self) -> StateDoc:
        """This document with an empty journal (every entry dropped, open ones included)."""
        if not self.journal:
            return self
        return self.model_copy(update={"journal": ()})

    def bumped(self) -> StateDoc:
        """This document with ``serial`` one higher: what to persist after a change."""
        return self.model_copy(update={"serial": self.serial + 1})

    # -- serialisation ----------------------------------------------------------------

    def to_json(self) -> str:
        """Canonical JSON text with a ``checksum`` field; same document, same text."""
        data = self.model_dump(mode="json")
        data[CHECKSUM_FIELD] = _checksum(data)
        return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str, *, backup: str | None = None) -> StateDoc:
        """Parse a state text read from ``source`` (a path or a description).

        ``backup`` is where the previous version can be found, named in the
        messages; it defaults to ``<source>.backup`` (what :class:`LocalBackend`
        writes). Raises :class:`StateError` on anything it cannot trust.
        """
        backup = f"{source}.backup" if backup is None else backup
        restore = f"restore the backup {backup}"
        if not text.strip():
            raise StateError(f"state file {source} is empty (truncated?); {restore}")
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise StateError(
                f"state file {source} is not valid JSON ({exc}); it may be truncated; {restore}"
            ) from None
        if not isinstance(data, dict):
            raise StateError(
                f"state file {source} does not hold a JSON object (found {type(data).__name__}); {restore}"
            )

        version = data.get("format_version")
        if version is None:
            raise StateError(
                f"state file {source} has no format_version, so it is not a reconciler state file; {restore}"
            )
        if type(version) is not int:
            raise StateError(f"state file {source}: format_version must be an integer, found {version!r}")
        if version > FORMAT_VERSION:
            raise StateError(
                f"state file {source} was written by a newer reconciler (format {version}); "
                f"upgrade reconciler (this one reads format {FORMAT_VERSION} and older)"
            )

        if CHECKSUM_FIELD in data:
            recorded = data.pop(CHECKSUM_FIELD)
            if recorded != _checksum(data):
                raise StateError(
                    f"state file {source} is corrupted (checksum mismatch); {restore} "
                    f"(if you edited it by hand on purpose, delete its {CHECKSUM_FIELD!r} field)"
                )

        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(_describe_error(err) for err in exc.errors())
            raise StateError(f"state file {source} is invalid: {problems}; fix it or {restore}") from None


def _checksum(data: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical compact JSON of ``data`` (without any checksum)."""
    body = {k: v for k, v in data.items() if k != CHECKSUM_FIELD}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return _CHECKSUM_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _describe_error(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ())) or "(document)"
    return f"{location}: {error.get('msg', 'invalid')}"
