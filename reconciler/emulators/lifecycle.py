"""Asynchronous lifecycles, computed lazily from the clock: no background tasks.

An object that starts a transition (CREATING, UPDATING, DELETING) records
where it goes next and when it gets there, as an absolute time in its
``_transition`` entry. Every request first *settles* the collections it
touches: transitions that are due complete (the status becomes the target, or
the object disappears when the target is ``None``). Because only timestamps are
stored, the lifecycle survives persistence and works across processes, and a
fake clock makes it fully deterministic.
"""

from __future__ import annotations

from typing import Any

TRANSITION_KEY = "_transition"


def begin(obj: dict[str, Any], status: str, then: str | None, *, now: float, seconds: float) -> None:
    """Put ``obj`` into ``status`` until ``now + seconds``; then ``then`` (``None``: gone)."""
    obj["status"] = status
    obj[TRANSITION_KEY] = {"then": then, "at": now + seconds}


def in_transition(obj: dict[str, Any]) -> bool:
    return TRANSITION_KEY in obj


def settle(objects: dict[str, dict[str, Any]], now: float) -> bool:
    """Complete every transition in ``objects`` that is due at ``now``; whether any was."""
    changed = False
    for key, obj in list(objects.items()):
        transition = obj.get(TRANSITION_KEY)
        if transition is None or now < float(transition["at"]):
            continue
        changed = True
        if transition["then"] is None:
            del objects[key]
        else:
            obj["status"] = transition["then"]
            del obj[TRANSITION_KEY]
    return changed
