"""The emulated ZStack account: settings, fixed catalogue, sessions, jobs and lazy lifecycles.

Everything that changes lives in the shared :class:`~reconciler.emulators.store.Store`
under ``zstack.*`` collections (sessions, jobs, model services, instance
groups), so it persists and survives a restart. Keys starting with ``_`` are
bookkeeping and never leave the emulator.

**Fixed catalogue** (read-only; ZStack-style uuids, 32 hex digits, no hyphens):

=================================  ===============================================
uuid                               what
=================================  ===============================================
36c27e8ff05c4780bf6d2fa65700f22e   the admin account (ZStack's well-known uuid)
5e2d9c0f7a8b4c3d9e1f0a2b3c4d5e6f   the model center ``default-model-center``
8f3c1a2b4d5e4f60a7b8c9d0e1f2a3b4   zone ``zone-1``
9a4d2b3c5e6f4071b8c9d0e1f2a3b4c5   zone ``zone-2``
1b7e4f9a2c3d4e5f8a9b0c1d2e3f4a5b   model ``qwen2.5-7b-instruct``
2c8f5a0b3d4e4f60a1b2c3d4e5f6a7b8   model ``llama-3.1-8b-instruct``
3d9a6b1c4e5f4071b2c3d4e5f6a7b8c9   model ``bge-m3``
4eab7c2d5f604182c3d4e5f6a7b8c9d0   model ``corrupted-weights``: a fault fixture, every
                                   instance group serving it ends ``Failed``
=================================  ===============================================

**Timestamps** are shown the way ZStack's Gson writes them, in UTC:
``"Nov 24, 2026 3:40:01 PM"``.

**Jobs**: an asynchronous API answers 202 with a job ``location``; the job is
done ``provision_seconds`` later (at once when the API was refused), then
answers its result for ``job_ttl_seconds`` and is forgotten (404).

**Lifecycles** are lists of ``[at, status]`` steps applied when due by
:meth:`ZStackCloud.settle`, which every request runs first; a ``None`` status
removes the object. No background tasks, so a fake clock drives everything.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from reconciler.emulators.store import Collection, JsonObject, Store
from reconciler.emulators.zstack_errors import invalid_session

SESSIONS = "zstack.sessions"
JOBS = "zstack.jobs"
MODEL_SERVICES = "zstack.model_services"
GROUPS = "zstack.instance_groups"

ADMIN_ACCOUNT_UUID = "36c27e8ff05c4780bf6d2fa65700f22e"
MODEL_CENTER_UUID = "5e2d9c0f7a8b4c3d9e1f0a2b3c4d5e6f"
ZONE_1_UUID = "8f3c1a2b4d5e4f60a7b8c9d0e1f2a3b4"
ZONE_2_UUID = "9a4d2b3c5e6f4071b8c9d0e1f2a3b4c5"
QWEN_MODEL_UUID = "1b7e4f9a2c3d4e5f8a9b0c1d2e3f4a5b"
LLAMA_MODEL_UUID = "2c8f5a0b3d4e4f60a1b2c3d4e5f6a7b8"
BGE_MODEL_UUID = "3d9a6b1c4e5f4071b2c3d4e5f6a7b8c9"
BROKEN_MODEL_UUID = "4eab7c2d5f604182c3d4e5f6a7b8c9d0"

CATALOGUE_DATE = "Jan 1, 2026 12:00:00 AM"

ZONES: tuple[JsonObject, ...] = tuple(
    {
        "uuid": zone_uuid,
        "name": name,
        "description": f"emulated zone {name}",
        "state": "Enabled",
        "type": "zstack",
        "isDefault": zone_uuid == ZONE_1_UUID,
        "createDate": CATALOGUE_DATE,
        "lastOpDate": CATALOGUE_DATE,
    }
    for zone_uuid, name in ((ZONE_1_UUID, "zone-1"), (ZONE_2_UUID, "zone-2"))
)
MODEL_CENTERS: tuple[JsonObject, ...] = (
    {
        "uuid": MODEL_CENTER_UUID,
        "name": "default-model-center",
        "description": "the emulator's model center",
        "url": "http://127.0.0.1:8989",
        "status": "Connected",
        "createDate": CATALOGUE_DATE,
        "lastOpDate": CATALOGUE_DATE,
    },
)
MODELS: tuple[JsonObject, ...] = tuple(
    {
        "uuid": model_uuid,
        "name": name,
        "description": description,
        "modelCenterUuid": MODEL_CENTER_UUID,
        "installPath": f"/models/{name}",
        "parameters": parameters,
        "size": size,
        "version": "1",
        "type": kind,
        "createDate": CATALOGUE_DATE,
        "lastOpDate": CATALOGUE_DATE,
    }
    for model_uuid, name, description, parameters, size, kind in (
        (QWEN_MODEL_UUID, "qwen2.5-7b-instruct", "Qwen2.5 7B instruct", "7B", 15_231_233_024, "LLM"),
        (LLAMA_MODEL_UUID, "llama-3.1-8b-instruct", "Llama 3.1 8B instruct", "8B", 16_060_522_496, "LLM"),
        (BGE_MODEL_UUID, "bge-m3", "BGE-M3 embeddings", "568M", 2_271_064_456, "Embedding"),
        (BROKEN_MODEL_UUID, "corrupted-weights", "fault fixture: never loads", "7B", 15_000_000_000, "LLM"),
    )
)
FAILING_MODELS = frozenset({BROKEN_MODEL_UUID})

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class ZStackSettings:
    """How the ZStack emulator behaves.

    ``account`` / ``password``: the one account that may log in (the client
    sends the SHA-512 hex of the password). ``provision_seconds``: how long a
    job or a lifecycle step takes (``0``: done on the next request).
    ``session_ttl_seconds``: a session's lifetime from its login (not renewed
    by use). ``job_ttl_seconds``: how long a finished job's result is kept.
    ``clock``: seconds since the epoch; inject a fake one to move time by hand.
    ``fail_provisioning``: name globs (``fnmatch``, case-sensitive); instance
    groups so named end their deployment ``Failed`` (``FaultSettings.fail_provisioning``).
    """

    account: str = "admin"
    password: str = "password"
    provision_seconds: float = 1.0
    session_ttl_seconds: float = 7200
    clock: Callable[[], float] = time.time
    job_ttl_seconds: float = 3600
    fail_provisioning: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it: path parameters, query, parsed body and session uuid."""

    request: Request
    body: dict[str, Any]
    session_uuid: str | None = None

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")


def zstack_time(seconds: float) -> str:
    """``"Nov 24, 2026 3:40:01 PM"`` (UTC), the way ZStack's Gson writes a date."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return f"{_MONTHS[moment.month - 1]} {moment.day}, {moment.year} {hour}:{moment:%M:%S} {half}"


def new_uuid() -> str:
    return uuid.uuid4().hex


def public(obj: Mapping[str, Any]) -> JsonObject:
    """The object as clients see it: no bookkeeping keys, no nulls (Gson omits them)."""
    return {key: value for key, value in obj.items() if not key.startswith("_") and value is not None}


class ZStackCloud:
    """Sessions, jobs and lifecycles over the ``zstack.*`` collections of one store."""

    def __init__(self, settings: ZStackSettings, store: Store) -> None:
        self.settings = settings
        self.store = store

    @property
    def sessions(self) -> Collection:
        return self.store.collection(SESSIONS)

    @property
    def jobs(self) -> Collection:
        return self.store.collection(JOBS)

    @property
    def model_services(self) -> Collection:
        return self.store.collection(MODEL_SERVICES)

    @property
    def groups(self) -> Collection:
        return self.store.collection(GROUPS)

    def now(self) -> float:
        return self.settings.clock()

    def later(self) -> float:
        """When something started now finishes."""
        return self.now() + self.settings.provision_seconds

    def stamp(self, obj: JsonObject, *, created: bool = False) -> None:
        """Set ``lastOpDate`` (and ``createDate``) to now, keeping raw timestamps for sorting."""
        now = self.now()
        if created:
            obj["createDate"], obj["_createDate"] = zstack_time(now), now
        obj["lastOpDate"], obj["_lastOpDate"] = zstack_time(now), now

    # -- settling -----------------------------------------------------------------

    def settle(self) -> None:
        """Apply every lifecycle step that is due; forget expired sessions and jobs."""
        now = self.now()
        for key, group in list(self.groups.items()):
            steps = group.get("_steps", [])
            while steps and float(steps[0][0]) <= now:
                at, status = steps.pop(0)
                if status is None:
                    del self.groups[key]
                    break
                self.set_status(group, status, float(at))
        for key, service in list(self.model_services.items()):
            if service.get("_delete_at") is not None and float(service["_delete_at"]) <= now:
                del self.model_services[key]
        ttl = self.settings.job_ttl_seconds
        for key in [k for k, job in self.jobs.items() if float(job["_done_at"]) + ttl < now]:
            del self.jobs[key]
        for key in [k for k, s in self.sessions.items() if float(s["_expires_at"]) <= now]:
            del self.sessions[key]

    @staticmethod
    def set_status(group: JsonObject, status: str, at: float) -> None:
        group["status"] = status
        group["lastOpDate"], group["_lastOpDate"] = zstack_time(at), at
        for instance in group.get("instances", []):
            instance["status"] = status
            instance["lastOpDate"] = group["lastOpDate"]

    def schedule(self, group: JsonObject, status: str, *steps: str | None) -> None:
        """Put ``group`` in ``status`` now, then through ``steps``, one every ``provision_seconds``."""
        now = self.now()
        self.set_status(group, status, now)
        seconds = self.settings.provision_seconds
        group["_steps"] = [[now + seconds * (i + 1), step] for i, step in enumerate(steps)]

    # -- sessions -----------------------------------------------------------------

    def open_session(self) -> JsonObject:
        now = self.now()
        expires = now + self.settings.session_ttl_seconds
        session: JsonObject = {
            "uuid": new_uuid(),
            "accountUuid": ADMIN_ACCOUNT_UUID,
            "userUuid": ADMIN_ACCOUNT_UUID,
            "expiredDate": zstack_time(expires),
            "createDate": zstack_time(now),
            "_expires_at": expires,
        }
        self.sessions[session["uuid"]] = session
        return session

    def require_session(self, session_uuid: str | None) -> None:
        """Raise ``ID.1001`` unless the session exists and has not expired (settled first)."""
        if not session_uuid or session_uuid not in self.sessions:
            raise invalid_session(session_uuid)

    # -- jobs ---------------------------------------------------------------------

    def add_job(
        self,
        *,
        result: str | None = None,
        target: str | None = None,
        error: Mapping[str, Any] | None = None,
        done_at: float | None = None,
    ) -> JsonObject:
        """A job answering ``{"inventory": <target>}`` (``result`` names its collection).

        With ``result=None`` it answers nothing, with ``error`` that error; it is
        done at ``done_at`` (default: one ``provision_seconds`` from now).
        """
        snapshot = self.view_of(result, target) if result and target else None
        job: JsonObject = {
            "uuid": new_uuid(),
            "_done_at": self.later() if done_at is None else done_at,
            "_result": result,
            "_target": target,
            "_snapshot": snapshot,
            "_error": dict(error) if error is not None else None,
        }
        self.jobs[job["uuid"]] = job
        return job

    def view_of(self, result: str, target: str) -> JsonObject | None:
        collection = self.model_services if result == MODEL_SERVICES else self.groups
        obj = collection.get(target)
        return public(obj) if obj is not None else None
