"""ZStack's REST conventions over one :class:`~reconciler.providers.http.ApiClient`.

* **Session**: ``PUT /accounts/login`` with ``{"logInByAccount": {accountName,
  password: <SHA-512 hex>}}`` on the first call; every call then carries
  ``Authorization: OAuth <session uuid>``. A call answered ``ID.1001`` (the
  session expired or is unknown, at once or as its job's result: either way
  the API did not run) logs in again, once for all calls that saw the same
  stale session, and is sent again, once.
* **Jobs**: an asynchronous API answers 202 ``{"location": .../api-jobs/{uuid}}``;
  the job is polled on our own base URL (the location may name a host only
  the management node can reach) with backoff until it answers 200 (its
  result, possibly empty) or 503 (its ``{"error"}``, raised as ProviderError
  with the ZStack code), for at most ``job_timeout`` seconds.
* **Errors**: ZStack answers every API failure with 503. :func:`zstack_retry_on`
  tells :class:`ApiClient` which are transient: no ZStack code (a proxy's
  answer) or one of :data:`TRANSIENT_CODES` (internal error, timeout, not
  ready, undeliverable, management node unavailable); a validation or
  authentication failure is not. DeployModelService is sent as not replayable
  (a PUT that creates): after a lost answer it is never sent again blindly.

Telling 202 from 200 needs the HTTP status, which :meth:`ApiClient.request`
does not return; an httpx response hook records it for the calling task.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.errors import ProviderError
from reconciler.providers.http import RETRYABLE_STATUSES, ApiClient, HttpSettings, tls_context

PLATFORM = "zstack"
SESSION_EXPIRED = "ID.1001"
TRANSIENT_CODES = frozenset({"SYS.1000", "SYS.1001", "SYS.1010", "SYS.1011", "SYS.1012"})

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_statuses: contextvars.ContextVar[builtins.list[int] | None] = contextvars.ContextVar(
    "zstack_statuses", default=None
)


def zstack_error(response: httpx.Response) -> tuple[str | None, str]:
    """ZStack's ``{"error": {code, description, details}}``; the REST layer's plain text otherwise."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text.strip()[:500] or response.reason_phrase
    parsed = error_of(body)
    return parsed if parsed is not None else (None, str(body)[:500] or response.reason_phrase)


def error_of(body: Any) -> tuple[str | None, str] | None:
    """``(code, "description: details")`` of a body carrying ``{"error": {...}}``, else None."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    parts = [str(error[key]) for key in ("description", "details") if error.get(key)]
    return (str(code) if code else None), ": ".join(parts) or "no details given"


def zstack_retry_on(response: httpx.Response) -> bool:
    """Whether an error answer is transient: a retryable status without a ZStack code, or a transient code."""
    if response.status_code not in RETRYABLE_STATUSES:
        return False
    try:
        parsed = error_of(response.json())
    except ValueError:
        return True
    return parsed is None or parsed[0] is None or parsed[0] in TRANSIENT_CODES


def zstack_client(
    base_url: str,
    *,
    password: str,
    settings: HttpSettings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    event_hooks: Mapping[str, builtins.list[Callable[..., Any]]] | None = None,
    sleep: Sleep = asyncio.sleep,
) -> ApiClient:
    """The :class:`ApiClient` for one ZStack management node (``base_url`` ends in ``/zstack/v1``).

    The password and its digest are scrubbed from every message.
    """
    knobs = settings if settings is not None else HttpSettings()
    http = httpx.AsyncClient(
        base_url=base_url, transport=transport, event_hooks=dict(event_hooks or {}), verify=tls_context()
    )
    return ApiClient(
        http, platform=PLATFORM, error_parser=zstack_error, retry_on=zstack_retry_on, timeout=knobs.timeout,
        secrets=(password, password_digest(password)), pacing=knobs.pacing(sleep=sleep), retry=knobs.retry,
        sleep=sleep,
    )  # fmt: skip


def password_digest(password: str) -> str:
    """What ZStack's login takes instead of the password: its SHA-512, as hex."""
    return hashlib.sha512(password.encode("utf-8")).hexdigest()


def invalid(operation: str, message: str) -> ProviderError:
    return ProviderError(
        PLATFORM, f"unexpected answer: {message}", code="invalid_response", operation=operation
    )


async def _remember_status(response: httpx.Response) -> None:
    """An httpx response hook: the HTTP status of a call, for the task that made it."""
    sink = _statuses.get()
    if sink is not None:
        sink.append(response.status_code)


class ZStackSession:
    """Calls to one ZStack management node as one account. ``logins`` counts the logins made.

    Only the password's digest is kept. ``clock``/``sleep`` are seams for tests.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        account: str,
        password: str,
        job_timeout: float = 1800.0,
        poll_interval: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.api = api
        self.account = account
        self.job_timeout = float(job_timeout)
        self.poll_interval = float(poll_interval)
        self.logins = 0
        self._digest = password_digest(password)
        self._clock = clock
        self._sleep = sleep
        self._session: str | None = None
        self._login_lock = asyncio.Lock()
        hooks = api.http.event_hooks
        if _remember_status not in hooks["response"]:
            hooks["response"].append(_remember_status)
            api.http.event_hooks = hooks

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        operation: str,
        asynchronous: bool = False,
        idempotent: bool | None = None,
    ) -> Any:
        """One API call in the session (a job followed to its result when ``asynchronous``).

        ``idempotent``: as for :meth:`ApiClient.request` (False for a call that creates).
        """
        for attempt in (1, 2):
            session = await self._ensure_session()
            try:
                status, answer = await self._request(
                    method, path, params=params, json=json, operation=operation, idempotent=idempotent
                )
                return await self._job_result(status, answer, operation) if asynchronous else answer
            except ProviderError as exc:
                if exc.code != SESSION_EXPIRED or attempt == 2:
                    raise
            await self._login(stale=session)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.api.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        operation: str,
        idempotent: bool | None = None,
    ) -> tuple[int | None, Any]:
        """``(HTTP status of the last attempt, decoded body)``."""
        sink: builtins.list[int] = []
        token = _statuses.set(sink)
        try:
            answer = await self.api.request(
                method, path, params=params, json=json, operation=operation, idempotent=idempotent
            )
        finally:
            _statuses.reset(token)
        return (sink[-1] if sink else None), answer

    async def _job_result(self, status: int | None, answer: Any, operation: str) -> Any:
        """Follow a 202's job to its answer; anything else was answered synchronously."""
        if status != 202:
            return answer
        location = answer.get("location") if isinstance(answer, dict) else None
        if not isinstance(location, str) or not location.rstrip("/"):
            raise invalid(operation, "202 without a job location")
        job = location.rstrip("/").rsplit("/", 1)[-1]
        path = f"/api-jobs/{quote(job, safe='')}"
        deadline = self._clock() + self.job_timeout
        delay = min(0.05, self.poll_interval)
        while True:
            try:  # ApiClient retries a transient failure of the poll itself a few times
                status, answer = await self._request("GET", path, operation=operation)
            except ProviderError as exc:
                if exc.code is not None or not exc.retryable:  # the job's own failure, or it expired
                    raise
            else:
                if status != 202:
                    return answer
            now = self._clock()
            if now >= deadline:
                message = (
                    f"job {job} did not finish within {self.job_timeout:g}s; read the object for the outcome"
                )
                raise ProviderError(PLATFORM, message, code="timeout", operation=operation)
            await self._sleep(min(delay, deadline - now))
            delay = min(delay * 2, self.poll_interval)

    async def _ensure_session(self) -> str:
        if self._session is None:
            await self._login(stale=None)
        assert self._session is not None
        return self._session

    async def _login(self, *, stale: str | None) -> None:
        """Log in unless another call already replaced the ``stale`` session."""
        async with self._login_lock:
            if self._session is not None and self._session != stale:
                return
            body = {"logInByAccount": {"accountName": self.account, "password": self._digest}}
            _, answer = await self._request("PUT", "/accounts/login", json=body, operation="LogInByAccount")
            inventory = answer.get("inventory") if isinstance(answer, dict) else None
            session = inventory.get("uuid") if isinstance(inventory, dict) else None
            if not isinstance(session, str) or not session:
                raise invalid("LogInByAccount", "the answer carries no session uuid")
            self._session = session
            self.api.http.headers["Authorization"] = f"OAuth {session}"
            self.logins += 1
