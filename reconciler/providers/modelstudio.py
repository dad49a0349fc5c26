"""Alibaba Cloud Model Studio (DashScope): model deployments, one kind ``deployment``.

``url`` is the API base (``https://dashscope-intl.aliyuncs.com/api/v1``,
``https://dashscope.aliyuncs.com/api/v1``, or a served emulator's
``http://127.0.0.1:PORT/api/v1``); ``url: embedded`` runs the in-process
emulator instead, its store in ``<state_dir>/emulator/modelstudio.json``.
``api_key`` (else ``$DASHSCOPE_API_KEY``) is sent as ``Authorization: Bearer``
and never appears in errors; ``workspace`` is sent as ``X-DashScope-WorkSpace``.

Comparable attributes (the stack's field names; only the keys the stack sets
are diffed): model_name, name, plan, capacity, deploy_spec (the platform's
``model_unit_spec``), billing_method (``POST_PAY`` for the platform's
``charge_type: post_paid``), enable_thinking, max_context_length, rpm_limit,
tpm_limit, ptu_capacity{input_tpm, output_tpm, thinking_output_tpm}, suffix
(read back from ``deployed_model``: ``<model>-<8 hex>-<suffix>``); read-only
deployed_model (the id), status, ready_capacity, and message when the
platform gives one. ``name`` is input only: seed 002 lists it among the
request parameters and never returns it, so it is compared with the value
last applied.

Identity: a deployment is found again (a lost create, crash recovery) by
``model_name`` and ``suffix`` (``Live.name`` is ``model_name/suffix``): the
platform refuses a second deployment of a model with a suffix in use, so the
pair names one object. A stack that sets no suffix gets a stable one on
create, ``rc`` + 6 hex digits of the stack name and address
(:func:`default_suffix`); a deployment made earlier without one keeps none.

In place: ``capacity`` and ``ptu_capacity`` through ``/scale``, ``rpm_limit`` and
``tpm_limit`` through ``/update`` (plan ``mu``). When both are needed the
second call waits for the first to settle, because the platform refuses a
change while a deployment is UPDATING; for the same reason those PUTs are not
replayed after a lost answer (the error says so, ``retryable``, and the next
plan reads the platform). Everything else forces a replacement.

The block also takes the HTTP knobs every provider reads
(:data:`~reconciler.providers.http.HTTP_BLOCK_KEYS`: ``timeout``,
``max_retries``, ``max_requests_per_second``, ``max_in_flight``), plus
``wait_timeout``, ``poll_interval`` and, for ``embedded`` only, ``provision_seconds``.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.errors import ProviderError, UsageError
from reconciler.preflight import AccessCheck, limited
from reconciler.providers.base import UNKNOWN, KindSpec, Lifecycle, Live, Phase, RefValue, Until
from reconciler.providers.http import HTTP_BLOCK_KEYS, ApiClient, http_settings, tls_context
from reconciler.providers.polling import poll_until

PLATFORM = "modelstudio"
KIND = "deployment"
PAGE_SIZE = 200
COLLECTION = "deployments"
EMBEDDED_BASE_URL = "http://modelstudio.embedded/api/v1"
API_KEY_ENV = "DASHSCOPE_API_KEY"
FIELDS = (
    "model_name", "name", "plan", "capacity", "deploy_spec", "billing_method", "enable_thinking",
    "max_context_length", "rpm_limit", "tpm_limit", "ptu_capacity", "suffix",
)  # fmt: skip
PTU_KEYS = ("input_tpm", "output_tpm", "thinking_output_tpm")
LIMITS = ("rpm_limit", "tpm_limit")
MISSING_CODES = frozenset({"NotFound", "Model.NotExist"})
BILLING_METHODS = {"post_paid": "POST_PAY", "pre_paid": "PRE_PAY"}


class DeploymentStatus(StrEnum):
    """Every status seed 002's response table documents, plus DEPLOYING, which the dashscope SDK polls on."""

    PENDING = "PENDING"
    DEPLOYING = "DEPLOYING"
    UPDATING = "UPDATING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    DELETING = "DELETING"
    FAILED = "FAILED"


LIFECYCLE = Lifecycle(
    PLATFORM,
    {
        DeploymentStatus.PENDING: Phase.IN_PROGRESS,
        DeploymentStatus.DEPLOYING: Phase.IN_PROGRESS,
        DeploymentStatus.UPDATING: Phase.IN_PROGRESS,
        DeploymentStatus.RUNNING: Phase.READY,
        DeploymentStatus.STOPPED: Phase.STOPPED,
        DeploymentStatus.DELETING: Phase.DELETING,
        DeploymentStatus.FAILED: Phase.FAILED,
    },
)
BLOCK_KEYS = HTTP_BLOCK_KEYS | {
    "url", "api_key", "workspace", "region", "wait_timeout", "poll_interval", "provision_seconds",
}  # fmt: skip
KINDS: Mapping[str, KindSpec] = {
    KIND: KindSpec(
        KIND,
        force_new=frozenset(
            {"model_name", "plan", "deploy_spec", "billing_method", "enable_thinking", "max_context_length"}
            | {"suffix", "name"}
        ),
        read_only=frozenset({"deployed_model", "status", "ready_capacity", "message"}),
        asynchronous=True,
        # seed 002: `name` is a request parameter ("the display name in the console") and is not
        # among the response parameters, so it is compared with the value last applied
        input_only=frozenset({"name"}),
        read_back=frozenset(FIELDS) - {"name"},
        lifecycle=LIFECYCLE,
        # seed 002 returns no name: a deployment is known by its model and its suffix
        identity=("model_name", "suffix"),
        create_defaults=lambda seed: {"suffix": default_suffix(seed)},
    )
}
_SUFFIX = re.compile(r"[0-9a-f]{8}(?:-(.+))?")


# -- the pure half ----------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind != KIND:
        raise ValueError(f"modelstudio has no kind {kind!r}; kinds: {KIND}")


def _desired(kind: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    _check_kind(kind)
    unknown = sorted(set(attrs) - set(FIELDS))
    if unknown:
        allowed = ", ".join(FIELDS)
        raise UsageError(f"modelstudio deployment: unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
    out = {f: attrs[f] for f in FIELDS if f in attrs and attrs[f] is not None}
    if "ptu_capacity" in out:
        ptu = out["ptu_capacity"]
        extra = sorted(set(ptu) - set(PTU_KEYS)) if isinstance(ptu, Mapping) else ["(not a mapping)"]
        if extra:
            allowed = ", ".join(PTU_KEYS)
            message = f"unknown field(s) {', '.join(extra)}; allowed: {allowed}"
            raise UsageError(f"modelstudio deployment ptu_capacity: {message}")
        out["ptu_capacity"] = {k: ptu[k] for k in PTU_KEYS if ptu.get(k) is not None}
    if out.get("plan", "mu") != "mu" and out.get("billing_method", "POST_PAY") != "POST_PAY":
        raise UsageError(
            "modelstudio deployment: billing_method can be chosen for plan mu only; others are POST_PAY"
        )
    return out


def default_suffix(seed: str) -> str:
    """The suffix a deployment gets when the stack sets none: ``rc`` and 6 hex digits of ``seed``.

    Seed 002 allows 8 characters; the leading ``rc`` keeps it apart from the
    8 hex digits the platform puts before it in ``deployed_model``.
    """
    return "rc" + hashlib.sha256(seed.encode()).hexdigest()[:6]


def identity(model_name: str, suffix: str | None) -> str | None:
    """``model_name/suffix``: how :attr:`KindSpec.identity` names a deployment (None without a suffix)."""
    return f"{model_name}/{suffix}" if suffix else None


def suffix_of(deployed_model: str, model_name: str) -> str | None:
    """The suffix inside ``<model>-<8 hex>-<suffix>`` (or the 1.x SDK's ``<model>_<suffix>``)."""
    if not deployed_model.startswith(model_name) or deployed_model[
        len(model_name) : len(model_name) + 1
    ] not in (
        "-",
        "_",
    ):
        return None
    rest = deployed_model[len(model_name) + 1 :]
    match = _SUFFIX.fullmatch(rest)
    return match.group(1) if match else rest or None


def _normalise(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A platform deployment as comparable attributes (see the module docstring)."""
    plain = ("model_name", "name", "plan", "capacity", "enable_thinking", "max_context_length", *LIMITS)
    out: dict[str, Any] = {key: obj[key] for key in plain if key in obj}
    for key in LIMITS:  # seed 002 types rpm_limit as String in the response (Number in the request)
        if isinstance(out.get(key), str) and out[key].strip().isdigit():
            out[key] = int(out[key])
    if obj.get("model_unit_spec") is not None:
        out["deploy_spec"] = obj["model_unit_spec"]
    charge = obj.get("charge_type")
    if isinstance(charge, str):
        out["billing_method"] = BILLING_METHODS.get(charge.lower(), charge)
    ptu = obj.get("ptu_capacity")
    if isinstance(ptu, Mapping):
        out["ptu_capacity"] = {key: ptu[key] for key in PTU_KEYS if key in ptu}
    deployed = str(obj["deployed_model"])
    out["suffix"] = suffix_of(deployed, str(obj.get("model_name", "")))
    out["deployed_model"] = deployed
    for key in ("status", "ready_capacity", "message"):
        if obj.get(key) is not None:
            out[key] = obj[key]
    return out


def _live(obj: Mapping[str, Any]) -> Live:
    status, attributes = obj.get("status"), _normalise(obj)
    return Live(
        id=str(obj["deployed_model"]),
        attributes=attributes,
        status=status if isinstance(status, str) else None,
        name=identity(str(attributes.get("model_name", "")), attributes.get("suffix")),
    )


def _create_body(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The create call; ``billing_method`` goes only with plan ``mu`` (which refuses a create without it)."""
    body = {f: desired[f] for f in FIELDS if f in desired}
    if body.get("plan") == "mu":
        body.setdefault("billing_method", "POST_PAY")
    else:
        body.pop("billing_method", None)  # other plans are post-paid; the attribute is compared, not sent
    return _ensure_known(body)


def _ensure_known(body: dict[str, Any]) -> dict[str, Any]:
    def unknown(value: Any) -> bool:
        if isinstance(value, dict):
            return any(unknown(v) for v in value.values())
        return value is UNKNOWN

    if unknown(body):
        raise ValueError(
            "modelstudio deployment: a value is still unknown; resolve references before sending"
        )
    return body


def modelstudio_error(response: httpx.Response) -> tuple[str | None, str]:
    """Model Studio's envelope: ``{"request_id", "code", "message"}``."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text.strip()[:500] or response.reason_phrase
    if not isinstance(body, dict):
        return None, str(body)[:500]
    code, message = body.get("code"), body.get("message")
    return (str(code) if code else None), str(
        message or response.reason_phrase or f"HTTP {response.status_code}"
    )


# -- the I/O half -----------------------------------------------------------------------

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class ModelStudioProvider:
    """The :class:`~reconciler.providers.base.Provider` for Model Studio deployments.

    ``wait_timeout`` caps every :meth:`wait`; polls back off from 0.2s up to
    ``poll_interval``. ``region`` is kept for cost estimates. ``clock``/``sleep``
    are seams for tests.
    """

    platform: str = PLATFORM
    kinds: Mapping[str, KindSpec] = KINDS

    def __init__(
        self,
        client: ApiClient,
        *,
        region: str | None = None,
        wait_timeout: float = 1800.0,
        poll_interval: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.client = client
        self.region = region
        self.wait_timeout = float(wait_timeout)
        self.poll_interval = float(poll_interval)
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_block(
        cls, block: Mapping[str, Any], *, state_dir: Path, environ: Mapping[str, str] = os.environ
    ) -> ModelStudioProvider:
        """Build from a stack's ``providers.modelstudio`` block; raises UsageError for a bad block."""
        unknown = sorted(set(block) - BLOCK_KEYS)
        if unknown:
            allowed = ", ".join(sorted(BLOCK_KEYS))
            raise UsageError(
                f"providers.modelstudio: unknown key(s) {', '.join(unknown)}; allowed: {allowed}"
            )
        url = block.get("url")
        if not isinstance(url, str) or not (url == "embedded" or url.startswith(("http://", "https://"))):
            raise UsageError(
                "providers.modelstudio.url must be `embedded` or an http(s) base URL ending in /api/v1"
            )
        for key in ("api_key", "workspace", "region"):
            if block.get(key) is not None and (not isinstance(block[key], str) or not block[key]):
                raise UsageError(f"providers.modelstudio.{key} must be a non-empty string")
        api_key: str | None = block.get("api_key") or environ.get(API_KEY_ENV) or None
        knobs = http_settings(block, PLATFORM)
        wait, poll = _number(block, "wait_timeout", 1800.0), _number(block, "poll_interval", 1.0)
        transport: httpx.AsyncBaseTransport | None = None
        if url == "embedded":
            from reconciler.emulators.modelstudio import ModelStudioSettings, build_modelstudio_app

            api_key = block.get("api_key") or "emulator-key"
            data_file = state_dir / "emulator" / "modelstudio.json"
            data_file.parent.mkdir(parents=True, exist_ok=True)
            seconds = _number(block, "provision_seconds", 1.0, allow_zero=True)
            app = build_modelstudio_app(
                ModelStudioSettings(api_key=api_key, provision_seconds=seconds), data_file
            )
            transport, url = httpx.ASGITransport(app=app), EMBEDDED_BASE_URL
        elif "provision_seconds" in block:
            raise UsageError("providers.modelstudio.provision_seconds applies only to `url: embedded`")
        if not api_key:
            raise UsageError(f"providers.modelstudio.api_key is required (or set ${API_KEY_ENV})")
        headers = {"Authorization": f"Bearer {api_key}"}
        if block.get("workspace"):
            headers["X-DashScope-WorkSpace"] = block["workspace"]
        http = httpx.AsyncClient(
            base_url=url.rstrip("/"), transport=transport, headers=headers, verify=tls_context()
        )
        client = ApiClient(
            http, platform=PLATFORM, error_parser=modelstudio_error, timeout=knobs.timeout,
            secrets=(api_key,), pacing=knobs.pacing(), retry=knobs.retry,
        )  # fmt: skip
        return cls(client, region=block.get("region"), wait_timeout=wait, poll_interval=poll)

    # -- pure ---------------------------------------------------------------------------

    def desired(self, kind: str, attrs: Mapping[str, Any], refs: Mapping[str, RefValue]) -> dict[str, Any]:
        return _desired(kind, attrs)

    def scope_of(self, kind: str, attributes: Mapping[str, Any]) -> dict[str, str]:
        _check_kind(kind)
        return {}

    def settled(self, kind: str, id: str, live: Live | None, until: Until) -> bool:
        """Whether ``live`` (None: absent) reached ``until``; ProviderError when it never will."""
        _check_kind(kind)
        return _settled(id, live, until)

    # -- reads --------------------------------------------------------------------------

    async def list(self, kind: str, scope: Mapping[str, str]) -> builtins.list[Live]:
        _check_kind(kind)
        return [_live(obj) for obj in await self._list_raw()]

    async def read(self, kind: str, id: str, scope: Mapping[str, str]) -> Live | None:
        _check_kind(kind)
        try:
            return await self._one("GET", _path(id), "GetDeployment")
        except ProviderError as exc:
            if _is_missing(exc):
                return None
            raise

    async def find(
        self, kind: str, name: str, scope: Mapping[str, str], *, token: str | None = None
    ) -> Live | None:
        """The deployment whose identity (``model_name/suffix``) is ``name``.

        Seed 002 returns no ``name``, and the platform refuses a second
        deployment of a model with the same suffix, so the pair finds the one
        object this stack made; a DELETING one only when nothing else matches.
        """
        _check_kind(kind)
        found = [live for live in await self.list(kind, scope) if live.name == name]
        alive = [live for live in found if not LIFECYCLE.phase(kind, live.id, live.status).absent]
        chosen = alive or found
        return chosen[0] if chosen else None

    # -- writes -------------------------------------------------------------------------

    async def create(self, kind: str, desired: Mapping[str, Any], *, token: str | None = None) -> Live:
        _check_kind(kind)
        return await self._one("POST", f"/{COLLECTION}", "CreateDeployment", json=_create_body(desired))

    async def update(self, kind: str, live: Live, desired: Mapping[str, Any]) -> Live:
        """``/update`` for changed limits, then ``/scale`` for a changed capacity (waiting in between)."""
        _check_kind(kind)
        have = live.attributes
        calls: builtins.list[tuple[str, dict[str, Any], str]] = []
        limits = {key: desired[key] for key in LIMITS if key in desired and desired[key] != have.get(key)}
        if limits:
            calls.append(("update", limits, "UpdateDeployment"))
        if have.get("plan") == "ptu":
            want = desired.get("ptu_capacity")
            held = have.get("ptu_capacity")
            current: Mapping[str, Any] = held if isinstance(held, Mapping) else {}
            if isinstance(want, Mapping) and any(current.get(k) != v for k, v in want.items()):
                calls.append(("scale", {"ptu_capacity": {**current, **want}}, "ScaleDeployment"))
        elif "capacity" in desired and desired["capacity"] != have.get("capacity"):
            calls.append(
                ("scale", {"deployed_model": live.id, "capacity": desired["capacity"]}, "ScaleDeployment")
            )
        if not calls:
            return await self.read(kind, live.id, {}) or live
        fresh = live
        for step, (action, body, operation) in enumerate(calls):
            if step:
                await self.wait(kind, live.id, {}, "ready", self.wait_timeout)
            path, sent = f"{_path(live.id)}/{action}", _ensure_known(body)
            # not replayable: once a change landed the platform refuses a second one while UPDATING
            fresh = await self._one("PUT", path, operation, json=sent, idempotent=False)
        return fresh

    async def delete(self, kind: str, id: str, scope: Mapping[str, str]) -> None:
        _check_kind(kind)
        try:
            await self._call("DELETE", _path(id), "DeleteDeployment")
        except ProviderError as exc:
            if not _is_missing(exc):
                raise

    async def wait(
        self, kind: str, id: str, scope: Mapping[str, str], until: Until, timeout: float
    ) -> Live | None:
        """Poll Get with backoff; a retryable read error only delays the verdict until the deadline."""
        _check_kind(kind)
        return await poll_until(
            lambda: self.read(kind, id, scope),
            lambda live: _settled(id, live, until),
            until=until,
            limit=min(timeout, self.wait_timeout),
            clock=self._clock,
            sleep=self._sleep,
            first_delay=0.2,
            poll_interval=self.poll_interval,
            what=f"deployment {id}",
            platform=PLATFORM,
            operation="WaitDeployment",
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- helpers ------------------------------------------------------------------------

    async def _call(self, method: str, path: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One call's ``output``; a 200 that carries a ``code`` is an error too (as the SDK reads it)."""
        answer = await self.client.request(method, path, operation=operation, **kwargs)
        if not isinstance(answer, dict):
            raise _invalid(operation, "expected a JSON object")
        if answer.get("code"):
            message = str(answer.get("message") or answer["code"])
            raise ProviderError(PLATFORM, message, code=str(answer["code"]), status=200, operation=operation)
        output = answer.get("output")
        if not isinstance(output, dict):
            raise _invalid(operation, "expected an `output` object")
        return output

    async def _one(self, method: str, path: str, operation: str, **kwargs: Any) -> Live:
        """One call answering a deployment, as a Live."""
        output = await self._call(method, path, operation, **kwargs)
        if not output.get("deployed_model"):
            raise _invalid(operation, "the deployment carries no deployed_model")
        return _live(output)

    async def _list_raw(self) -> builtins.list[dict[str, Any]]:
        """Every deployment: the first page, then the others concurrently."""

        async def page(number: int) -> tuple[builtins.list[dict[str, Any]], int, int]:
            params = {"page_no": number, "page_size": PAGE_SIZE}
            output = await self._call("GET", f"/{COLLECTION}", "ListDeployments", params=params)
            items = output.get("deployments")
            if not isinstance(items, builtins.list):
                raise _invalid("ListDeployments", "expected output{total, deployments}")
            found = [obj for obj in items if isinstance(obj, dict) and obj.get("deployed_model")]
            total, size = output.get("total"), output.get("page_size")
            return (
                found,
                total if isinstance(total, int) else len(found),
                size if isinstance(size, int) and size > 0 else PAGE_SIZE,  # a server capping page_size
            )

        first, total, size = await page(1)
        pages = range(2, -(-total // min(size, PAGE_SIZE)) + 1) if first else range(0)
        rest = await asyncio.gather(*map(page, pages))
        unique: dict[str, dict[str, Any]] = {}
        for items in (first, *(found for found, _, _ in rest)):
            for obj in items:
                unique.setdefault(str(obj["deployed_model"]), obj)  # objects may shift between pages
        return builtins.list(unique.values())

    def access_check(self) -> AccessCheck:
        """The preflight (:mod:`reconciler.preflight`): list one deployment (refused: ``InvalidApiKey``)."""
        path, params = f"/{COLLECTION}", {"page_no": 1, "page_size": 1}

        async def call(attempts: int, timeout: float) -> None:
            client = self.client
            self.client = limited(client, attempts, timeout)
            try:
                await self._call("GET", path, "ListDeployments", params=params)
            finally:
                self.client = client

        url = str(self.client.http.build_request("GET", path, params=params).url)
        return AccessCheck("API key", url, call, refused_codes=frozenset({"InvalidApiKey"}))


def _path(id: str) -> str:
    return f"/{COLLECTION}/{quote(id, safe='')}"


def _settled(id: str, live: Live | None, until: Until) -> bool:
    """True when ``live`` has reached ``until``; raises when it never will."""
    phase = KINDS[KIND].phase(id, live)
    status = live.status if live is not None else None
    if phase is Phase.FAILED:
        message = str((live.attributes if live else {}).get("message") or f"deployment {id} is {status}")
        raise ProviderError(PLATFORM, message, code=str(status), operation="WaitDeployment")
    if until == "gone":
        return phase is Phase.GONE
    if phase.absent:
        message = f"deployment {id} is {status or 'gone'} while waiting for it to become ready"
        raise ProviderError(PLATFORM, message, code="not_found", operation="WaitDeployment")
    return status is None or phase in (Phase.READY, Phase.STOPPED)


def _is_missing(exc: ProviderError) -> bool:
    return exc.status == 404 or (exc.code or "") in MISSING_CODES


def _invalid(operation: str, message: str) -> ProviderError:
    return ProviderError(
        PLATFORM, f"unexpected answer: {message}", code="invalid_response", operation=operation
    )


def _number(block: Mapping[str, Any], key: str, default: float, *, allow_zero: bool = False) -> float:
    value = block.get(key, default)
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not number or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise UsageError(f"providers.modelstudio.{key} must be a {kind} number, not {value!r}")
    return float(value)
