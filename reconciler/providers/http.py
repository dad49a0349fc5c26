"""The one place where HTTP failures become :class:`~reconciler.errors.ProviderError`.

:class:`ApiClient` wraps an :class:`httpx.AsyncClient` (which carries the base
URL, the auth headers and the transport) and adds what every provider needs:

* a semaphore bounding the calls in flight (shared between clients if asked);
* a per-call timeout, enforced both by httpx and by the event loop, so that a
  transport that ignores httpx timeouts (``httpx.ASGITransport``) is bounded too;
* error mapping: a transport failure becomes :class:`TransportError`
  (``retryable=True``); an HTTP error status becomes :class:`ProviderError`
  with the platform's own code and message, taken from the body by the
  platform's ``error_parser``; 408, 429 and 5xx gateway statuses are retryable.

Nothing is retried here: whether to retry is the caller's decision, made from
``ProviderError.retryable``. Error messages never contain request headers;
secret values handed to the client are also scrubbed from every message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from reconciler.errors import ProviderError, TransportError

ErrorParser = Callable[[httpx.Response], tuple[str | None, str]]
"""Reads an error response: ``(platform code or None, platform message)``."""

RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})

_MAX_MESSAGE = 500


def default_error_parser(response: httpx.Response) -> tuple[str | None, str]:
    """A body-agnostic parser: no code, the body text (or the reason phrase) as message."""
    text = response.text.strip()
    return None, text[:_MAX_MESSAGE] or response.reason_phrase or f"HTTP {response.status_code}"


class ApiClient:
    """An httpx client for one platform host, with bounded concurrency and error mapping.

    ``http`` is owned by this object from now on (closed by :meth:`aclose`).
    ``secrets`` are values (tokens, keys) that must never appear in an error message.
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
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.http = http
        self.platform = platform
        self.error_parser = error_parser
        self.timeout = float(timeout)
        self.semaphore = semaphore if semaphore is not None else asyncio.Semaphore(max_in_flight)
        self._secrets = tuple(s for s in secrets if s)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        operation: str = "",
    ) -> Any:
        """Send one call; returns the decoded JSON body (None when the body is empty).

        Raises :class:`TransportError` when no answer came, :class:`ProviderError`
        for an HTTP error status or an undecodable success body.
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        async with self.semaphore:
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self.http.request(
                        method,
                        path,
                        params=query or None,
                        json=json,
                        timeout=httpx.Timeout(self.timeout),
                    )
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise self._transport(operation, f"no answer within {self.timeout:g}s") from exc
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                raise self._transport(operation, f"could not reach the platform: {reason}") from exc
        if response.is_error:
            raise self._status_error(response, operation)
        return self._decode(response, operation)

    async def aclose(self) -> None:
        if not self.http.is_closed:
            await self.http.aclose()

    # -- error building ------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _transport(self, operation: str, message: str) -> TransportError:
        return TransportError(self.platform, self._scrub(message), operation=operation, retryable=True)

    def _status_error(self, response: httpx.Response, operation: str) -> ProviderError:
        status = response.status_code
        try:
            code, message = self.error_parser(response)
        except Exception:  # a parser must never hide the status itself
            code, message = default_error_parser(response)
        return ProviderError(
            self.platform,
            self._scrub(message[:_MAX_MESSAGE] or f"HTTP {status}"),
            code=self._scrub(code) if code else None,
            status=status,
            operation=operation,
            retryable=status in RETRYABLE_STATUSES,
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
