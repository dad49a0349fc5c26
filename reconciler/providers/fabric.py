"""Huawei Cloud DataArts Fabric: workspaces, endpoints, models and service instances.

Two hosts: the control plane (``url``: workspaces, endpoints, models) and the
service-instance host (``ep_url``). ``url: embedded`` runs the in-process
emulator instead; its store is ``<state_dir>/emulator/fabric.json``, so the
embedded "cloud" outlives one CLI run.

Credentials: ``token`` (an IAM token, sent as ``X-Auth-Token``) or ``ak`` +
``sk`` (+ optional ``project_id``, sent as ``X-Project-Id``): every request is
then signed SDK-HMAC-SHA256 by :class:`~reconciler.providers.fabric_signing.AkSkAuth`.
The token and the SK are scrubbed from every error message.

Comparable attributes per kind (live objects are normalised to the shape
:meth:`FabricProvider.desired` builds from the stack; only keys the stack sets):

* ``workspace``: name, description, metastore_id, enterprise_project_id
* ``endpoint``: workspace_id, name, description, type, reserved_resource,
  custom_image_id; ``public_access`` is input only (no answer carries it)
* ``model``: workspace_id, name, description, type, version{name, description,
  config} (the current version), read-only version_id
* ``service_instance``: workspace_id, name, description, endpoint_id,
  source{id, version_id}, config.model_instance_config.resource{spec_code, min,
  max}, read-only url and status

Health gates (a deployment's ``health_check``): :meth:`FabricProvider.probe`
invokes a RUNNING service instance once, the streamed chat call, and fails
unless the whole answer arrives within the gate's time limit.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx

from reconciler.errors import ProviderError, TransportError, UsageError
from reconciler.preflight import AccessCheck, limited
from reconciler.providers.base import UNKNOWN, KindSpec, Lifecycle, Limit, Live, Phase, RefValue, Until
from reconciler.providers.fabric_signing import AkSkAuth
from reconciler.providers.http import HTTP_BLOCK_KEYS, ApiClient, http_settings, tls_context
from reconciler.providers.polling import poll_until

PLATFORM = "fabric"
PAGE_SIZE = 100
EMBEDDED_BASE_URL = "http://fabric.embedded"
# The error-code table (api-fabric dataartsfabric_03_0028) answers 400 for these two "does not
# exist" cases: 00010003 "Workspace not exist.", 00010009 "No resources found.".
MISSING_CODES = frozenset({"dataartsfabric.00010003", "dataartsfabric.00010009"})


class EndpointStatus(StrEnum):
    """Every endpoint status the SDK's ``EndpointStatus`` and the endpoint pages list."""

    CREATING = "CREATING"
    RUNNING = "RUNNING"
    CREATE_FAILED = "CREATE_FAILED"
    UPDATING = "UPDATING"
    UPDATE_FAILED = "UPDATE_FAILED"
    DELETING = "DELETING"
    DELETED = "DELETED"
    DELETE_FAILED = "DELETE_FAILED"
    FROZEN = "FROZEN"
    INACTIVE = "INACTIVE"


class ServiceInstanceStatus(StrEnum):
    """Every service-instance status the ep SDK's ``StatusEnum`` lists."""

    PENDING = "PENDING"
    CREATING = "CREATING"
    RUNNING = "RUNNING"
    UPDATING = "UPDATING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    DELETING = "DELETING"
    DELETED = "DELETED"


_E, _S = EndpointStatus, ServiceInstanceStatus
ENDPOINT_LIFECYCLE = Lifecycle(
    PLATFORM,
    {
        _E.CREATING: Phase.IN_PROGRESS,
        _E.RUNNING: Phase.READY,
        _E.CREATE_FAILED: Phase.FAILED,
        _E.UPDATING: Phase.IN_PROGRESS,
        _E.UPDATE_FAILED: Phase.FAILED,
        _E.DELETING: Phase.DELETING,
        _E.DELETED: Phase.GONE,
        _E.DELETE_FAILED: Phase.FAILED,  # a delete that ended badly: reported with the platform's message
        _E.FROZEN: Phase.STOPPED,
        _E.INACTIVE: Phase.STOPPED,
    },
)
SERVICE_INSTANCE_LIFECYCLE = Lifecycle(
    PLATFORM,
    {
        _S.PENDING: Phase.IN_PROGRESS,
        _S.CREATING: Phase.IN_PROGRESS,
        _S.RUNNING: Phase.READY,
        _S.UPDATING: Phase.IN_PROGRESS,
        _S.SUCCEEDED: Phase.STOPPED,  # ran to its end: present, not serving
        _S.FAILED: Phase.FAILED,
        _S.STOPPING: Phase.STOPPED,
        _S.STOPPED: Phase.STOPPED,
        _S.DELETING: Phase.DELETING,
        _S.DELETED: Phase.GONE,
    },
)
HEALTH_CHECK_FAILED = "health_check_failed"
BLOCK_KEYS = HTTP_BLOCK_KEYS | frozenset(
    {"url", "ep_url", "token", "wait_timeout", "poll_interval", "provision_seconds", "ak", "sk", "project_id"}
    | {"region"}
)
_WS = "workspace_id"
_VERSION_KEYS = ("name", "description", "config")
_SOURCE_KEYS = ("id", "version_id")
_RESOURCE_KEYS = ("spec_code", "min", "max")
_RESOURCE = "config.model_instance_config.resource"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class _Kind:
    """One kind: its static facts, how it is reached, which stack fields it takes."""

    spec: KindSpec
    noun: str  # operation names are verb + noun: "CreateEndpoint"
    items: str  # key of the list envelope
    collection: str  # path template; {workspace_id} comes from the scope
    host: Literal["control", "ep"]
    showable: bool  # a single-item GET exists (else read through the list with ?id=)
    fields: tuple[str, ...]  # stack fields (API names), structural references aside
    literal_refs: tuple[str, ...]  # fields a stack may give instead of a reference
    updatable: tuple[str, ...]  # top-level fields the PUT sends as they are
    create_op: str = ""


_SCOPED = "/v1/workspaces/{workspace_id}"
_KINDS: Mapping[str, _Kind] = {
    "workspace": _Kind(
        KindSpec(
            "workspace",
            read_back=_words("name description metastore_id enterprise_project_id"),
            force_new=_words("enterprise_project_id"),
            read_only=_words("id create_time create_domain_name create_user_name access_url"),
        ),
        "Workspace", "workspaces", "/v1/workspaces", "control", False,
        ("name", "description", "metastore_id", "enterprise_project_id"), (),
        ("name", "description", "metastore_id"),
    ),
    "endpoint": _Kind(
        KindSpec(
            "endpoint",
            force_new=_words("workspace_id type public_access custom_image_id"),
            read_only=_words("id status visibility create_time update_time owner urls error_code error_msg"),
            scope=(_WS,),
            asynchronous=True,
            # no endpoint response model (Create/Show/Update, EndpointBriefInfo) carries public_access;
            # custom_image_id they all carry, so it is read back
            input_only=_words("public_access"),
            read_back=_words("name description type reserved_resource custom_image_id"),
            lifecycle=ENDPOINT_LIFECYCLE,
            # the service instances on an endpoint may together scale to its reserved mu maximum
            limits=(
                Limit("reserved_resource.mu.max", "service_instance", f"{_RESOURCE}.max", "endpoint_id"),
            ),
        ),
        "Endpoint", "endpoints", _SCOPED + "/endpoints", "control", True,
        ("name", "description", "type", "reserved_resource", "public_access", "custom_image_id"), (_WS,),
        ("name", "description", "reserved_resource"),
    ),
    "model": _Kind(
        KindSpec(
            "model",
            read_back=_words("name description type version"),
            force_new=_words("workspace_id type"),
            read_only=_words("id version_id visibility create_time update_time create_user update_user"),
            scope=(_WS,),
            recomputed=(("version_id", "version"),),
        ),
        "Model", "models", _SCOPED + "/models", "control", False,
        ("name", "description", "type", "version"), (_WS,),
        ("name", "description"),
    ),
    "service_instance": _Kind(
        KindSpec(
            "service_instance",
            force_new=_words(f"workspace_id endpoint_id source.id source.version_id {_RESOURCE}.min")
            | {f"{_RESOURCE}.spec_code"},
            read_only=_words("id url status type visibility create_time update_time duration create_user")
            | {"error_code", "error_msg"},
            scope=(_WS,),
            asynchronous=True,
            read_back=_words("name description endpoint_id source config"),
            lifecycle=SERVICE_INSTANCE_LIFECYCLE,
            list_omits=frozenset({"config", "url"}),  # ServiceInstanceBriefInfo has no config
            change_marker="update_time",
        ),
        "ServiceInstance", "service_instances", _SCOPED + "/services/instances", "ep", True,
        ("name", "description", "config"), (_WS, "endpoint_id", "source"),
        ("name", "description"),
        create_op="DeployServiceInstance",
    ),
}  # fmt: skip
KINDS: Mapping[str, KindSpec] = {name: k.spec for name, k in _KINDS.items()}


# -- the pure half: stack fields and live objects as comparable attributes -----------


def _desired(kind: str, attrs: Mapping[str, Any], refs: Mapping[str, RefValue]) -> dict[str, Any]:
    k = _kind(kind)
    unknown = sorted(set(attrs) - set(k.fields) - set(k.literal_refs))
    if unknown:
        raise UsageError(
            f"fabric {kind}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(k.fields)}"
        )
    out: dict[str, Any] = {}
    if k.spec.scope:
        out[_WS] = _ref_id(kind, refs, attrs, "workspace", _WS)
    out.update((f, _plain(attrs[f])) for f in k.fields if f in attrs)
    if kind == "model" and "version" in out:
        _only(out["version"], _VERSION_KEYS, "model version")
    if kind == "service_instance":
        out["endpoint_id"] = _ref_id(kind, refs, attrs, "endpoint", "endpoint_id")
        model = refs.get("model")
        if model is not None:
            version = UNKNOWN if model.id is UNKNOWN else model.attributes.get("version_id", UNKNOWN)
            out["source"] = {"id": model.id, "version_id": version}
        elif "source" in attrs:
            out["source"] = _only(_plain(attrs["source"]), _SOURCE_KEYS, "service_instance source")
        else:
            raise UsageError("fabric service_instance: needs a model (reference `model` or give `source`)")
        if "config" in out:
            config = _mapping(_only(out["config"], ("model_instance_config",), "service_instance config"))
            mic = _mapping(_only(config.get("model_instance_config"), ("resource",), "model_instance_config"))
            _only(mic.get("resource"), _RESOURCE_KEYS, "model_instance_config.resource")
    return out


def _scope_of(kind: str, attributes: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in _kind(kind).spec.scope:
        value = attributes.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError(f"fabric {kind}: {key} is missing or not known yet")
        out[key] = value
    return out


def _normalise(kind: str, obj: Mapping[str, Any], scope: Mapping[str, str]) -> dict[str, Any]:
    k = _KINDS[kind]
    nested = {"version", "version_id", "source", "config"}
    out = {f: obj[f] for f in (*k.fields, *k.literal_refs, *sorted(k.spec.read_only)) if f in obj}
    for f in nested & set(out):
        del out[f]
    if k.spec.scope:
        out[_WS] = scope.get(_WS, obj.get(_WS))
    if kind == "model":
        current = _mapping(obj.get("current_version"))
        out["version"] = {f: current[f] for f in _VERSION_KEYS if current.get(f) is not None}
        out["version_id"] = current.get("id")
    if kind == "service_instance":
        source = _mapping(obj.get("source"))
        out["source"] = {f: source.get(f) for f in _SOURCE_KEYS}
        mic = _mapping(_mapping(obj.get("config")).get("model_instance_config"))
        resource = _mapping(mic.get("resource"))
        out["config"] = _nest({f: resource[f] for f in _RESOURCE_KEYS if resource.get(f) is not None})
    return out


def _create_body(kind: str, want: Mapping[str, Any]) -> dict[str, Any]:
    k = _KINDS[kind]
    fields = (*k.fields, *(f for f in k.literal_refs if f != _WS))
    return _ensure_known(kind, {f: want[f] for f in fields if f in want})


def _update_body(kind: str, live: Live, want: Mapping[str, Any]) -> dict[str, Any]:
    body = {f: want[f] for f in _KINDS[kind].updatable if f in want}
    if kind == "model" and "version" in want and _differs(want["version"], live.attributes.get("version")):
        body["version"] = want["version"]  # the platform makes a new version, current from now on
    if kind == "service_instance" and "config" in want:
        resource = _mapping(_mapping(want["config"].get("model_instance_config")).get("resource"))
        body["config"] = _nest({f: resource[f] for f in ("min", "max") if f in resource})
    return _ensure_known(kind, body)


def _kind(kind: str) -> _Kind:
    if kind not in _KINDS:
        raise ValueError(f"fabric has no kind {kind!r}; kinds: {', '.join(_KINDS)}")
    return _KINDS[kind]


def _ref_id(kind: str, refs: Mapping[str, RefValue], attrs: Mapping[str, Any], ref: str, field: str) -> Any:
    if ref in refs:
        return refs[ref].id
    if field in attrs:
        return attrs[field]
    raise UsageError(f"fabric {kind}: needs a {ref} (reference `{ref}` or give `{field}`)")


def _plain(value: Any) -> Any:
    """Mappings and sequences from the stack as plain JSON containers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, builtins.list | tuple):
        return [_plain(v) for v in value]
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _only(value: Any, allowed: tuple[str, ...], where: str) -> Any:
    """``value`` itself; raises UsageError when it is a mapping with keys outside ``allowed``."""
    extra = sorted(set(value) - set(allowed)) if isinstance(value, Mapping) else []
    if extra:
        allowed_text = ", ".join(allowed)
        raise UsageError(f"fabric {where}: unknown field(s) {', '.join(extra)}; allowed: {allowed_text}")
    return value


def _nest(resource: dict[str, Any]) -> dict[str, Any]:
    return {"model_instance_config": {"resource": resource}}


def _differs(want: Any, have: Any) -> bool:
    """Whether ``have`` differs from ``want`` on the keys ``want`` sets (recursively)."""
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return True
        return any(k not in have or _differs(v, have[k]) for k, v in want.items())
    return bool(want != have)


def _ensure_known(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    def unknown(value: Any) -> bool:
        if isinstance(value, dict | builtins.list):
            return any(unknown(v) for v in (value.values() if isinstance(value, dict) else value))
        return value is UNKNOWN

    if unknown(body):
        raise ValueError(f"fabric {kind}: a value is still unknown; resolve references before sending")
    return body


def fabric_error(response: httpx.Response) -> tuple[str | None, str]:
    """Fabric's envelopes: ``{error_code, error_msg}``; the gateway's ``{"error": {code, message}}``."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text.strip()[:500] or response.reason_phrase
    if not isinstance(body, dict):
        return None, str(body)[:500]
    gateway = _mapping(body.get("error"))
    code = body.get("error_code")
    if not isinstance(code, str) or not code:
        code = gateway.get("code", code)
    message = body.get("error_msg")
    if not isinstance(message, str) or not message:
        message = gateway.get("message") or message or response.reason_phrase
    return (str(code) if code not in (None, "") else None), str(message)


# -- the I/O half -------------------------------------------------------------------

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class FabricProvider:
    """The :class:`~reconciler.providers.base.Provider` for DataArts Fabric.

    ``control`` serves workspaces, endpoints and models; ``ep`` serves service
    instances (defaults to ``control``). ``wait_timeout`` caps every
    :meth:`wait` (the smaller of it and the caller's timeout applies); polls
    back off from 0.2s up to ``poll_interval``. ``clock``/``sleep`` are seams for tests.
    """

    platform: str = PLATFORM
    kinds: Mapping[str, KindSpec] = KINDS

    def __init__(
        self,
        control: ApiClient,
        ep: ApiClient | None = None,
        *,
        wait_timeout: float = 1800.0,
        poll_interval: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.control = control
        self.ep = ep if ep is not None else control
        self.wait_timeout = float(wait_timeout)
        self.poll_interval = float(poll_interval)
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_block(cls, block: Mapping[str, Any], *, state_dir: Path) -> FabricProvider:
        """Build from a stack's ``providers.fabric`` block; raises UsageError for a bad block."""
        unknown = sorted(set(block) - BLOCK_KEYS)
        if unknown:
            allowed = ", ".join(sorted(BLOCK_KEYS))
            raise UsageError(f"providers.fabric: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
        url = block.get("url")
        if not isinstance(url, str) or not (url == "embedded" or url.startswith(("http://", "https://"))):
            raise UsageError("providers.fabric.url must be `embedded` or an http(s) base URL")
        credentials = _credentials(block)
        if url == "embedded" and credentials.ak is None and credentials.token is None:
            credentials = _Credentials(token="emulator-token")
        knobs = http_settings(block, PLATFORM)
        pacing = knobs.pacing()  # one per provider: both hosts share the platform's limits
        wait = _number(block, "wait_timeout", 1800.0)
        poll = _number(block, "poll_interval", 1.0)

        def client(base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> ApiClient:
            http = httpx.AsyncClient(
                base_url=base_url, transport=transport, verify=tls_context(),
                headers=credentials.headers(), auth=credentials.auth(),
            )  # fmt: skip
            return ApiClient(
                http, platform=PLATFORM, error_parser=fabric_error, timeout=knobs.timeout,
                secrets=credentials.secrets(), pacing=pacing, retry=knobs.retry,
            )  # fmt: skip

        if url == "embedded":
            from reconciler.emulators import EmulatorConfig, build_app

            data_file = state_dir / "emulator" / "fabric.json"
            data_file.parent.mkdir(parents=True, exist_ok=True)
            seconds = _number(block, "provision_seconds", 1.0, allow_zero=True)
            config = EmulatorConfig(
                fabric_token=credentials.token or "emulator-token",
                fabric_ak=credentials.ak,
                fabric_sk=credentials.sk,
                provision_seconds=seconds,
                data_file=data_file,
            )
            transport = httpx.ASGITransport(app=build_app(config))
            return cls(client(EMBEDDED_BASE_URL, transport), wait_timeout=wait, poll_interval=poll)
        if credentials.ak is None and credentials.token is None:
            raise UsageError(
                "providers.fabric.token is required (an IAM token, sent as X-Auth-Token), "
                "unless `ak` and `sk` are given to sign each request"
            )
        if "provision_seconds" in block:
            raise UsageError("providers.fabric.provision_seconds applies only to `url: embedded`")
        ep_url = block.get("ep_url", url)
        if not isinstance(ep_url, str) or not ep_url.startswith(("http://", "https://")):
            raise UsageError("providers.fabric.ep_url must be an http(s) base URL")
        control = client(url)
        same_host = ep_url.rstrip("/") == url.rstrip("/")
        ep = control if same_host else client(ep_url)
        return cls(control, ep, wait_timeout=wait, poll_interval=poll)

    # -- pure -------------------------------------------------------------------------

    def desired(self, kind: str, attrs: Mapping[str, Any], refs: Mapping[str, RefValue]) -> dict[str, Any]:
        return _desired(kind, attrs, refs)

    def scope_of(self, kind: str, attributes: Mapping[str, Any]) -> dict[str, str]:
        return _scope_of(kind, attributes)

    def settled(self, kind: str, id: str, live: Live | None, until: Until) -> bool:
        """Whether ``live`` (None: absent) reached ``until``; ProviderError when it never will."""
        return _settled(kind, id, live, until)

    # -- reads ------------------------------------------------------------------------

    async def list(self, kind: str, scope: Mapping[str, str]) -> builtins.list[Live]:
        return [self._live(kind, obj, scope) for obj in await self._list_raw(kind, scope, {})]

    async def read(self, kind: str, id: str, scope: Mapping[str, str]) -> Live | None:
        k = _kind(kind)
        if not k.showable:
            found = [o for o in await self._list_raw(kind, scope, {"id": id}) if o.get("id") == id]
            return self._live(kind, found[0], scope) if found else None
        try:
            obj = await self._client(k).request("GET", self._path(kind, scope, id), operation=f"Show{k.noun}")
        except ProviderError as exc:
            if _is_missing(exc):
                return None
            raise
        if not isinstance(obj, dict) or not obj.get("id"):
            raise _invalid(f"Show{k.noun}", "expected an object with an id")
        return self._live(kind, obj, scope)

    async def find(
        self, kind: str, name: str, scope: Mapping[str, str], *, token: str | None = None
    ) -> Live | None:
        """The object called ``name``; DELETED ones only when nothing else matches.

        Several live matches raise ProviderError ``ambiguous_name`` rather than adopt a guess.
        """
        named = [o for o in await self._list_raw(kind, scope, {"name": name}) if o.get("name") == name]
        spec = _kind(kind).spec
        candidates = [o for o in named if _raw_phase(spec, o) is not Phase.GONE] or named[:1]
        if len(candidates) > 1:
            candidates = [o for o in candidates if _raw_phase(spec, o) is not Phase.DELETING] or candidates
        if len(candidates) > 1:
            ids = ", ".join(str(o["id"]) for o in candidates)
            raise ProviderError(
                PLATFORM,
                f"{len(candidates)} {kind}s are called {name!r} ({ids}); delete or rename the extra ones",
                code="ambiguous_name",
                operation=f"List{_kind(kind).noun}s",
            )
        return self._live(kind, candidates[0], scope) if candidates else None

    # -- writes -----------------------------------------------------------------------

    async def create(self, kind: str, desired: Mapping[str, Any], *, token: str | None = None) -> Live:
        k = _kind(kind)
        scope = self.scope_of(kind, desired)
        operation = k.create_op or f"Create{k.noun}"
        body = _create_body(kind, desired)
        path = self._path(kind, scope)
        answer = await self._client(k).request("POST", path, json=body, operation=operation)
        new_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(new_id, str) or not new_id:
            raise _invalid(operation, "the answer carries no id")
        try:
            live = await self.read(kind, new_id, scope)
        except ProviderError:
            live = None  # the object exists: never lose its id over a failed read-back
        return live or Live(id=new_id, attributes={**desired, "id": new_id}, name=desired.get("name"))

    async def update(self, kind: str, live: Live, desired: Mapping[str, Any]) -> Live:
        k = _kind(kind)
        scope = self.scope_of(kind, {**live.attributes, **desired})
        if kind == "model" and "version" in desired:
            live = await self.read(kind, live.id, scope) or live  # `live` may be the recorded state
        body = _update_body(kind, live, desired)
        path = self._path(kind, scope, live.id)
        # a PUT carrying a model `version` adds a version each time: not safe to send twice
        replayable = "version" not in body
        operation = f"Update{k.noun}"
        await self._client(k).request("PUT", path, json=body, operation=operation, idempotent=replayable)
        fresh = await self.read(kind, live.id, scope)
        if fresh is None:
            message = f"{kind} {live.id} vanished during its update"
            raise ProviderError(PLATFORM, message, code="not_found", operation=f"Update{k.noun}")
        return fresh

    async def delete(self, kind: str, id: str, scope: Mapping[str, str]) -> None:
        k = _kind(kind)
        try:
            await self._client(k).request("DELETE", self._path(kind, scope, id), operation=f"Delete{k.noun}")
        except ProviderError as exc:
            error = exc
        else:
            return
        if _is_missing(error):
            return
        if error.status == 400:  # refused: success if it is already going (a retry after a lost answer)
            try:
                current = await self.read(kind, id, scope)
            except ProviderError:
                raise error from None
            if k.spec.phase(id, current).absent:
                return
        raise error

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
            first_delay=0.2,
            poll_interval=self.poll_interval,
            what=f"{kind} {id}",
            platform=PLATFORM,
            operation=f"Wait{_kind(kind).noun}",
        )

    async def probe(self, kind: str, live: Live, prompt: str, timeout: float) -> None:
        """A health gate: one streamed chat invocation of a service instance must finish in time.

        POSTs ``{"messages": [{"role": "user", "content": prompt}]}`` to the
        instance's ``.../invocations`` (the ``ep`` host) and reads its
        ``chat.completion.chunk`` events up to ``data: [DONE]``, all within
        ``timeout`` seconds. Sent once: a slow or failed answer is the verdict.
        Raises ProviderError with the platform's code when it answers an error
        (e.g. 400 ``common.01000001``: the instance is not running), else with
        ``health_check_failed`` (no complete answer in time, the connection
        lost, a stream that is malformed or ends before ``[DONE]``).
        """
        if kind != "service_instance":
            raise ValueError(f"fabric can invoke a service_instance only, not a {kind}")
        operation = "InvokeServiceInstance"
        path = self._path(kind, self.scope_of(kind, live.attributes), live.id) + "/invocations"
        body = {"messages": [{"role": "user", "content": prompt}]}
        who = f"service instance {live.name or live.id}"

        def unhealthy(what: str) -> ProviderError:
            message = f"{who} failed its health check: {what}"
            return ProviderError(PLATFORM, message, code=HEALTH_CHECK_FAILED, operation=operation)

        try:
            lines = await self.ep.stream_lines("POST", path, json=body, operation=operation, timeout=timeout)
        except TransportError as exc:
            raise unhealthy(exc.platform_message) from exc
        chunks = 0
        for line in lines:
            if not line.startswith("data:"):
                continue  # blank separators, `id:`/`event:` fields, `:` comments
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                if not chunks:
                    raise unhealthy("the stream ended without a single chat.completion.chunk")
                return
            try:
                event = json.loads(data)
            except ValueError:
                raise unhealthy(f"an event is not JSON: {data[:80]!r}") from None
            error = _mapping(event).get("error")
            if error is not None:  # an error reported inside the stream, after a 200
                code, message = _stream_error(error)
                raise ProviderError(PLATFORM, f"{who}: {message}", code=code, operation=operation)
            if _mapping(event).get("object") != "chat.completion.chunk":
                raise unhealthy(f"unexpected event {data[:80]!r}")
            chunks += 1
        raise unhealthy("the stream ended before data: [DONE]")

    async def aclose(self) -> None:
        await self.control.aclose()
        if self.ep is not self.control:
            await self.ep.aclose()

    # -- helpers ----------------------------------------------------------------------

    def _client(self, k: _Kind) -> ApiClient:
        return self.ep if k.host == "ep" else self.control

    def _path(self, kind: str, scope: Mapping[str, str], id: str | None = None) -> str:
        k = _kind(kind)
        values = {key: quote(value, safe="") for key, value in _scope_of(kind, scope).items()}
        collection = k.collection.format(**values)
        return collection if id is None else f"{collection}/{quote(id, safe='')}"

    def _live(self, kind: str, obj: Mapping[str, Any], scope: Mapping[str, str]) -> Live:
        status, name = obj.get("status"), obj.get("name")
        return Live(
            id=str(obj["id"]),
            attributes=_normalise(kind, obj, scope),
            status=status if isinstance(status, str) else None,
            name=name if isinstance(name, str) else None,
        )

    async def _list_raw(
        self, kind: str, scope: Mapping[str, str], filters: Mapping[str, str]
    ) -> builtins.list[dict[str, Any]]:
        """Every raw object matching ``filters``: the first page, then the rest concurrently.

        A missing scope (its workspace is gone) lists nothing.
        """
        k = _kind(kind)
        client, path, operation = self._client(k), self._path(kind, scope), f"List{k.noun}s"

        async def page(offset: int) -> tuple[builtins.list[dict[str, Any]], int]:
            params = {**filters, "offset": offset, "limit": PAGE_SIZE}
            answer = await client.request("GET", path, params=params, operation=operation)
            if not isinstance(answer, dict) or not isinstance(answer.get(k.items), builtins.list):
                raise _invalid(operation, f"expected {{total, {k.items}}}")
            items = [o for o in answer[k.items] if isinstance(o, dict) and o.get("id")]
            total = answer.get("total")
            return items, total if isinstance(total, int) else len(items)

        try:
            first, total = await page(0)
            step = len(first) if 0 < len(first) < PAGE_SIZE else PAGE_SIZE  # a server capping `limit`
            offsets = range(step, total, step) if first else range(0)
            pages = [first, *(items for items, _ in await asyncio.gather(*map(page, offsets)))]
        except ProviderError as exc:
            if _is_missing(exc):
                return []
            raise
        unique: dict[str, dict[str, Any]] = {}
        for items in pages:
            for obj in items:
                unique.setdefault(str(obj["id"]), obj)  # objects may shift between pages
        return builtins.list(unique.values())

    def access_check(self) -> AccessCheck:
        """The preflight (:mod:`reconciler.preflight`): list one workspace on the control host."""
        path, params = _KINDS["workspace"].collection, {"offset": 0, "limit": 1}

        async def call(attempts: int, timeout: float) -> None:
            client = limited(self.control, attempts, timeout)
            await client.request("GET", path, params=params, operation="ListWorkspaces")

        signed = isinstance(self.control.http.auth, AkSkAuth)
        url = str(self.control.http.build_request("GET", path, params=params).url)
        return AccessCheck("AK/SK signature" if signed else "token", url, call)


def _settled(kind: str, id: str, live: Live | None, until: Until) -> bool:
    """True when ``live`` has reached ``until``; raises when it never will (by the kind's lifecycle)."""
    spec = _kind(kind).spec
    operation = f"Wait{_kind(kind).noun}"
    status = live.status if live is not None else None
    if live is not None and status is None and spec.lifecycle is not None:
        return until == "ready"  # nothing reported (a create whose read-back failed): trust the create
    phase = spec.phase(id, live)
    if live is not None and phase is Phase.FAILED:
        message = str(live.attributes.get("error_msg") or f"{kind} {id} is {status}")
        code = str(live.attributes.get("error_code") or status)
        raise ProviderError(PLATFORM, message, code=code, operation=operation)
    if until == "gone":
        return phase is Phase.GONE
    if phase.absent:
        message = f"{kind} {id} is {status or 'gone'} while waiting for it to become ready"
        raise ProviderError(PLATFORM, message, code="not_found", operation=operation)
    if phase is Phase.STOPPED:
        message = f"{kind} {id} is {status}: present but not serving, so it will not become ready"
        raise ProviderError(PLATFORM, message, code=str(status), operation=operation)
    return phase is Phase.READY


def _stream_error(error: Any) -> tuple[str, str]:
    """``(code, message)`` of an error event inside an invocation's stream."""
    if isinstance(error, Mapping):
        code, message = error.get("code") or error.get("error_code"), error.get("message")
        return str(code or HEALTH_CHECK_FAILED), str(message or error)
    return HEALTH_CHECK_FAILED, str(error)


def _raw_phase(spec: KindSpec, obj: Mapping[str, Any]) -> Phase | None:
    """The phase of a raw listed object by its kind's lifecycle; None for a status never documented."""
    if spec.lifecycle is None:
        return Phase.READY
    status = obj.get("status")
    try:
        return spec.lifecycle.phase(
            spec.name, str(obj.get("id")), status if isinstance(status, str) else None
        )
    except ProviderError:
        return None


def _is_missing(exc: ProviderError) -> bool:
    return exc.status == 404 or (exc.status == 400 and (exc.code or "") in MISSING_CODES)


def _invalid(operation: str, message: str) -> ProviderError:
    message = f"unexpected answer: {message}"
    return ProviderError(PLATFORM, message, code="invalid_response", operation=operation)


@dataclass(frozen=True)
class _Credentials:
    """How requests prove who sends them: an IAM token, or an AK/SK pair that signs each request."""

    token: str | None = field(default=None, repr=False)
    ak: str | None = None
    sk: str | None = field(default=None, repr=False)
    project_id: str | None = None

    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token} if self.token else {}

    def auth(self) -> AkSkAuth | None:
        return AkSkAuth(self.ak, self.sk, self.project_id) if self.ak and self.sk else None

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.sk) if s)


def _credentials(block: Mapping[str, Any]) -> _Credentials:
    """``token``, or ``ak`` + ``sk`` (+ optional ``project_id``); never both, never half a pair.

    Messages name the keys, never their values.
    """
    for key in ("token", "ak", "sk", "project_id"):
        value = block.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise UsageError(f"providers.fabric.{key} must be a non-empty string")
    token, ak, sk, project_id = (block.get(k) for k in ("token", "ak", "sk", "project_id"))
    if token is not None and (ak is not None or sk is not None):
        raise UsageError("providers.fabric: give either `token` or `ak` and `sk`, not both")
    if (ak is None) != (sk is None):
        given, missing = ("ak", "sk") if sk is None else ("sk", "ak")
        raise UsageError(f"providers.fabric.{given} needs providers.fabric.{missing} as well (an AK/SK pair)")
    if project_id is not None and ak is None:
        raise UsageError("providers.fabric.project_id goes with `ak` and `sk` (sent as X-Project-Id)")
    return _Credentials(token=token, ak=ak, sk=sk, project_id=project_id)


def _number(block: Mapping[str, Any], key: str, default: float, *, allow_zero: bool = False) -> float:
    value = block.get(key, default)
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not number or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise UsageError(f"providers.fabric.{key} must be a {kind} number, not {value!r}")
    return float(value)
