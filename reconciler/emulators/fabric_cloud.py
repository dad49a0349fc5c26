"""The emulated DataArts Fabric account: its collections, lookups, error answers and views.

:class:`FabricCloud` is what every Fabric handler works on. It owns no state
of its own; everything lives in the shared :class:`~reconciler.emulators.store.Store`
under the ``fabric.*`` collections, so it persists and is shared with whoever
holds the same store. Objects carry their owning workspace in ``_workspace_id``;
keys starting with ``_`` are bookkeeping and never leave the emulator.

Error answers (all in the ``{"error_code", "error_msg", "solution_msg"}``
envelope) come from :mod:`reconciler.emulators.fabric_errors`, which holds the
codes the platform documents and refuses any other:

=======  =======================  ============================================
status   error_code               when
=======  =======================  ============================================
400      dataartsfabric.00010003  the workspace of the path does not exist
400      dataartsfabric.00010009  an id in the body names nothing (endpoint,
                                  model, model version)
400      common.01000001          body or query breaks a rule; a name already
                                  taken; a busy or not-RUNNING object; an
                                  object still in use; a field that cannot be
                                  updated; a scale the endpoint cannot hold; a
                                  non-empty workspace; the current version
                                  (the reason names the rule)
401      APIG.1002                missing or wrong ``X-Auth-Token``
401      APIG.0301                AK/SK signature wrong, AK unknown, or
                                  ``X-Sdk-Date`` over 15 minutes off
404      common.01000001          an endpoint / model / version / instance id
                                  names nothing; unknown path
500      common.00000500          a bug in the emulator
=======  =======================  ============================================

An endpoint or service instance whose name matches a ``fail_provisioning``
glob (:class:`~reconciler.emulators.faults.FaultSettings`) ends its creation in
CREATE_FAILED (endpoint) or FAILED (instance), with ``error_code``
``common.00000500`` and ``error_msg`` "internal error, reason: insufficient
resources: ...".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from reconciler.emulators import lifecycle
from reconciler.emulators.config import EmulatorConfig
from reconciler.emulators.envelope import FabricError, fabric_response
from reconciler.emulators.fabric_errors import (
    INTERNAL_ERROR,
    NO_RESOURCES_FOUND,
    WORKSPACE_NOT_EXIST,
    bad_request,
    fabric_error,
    message,
    not_found,
    state_conflict,
)
from reconciler.emulators.fabric_validation import page
from reconciler.emulators.store import Collection, JsonObject, Store

WORKSPACES = "fabric.workspaces"
ENDPOINTS = "fabric.endpoints"
MODELS = "fabric.models"
INSTANCES = "fabric.instances"

RUNNING = "RUNNING"
VISIBILITY = "PRIVATE"
OWNER = {
    "domain_name": "emulator-domain",
    "domain_id": "0c4a1b7e9f8d4e2aa1b2c3d4e5f60718",
    "user_name": "emulator-user",
    "user_id": "5e6f7a8b9c0d4e1f8a2b3c4d5e6f7a8b",
}
USER = {"domain_name": OWNER["domain_name"], "user_name": OWNER["user_name"]}


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it: path parameters, query and the parsed body."""

    request: Request
    body: dict[str, Any]

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    @property
    def query(self) -> QueryParams:
        return self.request.query_params

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")


# ---------------------------------------------------------------- error answers


def workspace_missing(workspace_id: str) -> FabricError:
    return fabric_error(
        WORKSPACE_NOT_EXIST,
        solution=f"No workspace has id {workspace_id!r}; create a workspace first, or list workspaces "
        "to find the right id.",
    )


def reference_missing(what: str, ident: str) -> FabricError:
    return fabric_error(
        NO_RESOURCES_FOUND,
        solution=f"The {what} {ident!r} given in the request does not exist in this workspace; "
        "enter the correct resource ID.",
    )


def name_taken(kind: str, name: str) -> FabricError:
    return bad_request(
        f"{kind} name already exists: {name}",
        solution=f"Choose another name; names of {kind}s are unique within their scope.",
    )


def busy(kind: str, status: str) -> FabricError:
    return state_conflict(
        f"resource is busy, status: {status}", f"Wait until the {kind} is RUNNING, then try again."
    )


def not_updatable(field: str) -> FabricError:
    return bad_request(
        f"parameter cannot be updated: {field}",
        solution="Create a new resource with the wanted value and delete the old one.",
    )


def in_use(what: str, users: Iterable[str]) -> FabricError:
    names = ", ".join(sorted(users))
    return state_conflict(
        f"{what} is still in use by service instances: {names}", "Delete the service instances first."
    )


PROVISIONING_FAILED = INTERNAL_ERROR


def provisioning_failure(status: str, name: str) -> JsonObject:
    """The fields an object ends with when the region has no capacity to provision it."""
    reason = f"insufficient resources: the region has no capacity left to provision {name}"
    return {
        "status": status,
        "error_code": PROVISIONING_FAILED,
        "error_msg": message(PROVISIONING_FAILED, f", reason: {reason}"),
    }


def capacity_exceeded(detail: str) -> FabricError:
    return bad_request(
        f"insufficient endpoint resources: {detail}",
        solution="Lower the instance maximum or raise the endpoint's reserved mu maximum.",
    )


# ---------------------------------------------------------------- the account


class FabricCloud:
    """Lookups and bookkeeping over the ``fabric.*`` collections of one store."""

    def __init__(self, config: EmulatorConfig, store: Store) -> None:
        self.config = config
        self.store = store

    @property
    def workspaces(self) -> Collection:
        return self.store.collection(WORKSPACES)

    @property
    def endpoints(self) -> Collection:
        return self.store.collection(ENDPOINTS)

    @property
    def models(self) -> Collection:
        return self.store.collection(MODELS)

    @property
    def instances(self) -> Collection:
        return self.store.collection(INSTANCES)

    def now(self) -> float:
        return self.store.now()

    def timestamp(self) -> str:
        return iso_time(self.now())

    def settle(self) -> bool:
        """Complete every asynchronous transition that is due (before each request); whether any was."""
        now = self.now()
        instances = lifecycle.settle(self.instances, now)
        endpoints = lifecycle.settle(self.endpoints, now)
        return instances or endpoints

    def begin(self, obj: JsonObject, status: str, then: str | None, *, failed: str | None = None) -> None:
        """Start a transition; it ends in ``failed`` instead of ``then`` when provisioning
        ``obj`` is set to fail (its name matches ``config.faults.fail_provisioning``)."""
        fail = None
        if failed is not None and lifecycle.provisioning_fails(
            self.config.faults.fail_provisioning, obj.get("name")
        ):
            fail = provisioning_failure(failed, str(obj["name"]))
        seconds = self.config.provision_seconds
        lifecycle.begin(obj, status, then, now=self.now(), seconds=seconds, fail=fail)

    def workspace(self, call: Call) -> JsonObject:
        workspace_id = call.param("workspace_id")
        found = self.workspaces.get(workspace_id)
        if found is None:
            raise workspace_missing(workspace_id)
        return found

    def owned(self, collection: Collection, workspace_id: str, object_id: str) -> JsonObject:
        """The object of this workspace with this id, or the platform's 404."""
        found = collection.get(object_id)
        if found is None or found["_workspace_id"] != workspace_id:
            raise not_found()
        return found

    @staticmethod
    def within(collection: Collection, workspace_id: str) -> list[JsonObject]:
        return [obj for obj in collection.values() if obj["_workspace_id"] == workspace_id]

    @staticmethod
    def require_unique_name(
        objects: Iterable[JsonObject], kind: str, name: str | None, self_id: str | None = None
    ) -> None:
        if name is None:
            return
        if any(obj["name"] == name and obj["id"] != self_id for obj in objects):
            raise name_taken(kind, name)


# ---------------------------------------------------------------- views


def iso_time(seconds: float) -> str:
    """ISO-8601 UTC with milliseconds, the one timestamp format of the emulator."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public(obj: Mapping[str, Any]) -> JsonObject:
    """The object as clients see it: bookkeeping keys removed."""
    return {key: value for key, value in obj.items() if not key.startswith("_")}


Filter = Callable[[JsonObject, str], bool]


def field_equals(field: str) -> Filter:
    return lambda obj, wanted: str(obj.get(field)) == wanted


def ordered(
    call: Call,
    objects: list[JsonObject],
    keys: Mapping[str, Callable[[JsonObject], Any]],
    *,
    default_sort: str | None,
    default_order: str,
) -> list[JsonObject]:
    """``objects`` in the order ``sort_by`` / ``order_by`` ask for (case-insensitive, as the SDK
    spells them: ``CREATE_TIME``, ``ASC`` / ``DESC``); ties keep creation order."""
    sort_by = (call.query.get("sort_by") or default_sort or "").upper() or None
    order_by = (call.query.get("order_by") or default_order).upper()
    if sort_by is not None and sort_by not in keys:
        raise bad_request(f"sort_by must be one of {', '.join(keys)} (got {call.query.get('sort_by')!r}).")
    if order_by not in ("ASC", "DESC"):
        raise bad_request(f"order_by must be ASC or DESC (got {call.query.get('order_by')!r}).")
    if sort_by is None:
        return objects[::-1] if order_by == "DESC" else objects
    return sorted(objects, key=keys[sort_by], reverse=order_by == "DESC")


def listing(
    call: Call,
    items: Iterable[JsonObject],
    key: str,
    filters: Mapping[str, Filter],
    view: Callable[[JsonObject], JsonObject] = public,
) -> Response:
    """``{"total": N, key: [...]}``: filtered, then paged; total counts before paging."""
    offset, limit = page(call.query)
    selected = [
        obj
        for obj in items
        if all(test(obj, call.query[name]) for name, test in filters.items() if call.query.get(name))
    ]
    return fabric_response(
        {"total": len(selected), key: [view(obj) for obj in selected[offset : offset + limit]]}
    )
