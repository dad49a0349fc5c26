"""How often and how fast a provider calls its platform: retry policy, backoff, rate and concurrency.

Pure decisions and small async gates, no HTTP (that is :mod:`reconciler.providers.http`):

* :class:`RetryPolicy` says how many attempts a call gets and how long to wait
  between them: exponential backoff with *full jitter* (a uniform draw in
  ``[0, min(cap, base * 2**(n-1))]`` before attempt ``n+1``), never less than
  the server's ``Retry-After``.
* :func:`retry_after` reads a ``Retry-After`` header (delta-seconds or an HTTP date).
* :class:`RateLimiter` spaces calls at most ``rate`` per second (a token
  bucket holding ``burst`` tokens, by virtual scheduling: each call reserves
  the next free instant, then sleeps until it outside any lock).
* :class:`Pacing` is what every client of one platform shares: the limit on
  calls in flight and the rate limiter. A *slot* is held for exactly one HTTP
  exchange; backoff sleeps and lifecycle polls happen outside it.

Clocks, sleeps and random sources are injectable so tests never wait for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How a transient failure is retried.

    ``max_attempts``: calls sent at most, the first included (1: never retry).
    ``base``/``cap``: seconds; the n-th backoff is drawn from ``[0, min(cap, base * 2**(n-1))]``.
    ``max_retry_after``: a ``Retry-After`` longer than this is not waited for;
    the call fails at once with its (retryable) error and the caller decides.
    ``refused_statuses``: answers that certify the platform did nothing with the
    request (429: throttled before it reached the service), so that even a
    call that must not run twice may be sent again.
    """

    max_attempts: int = 5
    base: float = 0.5
    cap: float = 20.0
    max_retry_after: float = 120.0
    refused_statuses: frozenset[int] = frozenset({429})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")
        if self.max_retry_after < 0:
            raise ValueError("max_retry_after must not be negative")

    def backoff(self, failures: int, rng: random.Random) -> float:
        """The wait after the ``failures``-th failed attempt (1-based), full jitter."""
        ceiling = min(self.cap, self.base * 2.0 ** min(failures - 1, 64))
        return rng.uniform(0.0, ceiling)

    def delay(self, failures: int, rng: random.Random, hint: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None when the server asks for too long a pause.

        ``hint`` is the server's ``Retry-After`` in seconds; the wait is never shorter than it.
        """
        jittered = self.backoff(failures, rng)
        if hint is None:
            return jittered
        if hint > self.max_retry_after:
            return None
        return max(hint, jittered)


NO_RETRY = RetryPolicy(max_attempts=1)
"""One attempt only: for tests of a single exchange, and callers that retry themselves."""


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value; ``now`` is wall-clock epoch seconds.

    Accepts delta-seconds (``"1"``, also ``"1.5"``) and an HTTP date; a date in
    the past means 0. Anything unreadable is None (the header is then ignored).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # an HTTP date is always GMT; tolerate a missing zone
        return None
    return max(0.0, moment.timestamp() - now)


class RateLimiter:
    """At most ``rate`` calls per second, ``burst`` of them back to back; ``rate`` None or 0: no limit.

    Calls are admitted in the order they ask. ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        burst: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate is not None and (rate < 0 or not math.isfinite(rate)):
            raise ValueError("rate must be a non-negative number of calls per second")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate or None
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._next_free: float | None = None  # when the bucket, refilling, next holds a whole token

    async def acquire(self) -> float:
        """Wait for a turn; returns the seconds waited (0.0 when a token was ready)."""
        if self.rate is None:
            return 0.0
        interval = 1.0 / self.rate
        now = self._clock()
        earliest = now - (self.burst - 1) * interval  # a full bucket lets `burst` calls go at once
        start = earliest if self._next_free is None else max(self._next_free, earliest)
        self._next_free = start + interval
        wait = start - now
        if wait > 0:
            await self._sleep(wait)
            return wait
        return 0.0


class Pacing:
    """The gates shared by every client of one platform: calls in flight and calls per second.

    ``semaphore`` may be given to share the in-flight limit with older code
    that built its own; otherwise one is made from ``max_in_flight``.
    """

    def __init__(
        self,
        max_in_flight: int = 10,
        max_requests_per_second: float | None = None,
        *,
        semaphore: asyncio.Semaphore | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.semaphore = semaphore if semaphore is not None else asyncio.Semaphore(max_in_flight)
        self.rate = RateLimiter(max_requests_per_second, clock=clock, sleep=sleep)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one call slot for one exchange, sent no sooner than the rate allows.

        The slot is taken first and the rate waited for inside it, so that
        calls leave at the paced rate even when many were queued for a slot.
        """
        async with self.semaphore:
            await self.rate.acquire()
            yield
