"""Asynchronous lifecycles, computed lazily from the clock: no background tasks.

An object that starts a transition (CREATING, UPDATING, DELETING) records
where it goes next and when it gets there, as an absolute time in its
``_transition`` entry. Every request first *settles* the collections it
touches: transitions that are due complete (the status becomes the target, or
the object disappears when the target is ``None``). Because only timestamps are
stored, the lifecycle survives persistence and works across processes, and a
fake clock makes it fully deterministic.

A transition may be doomed from its start: ``begin(..., fail={...})`` records
the fields the object ends with instead of ``then`` (its platform's failed
status and error message), and settling applies them when the transition is
due, as a real deployment fails when capacity runs out. Which objects fail is
decided by :func:`provisioning_fails` from ``FaultSettings.fail_provisioning``
(name globs), so every platform emulator fails provisioning the same way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

TRANSITION_KEY = "_transition"


def begin(
    obj: dict[str, Any],
    status: str,
    then: str | None,
    *,
    now: float,
    seconds: float,
    fail: Mapping[str, Any] | None = None,
) -> None:
    """Put ``obj`` into ``status`` until ``now + seconds``; then ``then`` (``None``: gone).

    With ``fail`` (JSON fields, ``status`` among them) the transition ends by
    setting those fields instead: ``{"status": "CREATE_FAILED", "error_msg": ...}``.
    """
    obj["status"] = status
    obj[TRANSITION_KEY] = {"then": then, "at": now + seconds}
    if fail is not None:
        obj[TRANSITION_KEY]["fail"] = dict(fail)


def provisioning_fails(patterns: Iterable[str], name: object) -> bool:
    """Whether an object called ``name`` must fail its provisioning: ``name`` matches a glob.

    ``patterns`` is ``FaultSettings.fail_provisioning``; matching is ``fnmatch``,
    case-sensitive on every OS (``chat-*``, ``*-large``, ``exactly-this``).
    """
    return isinstance(name, str) and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


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
        if transition.get("fail") is not None:
            obj.update(transition["fail"])
            del obj[TRANSITION_KEY]
        elif transition["then"] is None:
            del objects[key]
        else:
            obj["status"] = transition["then"]
            del obj[TRANSITION_KEY]
    return changed
