"""Injected faults: the emulated clouds misbehave the way real ones do, reproducibly.

:class:`FaultInjector` is an ASGI middleware around the whole emulator app
(every platform). For each HTTP request it consults ``random.Random(seed)``
exactly once, in the order requests arrive, and from that one draw decides
whether the request gets a fault, which kind, and the kind's details. Same
seed and same request order: same faults.

Kinds (``FaultSettings.kinds``; ``fault_rate`` is the chance that a request
gets one, chosen uniformly among the kinds that apply to it):

==========  ==========================================================================
kind        what the client sees
==========  ==========================================================================
error       5xx in the platform's own envelope, the request not carried out
timeout     the platform's timeout answer, the request not carried out
throttle    429 with ``Retry-After: 1``, the request not carried out
drop        the connection closes without an answer, the request not carried out
lost        the request IS carried out (and saved), then the connection closes
            without an answer: the nastiest case. Only mutating requests
            (POST, PUT, PATCH, DELETE) get it
slow        the answer comes, up to ``slow_ms`` (default 2 s) late
==========  ==========================================================================

``latency_ms`` is added to every request, faulted or not.

Envelopes, by path prefix (anything else is answered as Fabric, like the app's 404):

============  =========================================  ======================================
platform      error / timeout                            throttle (429)
============  =========================================  ======================================
Fabric        500/502/503/504 ``common.00000500``        ``APIG.0308`` "The throttling
``/v1/``      "internal error"; 408 ``common.00000408``  threshold has been reached: ..."
              "timeout exception occurred"
Model Studio  500/502/503/504 ``InternalError``;         ``Throttling.RateQuota``
``/api/v1/``  408 ``RequestTimeOut``
ZStack        503 ``SYS.1000`` (internal); 503           503 is ZStack's only error status,
``/zstack/``  ``SYS.1001`` (timeout), as its REST        but a throttle is a proxy's 429 with
              server answers every failed API            a ``SYS.1000`` envelope
============  =========================================  ======================================

A dropped connection: the middleware starts a response that promises a body
(``content-length: 1``) and raises :class:`DroppedConnection`. A server
(uvicorn) then closes the socket, so the client reads a truncated answer; an
in-process client (``httpx.ASGITransport``, Starlette's ``TestClient``) gets
the exception itself, which is an ``httpx.RemoteProtocolError``, so both see
a transport error, never an HTTP status. :func:`quiet_dropped_connections`
keeps the server's log free of their tracebacks.

``fail_provisioning`` (name globs) is not a request fault: it makes matching
objects end their provisioning failed; see
:func:`reconciler.emulators.lifecycle.provisioning_fails`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KINDS: tuple[str, ...] = ("error", "timeout", "throttle", "drop", "lost", "slow")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ERROR_STATUSES = (500, 502, 503, 504)
THROTTLE_RETRY_AFTER = 1

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaultSettings:
    """How often and how the emulators misbehave; the default misbehaves never.

    ``fault_rate``: probability in [0, 1] that a request gets one fault.
    ``latency_ms``: added to every request. ``seed``: makes the faults
    reproducible (None: a fresh sequence each run). ``kinds``: the faults to
    choose from (see the module docstring). ``fail_provisioning``: name globs;
    matching objects end their provisioning in their platform's failed status.
    ``slow_ms``: the most a ``slow`` fault delays an answer.
    """

    fault_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int | None = None
    kinds: tuple[str, ...] = KINDS
    fail_provisioning: tuple[str, ...] = ()
    slow_ms: float = 2000.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must lie between 0 and 1, not {self.fault_rate!r}")
        if self.latency_ms < 0 or self.slow_ms < 0:
            raise ValueError("latency_ms and slow_ms must not be negative")
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be some of {', '.join(KINDS)}; got {', '.join(self.kinds)}")
        if isinstance(self.fail_provisioning, str):
            raise ValueError("fail_provisioning is a tuple of globs, not one string")

    @property
    def active(self) -> bool:
        """Whether any request is touched at all."""
        return self.fault_rate > 0 or self.latency_ms > 0


@dataclass(frozen=True)
class Fault:
    """One decided fault: its kind, the status of an answered one, the extra delay of a slow one."""

    kind: str
    status: int | None = None
    delay: float = 0.0


def decide(draw: float, settings: FaultSettings, *, mutating: bool, platform: str = "fabric") -> Fault | None:
    """The fault for a request whose one random draw is ``draw`` (in [0, 1)); None: no fault.

    The draw picks the kind and, from the rest of its share, the kind's details,
    so one draw per request decides everything.
    """
    if draw >= settings.fault_rate:
        return None
    kinds = [kind for kind in settings.kinds if kind != "lost" or mutating]
    if not kinds:
        return None
    position = draw / settings.fault_rate * len(kinds)
    index = min(int(position), len(kinds) - 1)
    detail = position - index  # uniform in [0, 1), independent of the kind
    kind = kinds[index]
    if kind == "error":
        statuses = (503,) if platform == "zstack" else ERROR_STATUSES
        return Fault(kind, status=statuses[min(int(detail * len(statuses)), len(statuses) - 1)])
    if kind == "timeout":
        return Fault(kind, status=503 if platform == "zstack" else 408)
    if kind == "throttle":
        return Fault(kind, status=429)
    if kind == "slow":
        return Fault(kind, delay=detail * settings.slow_ms / 1000.0)
    return Fault(kind)


def platform_of(path: str) -> str:
    """Which platform a path belongs to: ``fabric``, ``modelstudio`` or ``zstack``."""
    if path.startswith("/api/v1/") or path == "/api/v1":
        return "modelstudio"
    if path.startswith("/zstack/") or path == "/zstack":
        return "zstack"
    return "fabric"


def envelope(platform: str, fault: Fault) -> dict[str, Any]:
    """The body a platform answers ``fault`` with (an error, timeout or throttle fault)."""
    if platform == "modelstudio":
        code, message = {
            "error": ("InternalError", "An internal error has occured, please try again later."),
            "timeout": ("RequestTimeOut", "Request timed out, please try again later."),
            "throttle": ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
        }[fault.kind]
        return {"request_id": str(uuid.uuid4()), "code": code, "message": message}
    if platform == "zstack":
        code, description, details = {
            "error": ("SYS.1000", "An internal error happened in system", "internal error"),
            "timeout": ("SYS.1001", "A message or a operation timeout", "the operation timed out"),
            "throttle": ("SYS.1000", "An internal error happened in system", "too many requests"),
        }[fault.kind]
        return {"error": {"code": code, "description": description, "details": details}}
    code, message = {
        "error": ("common.00000500", "internal error"),
        "timeout": ("common.00000408", "timeout exception occurred"),
        "throttle": (
            "APIG.0308",
            "The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 second",
        ),
    }[fault.kind]
    return {"error_code": code, "error_msg": message, "solution_msg": "Try again later."}


class DroppedConnection(httpx.RemoteProtocolError):
    """The emulator hung up without answering (an injected ``drop`` or ``lost`` fault)."""


Sleep = Callable[[float], Awaitable[None]]


class FaultInjector:
    """ASGI middleware injecting :class:`FaultSettings` faults into every HTTP request of ``app``."""

    def __init__(self, app: ASGIApp, settings: FaultSettings, *, sleep: Sleep = asyncio.sleep) -> None:
        self.app = app
        self.settings = settings
        self._random = random.Random(settings.seed)
        self._sleep = sleep

    def next_fault(self, method: str, path: str) -> Fault | None:
        """Consult the random source once for this request and decide its fault."""
        draw = self._random.random()
        return decide(draw, self.settings, mutating=method.upper() in MUTATING, platform=platform_of(path))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.settings.active:
            await self.app(scope, receive, send)
            return
        method, path = str(scope["method"]), str(scope["path"])
        fault = self.next_fault(method, path) if self.settings.fault_rate > 0 else None
        delay = self.settings.latency_ms / 1000.0 + (fault.delay if fault is not None else 0.0)
        if delay > 0:
            await self._sleep(delay)
        if fault is None or fault.kind == "slow":
            await self.app(scope, receive, send)
            return
        _log.info("injected fault %s on %s %s", fault.kind, method, path)
        if fault.status is not None:
            await _answer(send, fault, platform_of(path))
            return
        if fault.kind == "lost":
            await self.app(scope, receive, _discard)
        await _hang_up(send, f"emulator dropped the connection ({fault.kind} fault) on {method} {path}")


async def _answer(send: Send, fault: Fault, platform: str) -> None:
    assert fault.status is not None
    body = json.dumps(envelope(platform, fault)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if fault.kind == "throttle":
        headers.append((b"retry-after", str(THROTTLE_RETRY_AFTER).encode()))
    await send({"type": "http.response.start", "status": fault.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _discard(message: Message) -> None:
    """The answer of a ``lost`` request goes nowhere."""


async def _hang_up(send: Send, reason: str) -> None:
    """Start an answer that promises a body, then fail: a server closes the socket mid-answer."""
    await send({"type": "http.response.start", "status": 502, "headers": [(b"content-length", b"1")]})
    raise DroppedConnection(reason)


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, DroppedConnection)


_DROP_FILTER = _DropFilter()


def quiet_dropped_connections(logger: str = "uvicorn.error") -> None:
    """Keep injected dropped connections out of a server's error log (idempotent)."""
    target = logging.getLogger(logger)
    if _DROP_FILTER not in target.filters:
        target.addFilter(_DROP_FILTER)
