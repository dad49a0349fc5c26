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
desired and live, normalised once here at the provider boundary (a String
``"100"`` the platform documents for a number is the number 100). Live
attributes may carry more keys (server-side fields); the diff looks only at
keys the desired side sets. Scope fields (for Fabric, ``workspace_id``) appear
in the attributes and also address the object.

Every attribute a kind's desired side sets is one of three things
(:class:`KindSpec`): *read back* (the platform returns it: compared with
live), *input only* (the platform takes it and never returns it: compared with
the value last applied, which state records, never with live) or *computed*
(the platform sets it: never diffed). A status the platform reports is mapped
to a :class:`Phase` by the kind's :class:`Lifecycle`; no other code compares
status strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol, runtime_checkable

from reconciler.errors import ProviderError


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


class Phase(Enum):
    """Where an object is in its lifecycle, whatever the platform calls the status.

    ``READY``: serving (or, for a kind without a lifecycle, present).
    ``IN_PROGRESS``: on its way to ready (creating, updating, pending).
    ``STOPPED``: present and intact, but not serving (stopped, frozen,
    inactive); never replaced for it, never awaited as ready.
    ``FAILED``: a create or update that ended badly; the planner replaces it.
    ``DELETING``: on its way out; gone for planning, not yet for a wait.
    ``GONE``: deleted (or absent).
    """

    READY = "ready"
    IN_PROGRESS = "in_progress"
    STOPPED = "stopped"
    FAILED = "failed"
    DELETING = "deleting"
    GONE = "gone"

    @property
    def absent(self) -> bool:
        """Gone or going: a recorded object in this phase must be created again."""
        return self in (Phase.DELETING, Phase.GONE)


@dataclass(frozen=True)
class Lifecycle:
    """Every status one kind's platform documents, each mapped to a :class:`Phase`.

    ``statuses`` is built from the platform's status enum (one per platform,
    every value its pages and SDKs document). A status outside it is an error
    naming it: never silently ready.
    """

    platform: str
    statuses: Mapping[str, Phase]

    def phase(self, kind: str, id: str, status: str | None) -> Phase:
        if status is None:
            return Phase.IN_PROGRESS  # nothing reported yet (a create whose read-back failed)
        try:
            return self.statuses[status]
        except KeyError:
            known = ", ".join(sorted(self.statuses))
            raise ProviderError(
                self.platform,
                f"{kind} {id} reports status {status!r}, which this version does not know "
                f"(known: {known}); upgrade reconciler or report it",
                code="unknown_status",
                operation="Refresh",
            ) from None


@dataclass(frozen=True)
class Limit:
    """A number on a parent object (dotted ``path``) that caps what its ``child`` kind's objects
    use of it (dotted ``use``; together, the platform checks the sum against the limit).

    A child is an object of kind ``child`` that depends on the parent (the parent's id in
    its ``ref`` attribute). The platform refuses a parent update that lowers the limit below
    what the children use, and a child update that uses more than the limit left:
    when one apply changes both, the planner orders the updates so that each call fits.
    """

    path: str
    child: str
    use: str
    ref: str


@dataclass(frozen=True)
class KindSpec:
    """Static facts about one resource kind of one platform.

    ``force_new``: dotted attribute paths whose change needs a replacement.
    ``read_only``: dotted paths the server sets (*computed*); never diffed.
    ``input_only``: dotted paths the platform accepts but never returns; the
    planner compares them with the recorded (last applied) value, never with
    live, and the applier records the value it sent.
    ``read_back``: the top-level attributes the platform returns and the diff
    compares with live. Every top-level attribute ``desired`` can set is in
    exactly one of ``read_back``, ``input_only`` (by its head), ``read_only``
    or ``scope`` (a test holds every kind to it).
    ``lifecycle``: how the kind's statuses map to phases; None for a kind
    without a status (present means ready).
    ``identity``: the desired attributes that find an object the platform
    made for this stack when the create answer was lost (joined with ``/``
    into ``Change.name`` and compared with :attr:`Live.name`).
    ``list_omits``: attributes the list route's items (brief infos) lack,
    which only the detail read carries (Fabric service instances: ``config``).
    ``change_marker``: a computed attribute both list items and details carry
    that the platform changes whenever the object changes (``update_time``,
    ``gmt_modified``, ``lastOpDate``). Refresh compares it with the recorded
    value: equal, the ``list_omits`` attributes are the recorded ones; else
    the detail is read. So a no-op refresh costs list pages, not objects.
    ``client_id``: ``create`` makes the object with the journaled client token
    as its id (ZStack ``resourceUuid``): recovery finds it by that id only.
    ``create_defaults``: given a stable seed (the stack's name and the
    resource's address), the identity attributes to fill in when the stack
    leaves them out and the object is about to be created (a Model Studio
    ``suffix``), so a lost create is found again by what this stack chose and
    never by a namesake of someone else's.
    ``secrets``: dotted paths whose values are never written or shown.
    ``scope``: attribute names that address the object besides its id
    (e.g. ``("workspace_id",)``); recorded in state, passed to every call.
    ``asynchronous``: create/update/delete need :meth:`Provider.wait`.
    ``listable``: ``list`` exists (batched refresh); else refresh uses ``read``.
    ``recomputed``: (attribute, path) pairs: the server assigns a new value to
    ``attribute`` when ``path`` changes (a model's ``version_id`` when its
    ``version`` changes), so dependants see it as unknown until applied.
    ``limits``: numbers of this kind's objects that dependants of another kind
    consume (see :class:`Limit`); the planner orders one apply's updates by them.
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
    input_only: frozenset[str] = frozenset()
    read_back: frozenset[str] = frozenset()
    lifecycle: Lifecycle | None = None
    identity: tuple[str, ...] = ("name",)
    list_omits: frozenset[str] = frozenset()
    change_marker: str | None = None
    client_id: bool = False
    create_defaults: Callable[[str], Mapping[str, Any]] | None = None
    limits: tuple[Limit, ...] = ()

    def phase(self, id: str, live: Live | None) -> Phase:
        """The phase of ``live`` (None: absent); ProviderError for a status never documented."""
        if live is None:
            return Phase.GONE
        if self.lifecycle is None:
            return Phase.READY
        return self.lifecycle.phase(self.name, id, live.status)

    def identity_of(self, attributes: Mapping[str, Any]) -> str | None:
        """The identity (see ``identity``) of desired ``attributes``; None while a part is unknown."""
        parts = [attributes.get(a) for a in self.identity]
        texts = [p for p in parts if isinstance(p, str) and p]
        return "/".join(texts) if len(texts) == len(parts) else None

    def with_inputs(self, live: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
        """``live`` attributes with the input-only paths taken from ``inputs`` (recorded or sent)."""
        out = dict(live)
        for path in sorted(self.input_only):
            found, value = _get(inputs, path)
            if found:
                _set(out, path, value)
        return out


def _get(value: Any, path: str) -> tuple[bool, Any]:
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _set(target: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if not rest:
        target[head] = value
        return
    inner = target.get(head)
    inner = dict(inner) if isinstance(inner, Mapping) else {}
    _set(inner, rest, value)
    target[head] = inner


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

    async def find(
        self, kind: str, name: str, scope: Mapping[str, str], *, token: str | None = None
    ) -> Live | None:
        """The object this stack made as ``name`` (its identity, see :attr:`KindSpec.identity`).

        ``token`` is the client token journaled before the create call; a
        platform that takes a client-chosen id (ZStack ``resourceUuid``)
        looks up exactly that id and ignores ``name``, so a same-named object
        of someone else is never found.
        """
        ...

    async def create(self, kind: str, desired: Mapping[str, Any], *, token: str | None = None) -> Live:
        """Send the create call; returns at once (not waiting for readiness).

        ``token`` (32 hex digits, journaled before the call) is the client-chosen
        id where the platform accepts one; other platforms ignore it.
        """
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
