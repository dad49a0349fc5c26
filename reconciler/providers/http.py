"""The one place where HTTP failures become :class:`~reconciler.errors.ProviderError`.

:class:`ApiClient` wraps an :class:`httpx.AsyncClient` (which carries the base
URL, the auth headers and the transport) and adds what every provider needs:

* pacing (:class:`~reconciler.providers.pacing.Pacing`, shared by every client
  of one platform): a bound on calls in flight and, optionally, on calls per
  second. A call slot is held for one HTTP exchange only, never across a
  backoff sleep or a provider's lifecycle poll;
* a per-call timeout, enforced both by httpx and by the event loop, so that a
  transport that ignores httpx timeouts (``httpx.ASGITransport``) is bounded too;
* error mapping: a transport failure becomes :class:`TransportError`
  (``retryable=True``); an HTTP error status becomes :class:`ProviderError`
  with the platform's own code and message, taken from the body by the
  platform's ``error_parser``; ``retryable`` is the platform's ``retry_on``
  verdict (by default: 408, 429, 500, 502, 503, 504);
* retries of transient failures, with exponential backoff and full jitter,
  never sooner than the server's ``Retry-After`` (:class:`~reconciler.providers.pacing.RetryPolicy`);
* :meth:`ApiClient.stream_lines` for a probe whose answer is streamed (a health
  check's invocation): one attempt in one call slot, one deadline for the
  whole answer, errors mapped as above.

What is retried here, and what is left to the caller
----------------------------------------------------

A call is *replayable* when sending it twice does no harm: GET, HEAD, PUT,
DELETE and OPTIONS are, POST is not, and ``request(..., idempotent=...)``
overrides that per call (a POST that only queries may say ``True``; a PUT that
appends a version may say ``False``). A replayable call is retried on every
transient failure. A non-replayable one is retried only when the platform
certainly did nothing: the connection was never made (``httpx.ConnectError``,
``ConnectTimeout``, ``PoolTimeout``), or the answer is one of
``RetryPolicy.refused_statuses`` (429: throttled at the door). Any other
transient failure of a non-replayable call is raised at once, retryable, and
its outcome is unknown: the caller must read the platform (find by name)
before it sends a second create. That is the applier's job, not this module's.

``retry_on`` decides per platform which error answers are transient. ZStack,
for instance, answers 503 for ordinary failures of synchronous APIs with an
``{"error": {"code": ...}}`` body; its provider passes a predicate that retries
a 503 only when the body carries no code or an internal ``SYS.xxxx`` one.

Error messages never contain request headers; secret values handed to the
client are also scrubbed from every message.

Every provider block accepts the same four knobs, read by :func:`http_settings`:
``timeout`` (seconds per attempt), ``max_retries`` (attempts after the first),
``max_requests_per_second`` (0 or absent: unlimited) and ``max_in_flight``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler import crashpoints
from reconciler.errors import ProviderError, TransportError, UsageError
from reconciler.providers.pacing import Clock, Pacing, RetryPolicy, Sleep, retry_after

ErrorParser = Callable[[httpx.Response], tuple[str | None, str]]
"""Reads an error response: ``(platform code or None, platform message)``."""

RetryOn = Callable[[httpx.Response], bool]
"""Whether an error response is transient (worth sending again)."""

RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
REPLAYABLE_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
NEVER_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
"""Transport failures that happen before a single byte of the request left."""

HTTP_BLOCK_KEYS: frozenset[str] = frozenset(
    {"timeout", "max_retries", "max_requests_per_second", "max_in_flight"}
)
"""Keys of a provider block that :func:`http_settings` reads; every provider accepts them."""

_MAX_MESSAGE = 500
_log = logging.getLogger(__name__)


def default_error_parser(response: httpx.Response) -> tuple[str | None, str]:
    """A body-agnostic parser: no code, the body text (or the reason phrase) as message."""
    text = response.text.strip()
    return None, text[:_MAX_MESSAGE] or response.reason_phrase or f"HTTP {response.status_code}"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings every provider's clients share (httpx's defaults, CA bundle included).

    Built once per process: httpx would build one per client, loading the CA
    bundle each time (tens of milliseconds, on every command).
    """
    return httpx.create_ssl_context()


def default_retry_on(response: httpx.Response) -> bool:
    """Transient by status alone: 408, 429, 500, 502, 503, 504."""
    return response.status_code in RETRYABLE_STATUSES


# -- the provider block's knobs ---------------------------------------------------------


@dataclass(frozen=True)
class HttpSettings:
    """How one provider talks HTTP, as its block sets it (see :func:`http_settings`).

    ``timeout``: seconds one attempt may take. ``max_retries``: attempts after
    the first (0: never retry). ``max_requests_per_second``: None: unlimited.
    ``max_in_flight``: calls open at once, across all hosts of the provider.
    """

    timeout: float = 30.0
    max_retries: int = 4
    max_requests_per_second: float | None = None
    max_in_flight: int = 10

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_retries + 1)

    def pacing(self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> Pacing:
        """A new :class:`Pacing`; build it once per provider and hand it to each of its clients."""
        return Pacing(self.max_in_flight, self.max_requests_per_second, clock=clock, sleep=sleep)


def http_settings(block: Mapping[str, Any], platform: str) -> HttpSettings:
    """The HTTP knobs of a ``providers.<platform>`` block; raises UsageError naming a bad key.

    Reads only :data:`HTTP_BLOCK_KEYS`; a provider checks the rest of its block itself.
    """
    defaults = HttpSettings()

    def number(key: str, default: float, *, positive: bool, integer: bool) -> float:
        value = block.get(key, default)
        valid = (
            not isinstance(value, bool)
            and isinstance(value, int | float)
            and math.isfinite(value)
            and (value > 0 if positive else value >= 0)
            and (not integer or float(value).is_integer())
        )
        if not valid:
            what = ("positive" if positive else "non-negative") + (" integer" if integer else " number")
            raise UsageError(f"providers.{platform}.{key} must be a {what}, not {value!r}")
        return float(value)

    rate = number("max_requests_per_second", 0, positive=False, integer=False)
    return HttpSettings(
        timeout=number("timeout", defaults.timeout, positive=True, integer=False),
        max_retries=int(number("max_retries", defaults.max_retries, positive=False, integer=True)),
        max_requests_per_second=rate or None,
        max_in_flight=int(number("max_in_flight", defaults.max_in_flight, positive=True, integer=True)),
    )


# -- the client -------------------------------------------------------------------------


class ApiClient:
    """An httpx client for one platform host, with pacing, retries and error mapping.

    ``http`` is owned by this object from now on (closed by :meth:`aclose`).
    ``secrets`` are values (tokens, keys) that must never appear in an error message.
    ``pacing`` is shared by every client of one provider; without it the client
    makes its own from ``max_in_flight`` (and ``semaphore``, kept for callers
    that share a bare semaphore). ``retry`` defaults to 5 attempts; ``retry_on``
    to :func:`default_retry_on`. ``rng``, ``sleep`` and ``wall_clock`` (epoch
    seconds, for ``Retry-After`` dates) are seams for tests.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        platform: str,
        error_parser: ErrorParser = default_error_parser,
        max_in_flight: int = 10,
        timeout: float = 30.0,
        secrets: Iterable[str] = (),
        semaphore: asyncio.Semaphore | None = None,
        pacing: Pacing | None = None,
        retry: RetryPolicy | None = None,
        retry_on: RetryOn | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Clock = time.time,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if pacing is not None and semaphore is not None:
            raise ValueError("give pacing or semaphore, not both")
        self.http = http
        self.platform = platform
        self.error_parser = error_parser
        self.timeout = float(timeout)
        self.pacing = pacing if pacing is not None else Pacing(max_in_flight, semaphore=semaphore)
        self.semaphore = self.pacing.semaphore
        self.retry = retry if retry is not None else RetryPolicy()
        self.retry_on = retry_on if retry_on is not None else default_retry_on
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._secrets = tuple(s for s in secrets if s)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        operation: str = "",
        idempotent: bool | None = None,
    ) -> Any:
        """Send one call, retrying transient failures; returns the decoded JSON body (None when empty).

        ``idempotent`` overrides whether the call may be sent again after it may
        have reached the platform (default: by method; see the module docstring).
        Raises :class:`TransportError` when no answer came, :class:`ProviderError`
        for an HTTP error status or an undecodable success body; ``retryable``
        on either says a later, separate attempt could succeed.
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        replayable = method.upper() in REPLAYABLE_METHODS if idempotent is None else idempotent
        failures = 0
        while True:
            outcome = await self._exchange(method, path, query, json, operation)
            hint: float | None = None
            if isinstance(outcome, httpx.Response):
                if not outcome.is_error:
                    return self._decode(outcome, operation)
                error = self._status_error(outcome, operation)
                repeatable = replayable or outcome.status_code in self.retry.refused_statuses
                hint = retry_after(outcome.headers.get("Retry-After"), self._wall_clock())
            else:
                error = outcome
                repeatable = replayable or isinstance(error.__cause__, NEVER_SENT)
            failures += 1
            if not (error.retryable and repeatable) or failures >= self.retry.max_attempts:
                raise error
            delay = self.retry.delay(failures, self._rng, hint)
            if delay is None:  # the server asks for a longer pause than we wait in one call
                raise error
            _log.info("%s; attempt %d of %d in %.2fs", error, failures + 1, self.retry.max_attempts, delay)
            await self._sleep(delay)

    async def stream_lines(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        operation: str = "",
        timeout: float | None = None,
    ) -> list[str]:
        """Send one call and read its streamed answer to the end; returns the lines of the body.

        The whole exchange (connecting, the status, every line of the body)
        must finish within ``timeout`` seconds (default: the client's per-call
        timeout), inside one call slot. Sent once, never retried: this is for
        probes such as a health check's invocation, where a slow or failed
        answer is the verdict. Raises :class:`TransportError` when no complete
        answer came in time, :class:`ProviderError` for an HTTP error status.
        """
        limit = self.timeout if timeout is None else float(timeout)
        if limit <= 0:
            raise ValueError("timeout must be positive")
        async with self.pacing.slot():
            try:
                async with (
                    asyncio.timeout(limit),
                    self.http.stream(method, path, json=json, timeout=httpx.Timeout(limit)) as response,
                ):
                    if response.is_error:
                        await response.aread()
                        raise self._status_error(response, operation)
                    return [line async for line in response.aiter_lines()]
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise self._transport(operation, f"no complete answer within {limit:g}s", exc) from exc
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                raise self._transport(operation, f"could not reach the platform: {reason}", exc) from exc

    async def aclose(self) -> None:
        if not self.http.is_closed:
            await self.http.aclose()

    # -- one exchange ----------------------------------------------------------------

    async def _exchange(
        self, method: str, path: str, query: Mapping[str, Any], json: Any, operation: str
    ) -> httpx.Response | TransportError:
        """One attempt inside one call slot: the response, or the transport failure (not raised)."""
        async with self.pacing.slot():
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self.http.request(
                        method,
                        path,
                        params=query or None,
                        json=json,
                        timeout=httpx.Timeout(self.timeout),
                    )
                crashpoints.reached("response")
                return response
            except (TimeoutError, httpx.TimeoutException) as exc:
                if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                    message = f"could not connect within {self.timeout:g}s"
                else:
                    message = f"no answer within {self.timeout:g}s"
                return self._transport(operation, message, exc)
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                return self._transport(operation, f"could not reach the platform: {reason}", exc)

    # -- error building ------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _transport(self, operation: str, message: str, cause: BaseException) -> TransportError:
        error = TransportError(self.platform, self._scrub(message), operation=operation, retryable=True)
        error.__cause__ = cause
        return error

    def _status_error(self, response: httpx.Response, operation: str) -> ProviderError:
        status = response.status_code
        try:
            code, message = self.error_parser(response)
        except Exception:  # a parser must never hide the status itself
            code, message = default_error_parser(response)
        try:
            retryable = bool(self.retry_on(response))
        except Exception:  # nor may a predicate
            retryable = default_retry_on(response)
        return ProviderError(
            self.platform,
            self._scrub(message[:_MAX_MESSAGE] or f"HTTP {status}"),
            code=self._scrub(code) if code else None,
            status=status,
            operation=operation,
            retryable=retryable,
        )

    def _decode(self, response: httpx.Response, operation: str) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                self.platform,
                self._scrub(f"the answer is not JSON: {response.text[:100]!r}"),
                code="invalid_response",
                status=response.status_code,
                operation=operation,
            ) from exc
