"""State deltas: what changed between two documents, as one checksummed line, and replaying lines.

Purely data, no I/O (the local backend appends the lines to ``<state>.journal``
and reads them back; see :mod:`reconciler.state.local`).

A line is canonical compact JSON (sorted keys) ending in ``\\n``::

    {"lineage": "...", "prev": 41, "serial": 42,
     "set": {"deployments.chat": {...ResourceState...}}, "del": ["models.old"],
     "keep": 7, "add": [{...JournalEntry...}],
     "outputs": {...},                      (only when the outputs changed)
     "checksum": "sha256:<hex>"}

``prev`` is the serial of the document the line applies to and ``serial`` the
one it makes; ``set`` holds added and changed resources, ``del`` removed
addresses; the apply journal keeps its first ``keep`` entries and appends
``add``. ``checksum`` covers everything else, as the document's own does.

:func:`delta` is cheap for documents made from one another by the
:class:`~reconciler.state.document.StateDoc` helpers: they copy the
resources mapping but keep every unchanged :class:`ResourceState` object, so
one identity scan finds what changed, and the line's size depends on what
changed, not on the size of the document.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterator
from itertools import compress
from typing import Any

from pydantic import ValidationError

from reconciler.errors import StateError
from reconciler.state.document import JournalEntry, ResourceState, StateDoc

CHECKSUM = "checksum"
_PREFIX = "sha256:"


def delta(old: StateDoc, new: StateDoc) -> dict[str, Any] | None:
    """The line that turns ``old`` into ``new`` (without its checksum), or None when no line can.

    None when the two documents differ in anything but resources, apply
    journal, outputs and serial (lineage, stack, format): those are written in full.
    """
    if (old.lineage, old.stack, old.format_version) != (new.lineage, new.stack, new.format_version):
        return None
    line: dict[str, Any] = {"lineage": new.lineage, "prev": old.serial, "serial": new.serial}
    changed: dict[str, Any] = {}
    removed: list[str] = []
    if new.resources is not old.resources:
        before, after = old.resources, new.resources
        # the identity scan, at C speed: addresses whose object is not the very one recorded before
        moved = map(operator.is_not, after.values(), map(before.get, after.keys()))
        candidates = compress(after.keys(), moved)
        added = 0
        for address in candidates:
            was, resource = before.get(address), after[address]
            if was is None:
                added += 1
            elif was == resource:
                continue
            changed[address] = resource.model_dump(mode="json")
        if len(before) + added > len(after):  # something went: find what
            removed = [address for address in before if address not in after]
    line["set"] = changed
    line["del"] = removed
    keep = _common_prefix(old.journal, new.journal)
    line["keep"] = keep
    line["add"] = [entry.model_dump(mode="json") for entry in new.journal[keep:]]
    if new.outputs is not old.outputs and new.outputs != old.outputs:
        line["outputs"] = new.outputs
    return line


def encode(line: dict[str, Any]) -> bytes:
    """``line`` with its checksum, as one line of text (ends in ``\\n``)."""
    body = _canonical(line)
    sealed = {**line, CHECKSUM: _PREFIX + hashlib.sha256(body.encode("utf-8")).hexdigest()}
    return (_canonical(sealed) + "\n").encode("utf-8")


def replay(base: StateDoc, data: bytes, source: str) -> StateDoc:
    """``base`` with every line of ``data`` that follows it applied, in order.

    Lines made before ``base`` was written (``serial`` not above the base's)
    are skipped: a compaction that wrote the base may have died before it
    emptied the journal. A last line without its newline is a write that never
    returned and is ignored; any other line that is not whole, checksummed and
    continuing the document raises StateError naming ``source`` and the line.
    """
    serial = base.serial
    resources: dict[str, ResourceState] | None = None
    journal: list[JournalEntry] | None = None
    outputs: dict[str, Any] | None = None
    for number, line in _lines(data, source):
        if line["lineage"] != base.lineage:
            raise _bad(source, number, f"belongs to lineage {line['lineage']}, not {base.lineage}")
        if line["serial"] <= serial:
            continue
        if line["prev"] != serial:
            raise _bad(
                source, number, f"continues serial {line['prev']}, but the state is at serial {serial}"
            )
        if resources is None:
            resources, journal = dict(base.resources), list(base.journal)
        assert journal is not None
        try:
            for address in line["del"]:
                resources.pop(address, None)
            for address, raw in line["set"].items():
                resource = ResourceState.model_validate(raw)
                if resource.address != address:
                    raise ValueError(f"set.{address} records address {resource.address!r}")
                resources[address] = resource
            del journal[line["keep"] :]
            for raw in line["add"]:
                entry = JournalEntry.model_validate(raw)
                if journal and entry.seq <= journal[-1].seq:
                    raise ValueError(f"journal seq {entry.seq} does not follow {journal[-1].seq}")
                journal.append(entry)
            if "outputs" in line:
                if not isinstance(line["outputs"], dict):
                    raise ValueError("outputs is not an object")
                outputs = line["outputs"]
        except (ValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _bad(source, number, f"is invalid ({_short(exc)})") from None
        serial = line["serial"]
    if resources is None:
        return base
    update: dict[str, Any] = {"serial": serial, "resources": resources, "journal": tuple(journal or ())}
    if outputs is not None:
        update["outputs"] = outputs
    return base.model_copy(update=update)


def _lines(data: bytes, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each whole line of ``data``, parsed and checked, with its 1-based number."""
    start, number = 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            return  # torn: the write that made it never returned
        number += 1
        raw, start = data[start:end], end + 1
        try:
            line = json.loads(raw.decode("utf-8"))
        except ValueError:
            raise _bad(source, number, "is not JSON") from None
        if not isinstance(line, dict) or not isinstance(line.get(CHECKSUM), str):
            raise _bad(source, number, "is not a state journal line")
        recorded = line.pop(CHECKSUM)
        if recorded != _PREFIX + hashlib.sha256(_canonical(line).encode("utf-8")).hexdigest():
            raise _bad(source, number, "is corrupted (checksum mismatch)")
        for key, kind in (("serial", int), ("prev", int), ("keep", int), ("set", dict), ("del", list)):
            if not isinstance(line.get(key), kind) or isinstance(line.get(key), bool):
                raise _bad(source, number, f"has no valid {key!r}")
        if not isinstance(line.get("add"), list) or not isinstance(line.get("lineage"), str):
            raise _bad(source, number, "has no valid 'add' or 'lineage'")
        yield number, line


def _common_prefix(old: tuple[JournalEntry, ...], new: tuple[JournalEntry, ...]) -> int:
    """How many leading entries ``new`` shares with ``old`` (usually all of ``old``: one was appended)."""
    if new is old:
        return len(old)
    if len(new) >= len(old) and new[: len(old)] == old:  # identical objects compare at C speed
        return len(old)
    keep = 0
    for a, b in zip(old, new, strict=False):
        if a is not b and a != b:
            break
        keep += 1
    return keep


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _bad(source: str, number: int, what: str) -> StateError:
    return StateError(
        f"state journal {source} line {number} {what}; the state file without it is the state as of "
        f"its last full write: move {source} away to use that, then run `reconciler plan` to see what differs"
    )


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', 'invalid')}"
    return str(exc)
