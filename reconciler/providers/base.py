"""The provider contract: what the planner and applier may know about a platform.

A provider has two halves:

* a pure *schema* (:class:`KindSpec` per resource kind plus :meth:`Provider.desired`),
  which the planner uses without I/O: which fields force replacement, which
  are read-only or server-side, which are secret, and how a stack resource
  becomes *desired attributes* in the same shape as the provider reports *live*
  attributes, so that one generic diff serves every platform;
* asynchronous I/O (``list``, ``read``, ``find``, ``create``, ``update``,
  ``delete``, ``wait``), the only code that talks HTTP; ``settled`` is the pure
  verdict on a lifecycle that ``wait`` (one object) and the applier's
  :class:`~reconciler.watch.Watcher` (many objects through list pages) poll.

Attribute dictionaries are "comparable": plain JSON values, same keys for
desired and live. Live attributes may carry more keys (server-side fields);
the diff looks only at keys the desired side sets. Scope fields (for Fabric,
``workspace_id``) appear in the attributes and also address the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable


class _Unknown:
    """A value known only after apply (an id of a resource not yet created)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(known after apply)"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class KindSpec:
    """Static facts about one resource kind of one platform.

    ``force_new``: dotted attribute paths whose change needs a replacement.
    ``read_only``: dotted paths the server sets; never diffed.
    ``secrets``: dotted paths whose values are never written or shown.
    ``scope``: attribute names that address the object besides its id
    (e.g. ``("workspace_id",)``); recorded in state, passed to every call.
    ``asynchronous``: create/update/delete need :meth:`Provider.wait`.
    ``listable``: ``list`` exists (batched refresh); else refresh uses ``read``.
    ``recomputed``: (attribute, path) pairs: the server assigns a new value to
    ``attribute`` when ``path`` changes (a model's ``version_id`` when its
    ``version`` changes), so dependants see it as unknown until applied.
    """

    name: str
    force_new: frozenset[str] = frozenset()
    read_only: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()
    scope: tuple[str, ...] = ()
    asynchronous: bool = False
    listable: bool = True
    updatable: bool = True
    recomputed: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Live:
    """One object as the platform reports it, normalised to comparable attributes."""

    id: str
    attributes: Mapping[str, Any]
    status: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class RefValue:
    """What a resource may know about a resource it references: its id and attributes.

    ``id`` and attribute values are :data:`UNKNOWN` while the target is yet to be created.
    """

    address: str
    id: Any
    attributes: Mapping[str, Any] = field(default_factory=dict)


Until = Literal["ready", "gone"]


@runtime_checkable
class Provider(Protocol):
    platform: str
    kinds: Mapping[str, KindSpec]

    def desired(self, kind: str, attrs: Mapping[str, Any], refs: Mapping[str, RefValue]) -> dict[str, Any]:
        """Pure: stack fields (+ referenced objects) -> comparable desired attributes.

        Values not yet known are :data:`UNKNOWN`. Must not do I/O.
        """
        ...

    def scope_of(self, kind: str, attributes: Mapping[str, Any]) -> dict[str, str]:
        """Pure: the scope values (see :attr:`KindSpec.scope`) taken from attributes."""
        ...

    def settled(self, kind: str, id: str, live: Live | None, until: Until) -> bool:
        """Pure: whether object ``id``, as ``live`` shows it (None: absent), has reached ``until``.

        False while it is still on its way; raises ProviderError, with the
        platform's code and message, when it never will (a failed lifecycle
        status, or gone while waiting for ready). :meth:`wait` polls this
        verdict for one object; :class:`reconciler.watch.Watcher` for many at once.
        """
        ...

    async def list(self, kind: str, scope: Mapping[str, str]) -> list[Live]:
        """Every object of ``kind`` in ``scope``; pages are read concurrently."""
        ...

    async def read(self, kind: str, id: str, scope: Mapping[str, str]) -> Live | None:
        """One object, or None when it does not exist."""
        ...

    async def find(self, kind: str, name: str, scope: Mapping[str, str]) -> Live | None:
        """The object called ``name`` (adoption and lost-response recovery)."""
        ...

    async def create(self, kind: str, desired: Mapping[str, Any]) -> Live:
        """Send the create call; returns at once (not waiting for readiness)."""
        ...

    async def update(self, kind: str, live: Live, desired: Mapping[str, Any]) -> Live:
        """Change ``live`` in place towards ``desired``; returns at once."""
        ...

    async def delete(self, kind: str, id: str, scope: Mapping[str, str]) -> None:
        """Send the delete call; a missing object is not an error."""
        ...

    async def wait(
        self, kind: str, id: str, scope: Mapping[str, str], until: Until, timeout: float
    ) -> Live | None:
        """Poll until the object is ready (returns it) or gone (returns None).

        A failed lifecycle status raises ProviderError with the platform's message;
        ``timeout`` seconds without reaching ``until`` raises ProviderError too.
        """
        ...

    async def aclose(self) -> None: ...


class Prober(Protocol):
    """Optional: a provider whose deployments can be invoked offers health gates."""

    async def probe(self, kind: str, live: Live, prompt: str, timeout: float) -> None:
        """Invoke ``live`` with ``prompt``; ProviderError unless a full answer arrives within ``timeout``."""
        ...
