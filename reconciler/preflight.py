"""Before a plan: one cheap authenticated call per platform, so that a wrong credential or an
unreachable URL is reported at once, even when the state is empty and the plan would call nothing.

Each provider says how it is checked (:meth:`access_check`, an :class:`AccessCheck`):
Fabric lists one workspace (``GET /v1/workspaces?limit=1``), Model Studio one
deployment (``GET /deployments?page_size=1``), ZStack logs in and queries one
model service (``GET /ai/model-services?limit=1``). The calls run concurrently,
each sent at most :data:`ATTEMPTS` times (the provider block's ``max_retries``
may lower that, never raise it), :data:`ATTEMPT_TIMEOUT` seconds per attempt,
with a short backoff, and cut at :data:`DEADLINE` seconds whatever happens:
an unreachable platform is named within 10 seconds, never after the long retry
schedule of ordinary calls. Retries are logged (``-v``) by
:class:`~reconciler.providers.http.ApiClient`.

Errors (exit 1; secrets are scrubbed by the clients and never part of a message):

* credentials refused (HTTP 401 or 403, or one of the platform's own codes for
  it): ``fabric: the token was refused (401 APIG.1002): <the platform's message>``,
  a :class:`~reconciler.errors.ProviderError`;
* no answer: ``fabric: cannot reach http://host:1/v1/workspaces?offset=0&limit=1:
  Connection refused``, a :class:`~reconciler.errors.TransportError`;
* any other error answer is raised as the call raised it.

A provider without ``access_check`` (a test double) is not checked.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from reconciler.errors import ProviderError, ReconcilerError, TransportError
from reconciler.providers.base import Provider
from reconciler.providers.pacing import RetryPolicy

ATTEMPTS = 3
"""Calls sent at most per check: the first and two retries."""
ATTEMPT_TIMEOUT = 2.5
"""Seconds one attempt may take (the provider block's smaller ``timeout`` wins)."""
BACKOFF_BASE = 0.25
BACKOFF_CAP = 0.5
DEADLINE = 9.0
"""Seconds one platform's check may take in all (a ZStack login and its query included)."""
REFUSED_STATUSES = frozenset({401, 403})

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccessCheck:
    """How a provider checks that its platform answers and accepts its credentials.

    ``call(attempts, timeout)`` sends the platform's cheapest authenticated call
    at most ``attempts`` times, ``timeout`` seconds each (see :func:`limited`),
    and raises what it raised. ``credential`` names what the platform
    authenticates ("token", "API key", "account and password"); ``url`` is
    where the call goes; ``refused_codes`` are the platform's codes for refused
    credentials besides HTTP 401 and 403 (ZStack answers a wrong password with
    503 ``ID.1000``).
    """

    credential: str
    url: str
    call: Callable[[int, float], Awaitable[None]]
    refused_codes: frozenset[str] = frozenset()


@runtime_checkable
class AccessChecked(Protocol):
    """A provider that can be checked with one cheap call."""

    def access_check(self) -> AccessCheck: ...


class _Client(Protocol):
    retry: Any
    timeout: float


_C = TypeVar("_C", bound=_Client)


def retry_policy(attempts: int = ATTEMPTS) -> RetryPolicy:
    """The retries of a check: at most ``attempts`` calls, backoff at most 0.25s then 0.5s."""
    return RetryPolicy(max_attempts=max(1, attempts), base=BACKOFF_BASE, cap=BACKOFF_CAP)


def worst_case_seconds(attempts: int = ATTEMPTS, timeout: float = ATTEMPT_TIMEOUT) -> float:
    """The longest one checked call can take: every attempt timing out, every backoff at its ceiling."""
    policy = retry_policy(attempts)
    backoffs = sum(min(policy.cap, policy.base * 2.0 ** (n - 1)) for n in range(1, policy.max_attempts))
    return policy.max_attempts * timeout + backoffs


def limited(client: _C, attempts: int, timeout: float) -> _C:
    """A shallow copy of an API client that sends a call at most ``attempts`` times, ``timeout`` s each.

    The copy shares the connection pool, pacing, error mapping and secrets of
    ``client``, which is left as it is (never close the copy). Neither the
    attempts nor the timeout exceed the client's own.
    """
    clone = copy.copy(client)
    clone.retry = retry_policy(min(attempts, client.retry.max_attempts))
    clone.timeout = min(float(timeout), float(client.timeout))
    return clone


class _Refused(ProviderError):
    """The platform refused the credentials."""

    credential: str = "credentials"

    def _text(self) -> str:
        verb = "were" if " and " in self.credential or self.credential.endswith("s") else "was"
        answer = " ".join(str(p) for p in (self.status, self.code) if p is not None)
        return f"{self.platform}: the {self.credential} {verb} refused ({answer}): {self.platform_message}"


class _Unreachable(TransportError):
    """No answer came."""

    def _text(self) -> str:
        return f"{self.platform}: {self.platform_message}"


class _Several(ProviderError):
    """More than one platform failed its check."""

    lines: tuple[str, ...] = ()

    def _text(self) -> str:
        return "\n".join(self.lines)


async def preflight(providers: Mapping[str, Provider]) -> None:
    """Check every provider concurrently; raise the failure (all of them, when several fail)."""
    checked = {
        platform: provider.access_check()
        for platform, provider in sorted(providers.items())
        if isinstance(provider, AccessChecked)
    }
    outcomes = await asyncio.gather(
        *(_check(platform, check) for platform, check in checked.items()), return_exceptions=True
    )
    errors: list[ReconcilerError] = []
    for outcome in outcomes:
        if isinstance(outcome, ReconcilerError):
            errors.append(outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
    if len(errors) == 1:
        raise errors[0]
    if errors:
        several = _Several(",".join(checked), "several platforms failed their preflight")
        several.lines = tuple(str(e) for e in errors)
        Exception.__init__(several, several._text())
        raise several


async def _check(platform: str, check: AccessCheck) -> None:
    _log.debug("preflight: %s GET %s", platform, check.url)
    try:
        async with asyncio.timeout(DEADLINE):
            await check.call(ATTEMPTS, ATTEMPT_TIMEOUT)
    except TimeoutError:
        raise _unreachable(platform, check.url, f"no answer within {DEADLINE:g}s", None) from None
    except TransportError as exc:
        raise _unreachable(platform, check.url, _reason(exc), exc) from exc
    except ProviderError as exc:
        if exc.status in REFUSED_STATUSES or (exc.code or "") in check.refused_codes:
            raise _refused(exc, check.credential) from exc
        raise


def _refused(exc: ProviderError, credential: str) -> _Refused:
    refused = _Refused(
        exc.platform, exc.platform_message, code=exc.code, status=exc.status, operation=exc.operation
    )
    refused.credential = credential
    Exception.__init__(refused, refused._text())
    return refused


def _unreachable(platform: str, url: str, reason: str, exc: TransportError | None) -> _Unreachable:
    operation = exc.operation if exc is not None else ""
    return _Unreachable(platform, f"cannot reach {url}: {reason}", operation=operation, retryable=True)


def _reason(exc: TransportError) -> str:
    """The OS error under a transport failure ("Connection refused"), else the failure's own words."""
    seen: set[int] = set()
    cause: BaseException | None = exc.__cause__
    found: OSError | None = None
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno is not None:
            found = cause
        cause = cause.__cause__ or cause.__context__
    if found is not None and found.errno is not None:
        return os.strerror(found.errno)
    return exc.platform_message.removeprefix("could not reach the platform: ")
