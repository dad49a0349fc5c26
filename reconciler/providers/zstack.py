"""ZStack AI model services: the provider (model services and their instance groups).

The kinds and their attributes are described in :mod:`reconciler.providers.zstack_schema`;
login, re-login and job polling in :mod:`reconciler.providers.zstack_session`.

The block ``providers.zstack``: ``url`` (scheme, host and port; ``/zstack/v1``
is added) or ``embedded`` (an in-process emulator whose cloud is kept in
``<state_dir>/emulator/zstack.json``; account ``admin``/``password`` unless
given), ``account``, ``password`` (a secret: sent only as its SHA-512 hex,
never stored, logged or shown), ``zone_uuid`` (default zone of instance
groups; ``embedded``: zone-1), ``model_center_uuid`` (default of model
services; ``embedded``: its model center), ``wait_timeout`` (caps every wait
and every asynchronous job), ``poll_interval``, the HTTP knobs every provider
takes (``timeout``, ``max_retries``, ``max_requests_per_second``,
``max_in_flight``) and, for ``embedded`` only, ``provision_seconds``.

Every asynchronous API (Add, Deploy, Update group, Delete) is followed to its
job's end inside the call, so ``create`` returns the created object with its
uuid, and ``delete`` returns once the object is gone. The model service has
no status (``asynchronous=False``); an instance group's status is mapped to a
phase by ``GROUP_LIFECYCLE`` (ready when ``Running``; ``Failed`` raises; a status
it does not know raises ``unknown_status``).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.errors import ProviderError, UsageError
from reconciler.preflight import AccessCheck, limited
from reconciler.providers.base import KindSpec, Live, Phase, RefValue, Until
from reconciler.providers.http import HTTP_BLOCK_KEYS, ApiClient, http_settings
from reconciler.providers.polling import poll_until
from reconciler.providers.zstack_schema import (
    KINDS,
    SERVICE,
    desired_attributes,
    kind_of,
    name_condition,
    normalise,
    request_body,
)
from reconciler.providers.zstack_session import (
    PLATFORM,
    ZStackSession,
    error_of,
    invalid,
    zstack_client,
)

API_PREFIX = "/zstack/v1"
PAGE_SIZE = 100
EMBEDDED_BASE_URL = "http://zstack.embedded"
BLOCK_KEYS = HTTP_BLOCK_KEYS | {
    "url", "account", "password", "zone_uuid", "model_center_uuid", "wait_timeout", "poll_interval",
    "provision_seconds",
}  # fmt: skip

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class ZStackProvider:
    """The :class:`~reconciler.providers.base.Provider` for ZStack AI model services.

    ``api`` talks to ``<url>/zstack/v1`` as ``account``. ``wait_timeout`` caps
    every :meth:`wait` (the smaller of it and the caller's timeout applies)
    and every job; polls back off from 0.05s up to ``poll_interval``.
    ``clock``/``sleep`` are seams for tests.
    """

    platform: str = PLATFORM
    kinds: Mapping[str, KindSpec] = KINDS

    def __init__(
        self,
        api: ApiClient,
        *,
        account: str,
        password: str,
        zone_uuid: str | None = None,
        model_center_uuid: str | None = None,
        wait_timeout: float = 1800.0,
        poll_interval: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.session = ZStackSession(
            api, account=account, password=password, job_timeout=wait_timeout,
            poll_interval=poll_interval, clock=clock, sleep=sleep,
        )  # fmt: skip
        self.defaults: dict[str, str | None] = {
            "zone_uuid": zone_uuid,
            "model_center_uuid": model_center_uuid,
        }
        self.wait_timeout = float(wait_timeout)
        self.poll_interval = float(poll_interval)
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_block(cls, block: Mapping[str, Any], *, state_dir: Path) -> ZStackProvider:
        """Build from a stack's ``providers.zstack`` block; raises UsageError for a bad block."""
        unknown = sorted(set(block) - BLOCK_KEYS)
        if unknown:
            allowed = ", ".join(sorted(BLOCK_KEYS))
            raise UsageError(f"providers.zstack: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
        url = block.get("url")
        if not isinstance(url, str) or not (url == "embedded" or url.startswith(("http://", "https://"))):
            raise UsageError("providers.zstack.url must be `embedded` or http(s)://host:port")
        texts = {key: block.get(key) for key in ("account", "password", "zone_uuid", "model_center_uuid")}
        for key, value in texts.items():
            if value is not None and (not isinstance(value, str) or not value):
                raise UsageError(f"providers.zstack.{key} must be a non-empty string")
        knobs = http_settings(block, PLATFORM)
        options: dict[str, Any] = {
            "wait_timeout": _number(block, "wait_timeout", 1800.0),
            "poll_interval": _number(block, "poll_interval", 1.0),
        }
        transport: httpx.AsyncBaseTransport | None = None
        if url == "embedded":
            from reconciler.emulators.store import Store
            from reconciler.emulators.zstack import (
                MODEL_CENTER_UUID,
                ZONE_1_UUID,
                ZStackSettings,
                build_zstack_app,
            )

            account, password = texts["account"] or "admin", texts["password"] or "password"
            data_file = state_dir / "emulator" / "zstack.json"
            data_file.parent.mkdir(parents=True, exist_ok=True)
            seconds = _number(block, "provision_seconds", 1.0, allow_zero=True)
            settings = ZStackSettings(account=account, password=password, provision_seconds=seconds)
            transport = httpx.ASGITransport(app=build_zstack_app(settings, Store(data_file)))
            base_url = EMBEDDED_BASE_URL + API_PREFIX
            texts["zone_uuid"] = texts["zone_uuid"] or ZONE_1_UUID
            texts["model_center_uuid"] = texts["model_center_uuid"] or MODEL_CENTER_UUID
        else:
            if "provision_seconds" in block:
                raise UsageError("providers.zstack.provision_seconds applies only to `url: embedded`")
            if not texts["account"] or not texts["password"]:
                raise UsageError("providers.zstack: `account` and `password` are required (session login)")
            account, password = texts["account"], texts["password"]
            root = url.rstrip("/")
            base_url = root if root.endswith(API_PREFIX) else root + API_PREFIX
        api = zstack_client(base_url, password=password, settings=knobs, transport=transport)
        return cls(
            api,
            account=account,
            password=password,
            zone_uuid=texts["zone_uuid"],
            model_center_uuid=texts["model_center_uuid"],
            **options,
        )

    # -- pure -------------------------------------------------------------------------

    def desired(self, kind: str, attrs: Mapping[str, Any], refs: Mapping[str, RefValue]) -> dict[str, Any]:
        return desired_attributes(kind, attrs, refs, self.defaults)

    def scope_of(self, kind: str, attributes: Mapping[str, Any]) -> dict[str, str]:
        kind_of(kind)
        return {}  # uuids are global: no scope

    def settled(self, kind: str, id: str, live: Live | None, until: Until) -> bool:
        """Whether ``live`` (None: absent) reached ``until``; ProviderError when it never will."""
        return _settled(kind, id, live, until)

    # -- reads ------------------------------------------------------------------------

    async def list(self, kind: str, scope: Mapping[str, str]) -> builtins.list[Live]:
        return [self._live(kind, obj) for obj in await self._query(kind, None)]

    async def read(self, kind: str, id: str, scope: Mapping[str, str]) -> Live | None:
        k = kind_of(kind)
        path = f"{k.collection}/{quote(id, safe='')}"
        answer = await self.session.call("GET", path, operation=f"Query{k.noun}")
        found = [o for o in _inventories(answer, f"Query{k.noun}") if o.get("uuid") == id]
        return self._live(kind, found[0]) if found else None

    async def find(
        self, kind: str, name: str, scope: Mapping[str, str], *, token: str | None = None
    ) -> Live | None:
        """The object made with ``token`` as its resourceUuid; without a token, the one called ``name``.

        By name, several (ZStack names need not be unique) raise ``ambiguous_name``.
        """
        if token is not None:
            return await self.read(kind, token, scope)
        spec = KINDS[kind]
        named = [
            self._live(kind, o)
            for o in await self._query(kind, name_condition("name", name))
            if o.get("name") == name
        ]
        candidates = [live for live in named if not spec.phase(live.id, live).absent] or named[:1]
        if len(candidates) > 1:
            uuids = ", ".join(live.id for live in candidates)
            raise ProviderError(
                PLATFORM,
                f"{len(candidates)} {kind}s are called {name!r} ({uuids}); delete or rename the extra ones",
                code="ambiguous_name",
                operation=f"Query{kind_of(kind).noun}",
            )
        return candidates[0] if candidates else None

    # -- writes -----------------------------------------------------------------------

    async def create(self, kind: str, desired: Mapping[str, Any], *, token: str | None = None) -> Live:
        k = kind_of(kind)
        # the client token is the new object's resourceUuid (journaled before this call), so a
        # create whose answer was lost is found by exactly that uuid, never by name
        fields = {**request_body(kind, desired, k.fields), **({"resourceUuid": token} if token else {})}
        # both as the Go SDK sends them: AddModelServiceParam and DeployModelServiceParam wrap
        # their fields in "params" (pkg/param/add_model_service_params.go, deploy_model_service_params.go)
        body = {"params": fields}
        if kind == SERVICE:
            operation, method, path = "AddModelService", "POST", k.collection
        else:
            operation, method = "DeployModelService", "PUT"
            path = f"/ai/model-services/{quote(str(desired.get('modelServiceUuid')), safe='')}/actions"
        answer = await self.session.call(
            method, path, json=body, operation=operation, asynchronous=True, idempotent=False
        )
        return self._live(kind, _inventory(answer, operation))

    async def update(self, kind: str, live: Live, desired: Mapping[str, Any]) -> Live:
        k = kind_of(kind)
        changes = request_body(kind, desired, k.updatable)
        uuid = quote(live.id, safe="")
        if kind == SERVICE:
            # seed 003: the fields flat in the body (the Go SDK wraps them in "params" or
            # "updateModelService"; the page is followed), answered synchronously with
            # {success, error, inventory}; should the platform answer 202 with a job
            # location instead, as ZStack's asynchronous APIs do, the job is followed
            operation = "UpdateModelService"
            answer = await self.session.call(
                "PUT", f"{k.collection}/{uuid}", json=changes, operation=operation, asynchronous=True
            )
            refused = (
                error_of(answer) if isinstance(answer, dict) and answer.get("success") is False else None
            )
            if refused is not None:
                raise ProviderError(PLATFORM, refused[1], code=refused[0], status=200, operation=operation)
        else:
            operation = "UpdateModelServiceInstanceGroup"
            body = {"params": changes}  # Go SDK UpdateModelServiceInstanceGroupParam
            path = f"/model-service-instance-groups/{uuid}"
            answer = await self.session.call("PUT", path, json=body, operation=operation, asynchronous=True)
        return self._live(kind, _inventory(answer, operation))

    async def delete(self, kind: str, id: str, scope: Mapping[str, str]) -> None:
        """Delete (``deleteMode=Permissive``) and wait for the job; a missing object is success in ZStack."""
        k = kind_of(kind)
        path = f"{k.collection}/{quote(id, safe='')}"
        params = {"deleteMode": "Permissive"}
        await self.session.call("DELETE", path, params=params, operation=f"Delete{k.noun}", asynchronous=True)

    async def wait(
        self, kind: str, id: str, scope: Mapping[str, str], until: Until, timeout: float
    ) -> Live | None:
        """Poll with backoff; a retryable read error only delays the verdict until the deadline."""
        return await poll_until(
            lambda: self.read(kind, id, scope),
            lambda live: _settled(kind, id, live, until),
            until=until,
            limit=min(timeout, self.wait_timeout),
            clock=self._clock,
            sleep=self._sleep,
            first_delay=0.05,
            poll_interval=self.poll_interval,
            what=f"{kind} {id}",
            platform=PLATFORM,
            operation=f"Wait{kind_of(kind).noun}",
        )

    async def aclose(self) -> None:
        await self.session.aclose()

    # -- helpers ----------------------------------------------------------------------

    async def _query(self, kind: str, condition: str | None) -> builtins.list[dict[str, Any]]:
        """Every raw object matching ``condition``: the first page, then the rest concurrently."""
        k = kind_of(kind)
        operation = f"Query{k.noun}"

        async def page(start: int) -> tuple[builtins.list[dict[str, Any]], int]:
            params: dict[str, Any] = {
                "start": start,
                "limit": PAGE_SIZE,
                "replyWithCount": "true",
                "sort": "+uuid",
            }
            if condition is not None:
                params["q"] = condition
            answer = await self.session.call("GET", k.collection, params=params, operation=operation)
            items = _inventories(answer, operation)
            total = answer.get("total") if isinstance(answer, dict) else None
            return items, total if isinstance(total, int) else len(items)

        first, total = await page(0)
        step = len(first) if 0 < len(first) < PAGE_SIZE else PAGE_SIZE  # a server capping `limit`
        starts = range(step, total, step) if first else range(0)
        pages = [first, *(items for items, _ in await asyncio.gather(*map(page, starts)))]
        unique: dict[str, dict[str, Any]] = {}
        for items in pages:
            for obj in items:
                unique.setdefault(str(obj["uuid"]), obj)  # objects may shift between pages
        return builtins.list(unique.values())

    def _live(self, kind: str, obj: Mapping[str, Any]) -> Live:
        status, name = obj.get("status"), obj.get("name")
        return Live(
            id=str(obj["uuid"]),
            attributes=normalise(kind, obj),
            status=status if isinstance(status, str) else None,
            name=name if isinstance(name, str) else None,
        )

    def access_check(self) -> AccessCheck:
        """The preflight (:mod:`reconciler.preflight`): log in, then query one model service.

        A wrong account or password is answered ``ID.1000`` by the login.
        """
        k = kind_of(SERVICE)
        params = {"start": 0, "limit": 1}

        async def call(attempts: int, timeout: float) -> None:
            api = self.session.api
            self.session.api = limited(api, attempts, timeout)  # the session's login is kept for later
            try:
                await self.session.call("GET", k.collection, params=params, operation=f"Query{k.noun}")
            finally:
                self.session.api = api

        url = str(self.session.api.http.build_request("GET", k.collection, params=params).url)
        return AccessCheck("account and password", url, call, refused_codes=frozenset({"ID.1000"}))


def _settled(kind: str, id: str, live: Live | None, until: Until) -> bool:
    """True when ``live`` has reached ``until``; raises when it never will.

    The verdict follows the kind's lifecycle phase (a status it does not know raises
    ``unknown_status``); a model service has no status: present is ready.
    """
    if until == "gone":
        return live is None
    phase = kind_of(kind).spec.phase(id, live)
    status = live.status if live is not None else None
    operation = f"Wait{kind_of(kind).noun}"
    if live is not None and phase is Phase.FAILED:
        instances = live.attributes.get("instances") or []
        detail = ", ".join(f"{i.get('uuid')}: {i.get('status')}" for i in instances if isinstance(i, dict))
        message = f"{kind} {id} is {status}" + (f" (instances: {detail})" if detail else "")
        raise ProviderError(PLATFORM, message, code=str(status), operation=operation)
    if phase.absent:
        message = f"{kind} {id} is {status or 'gone'} while waiting for it to become ready"
        raise ProviderError(PLATFORM, message, code="not_found", operation=operation)
    return phase is Phase.READY


def _inventory(answer: Any, operation: str) -> dict[str, Any]:
    inventory = answer.get("inventory") if isinstance(answer, dict) else None
    if not isinstance(inventory, dict) or not inventory.get("uuid"):
        raise invalid(operation, "expected {inventory: {uuid, ...}}")
    return inventory


def _inventories(answer: Any, operation: str) -> builtins.list[dict[str, Any]]:
    items = answer.get("inventories") if isinstance(answer, dict) else None
    if not isinstance(items, builtins.list):
        raise invalid(operation, "expected {inventories: [...]}")
    return [o for o in items if isinstance(o, dict) and o.get("uuid")]


def _number(block: Mapping[str, Any], key: str, default: float, *, allow_zero: bool = False) -> float:
    value = block.get(key, default)
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not number or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise UsageError(f"providers.zstack.{key} must be a {kind} number, not {value!r}")
    return float(value)
