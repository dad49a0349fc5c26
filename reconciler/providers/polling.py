"""One object's wait for its asynchronous lifecycle, shared by every provider.

Polls ``read`` with doubling backoff until ``settled`` says the object reached
``until``; a retryable read error only delays the verdict until the deadline,
any other error ends the wait at once. The providers' pure ``settled`` decides
what "ready" and "gone" mean (and raises for a failed status).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from reconciler.errors import ProviderError
from reconciler.providers.base import Live, Until


async def poll_until(
    read: Callable[[], Awaitable[Live | None]],
    settled: Callable[[Live | None], bool],
    *,
    until: Until,
    limit: float,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    first_delay: float,
    poll_interval: float,
    what: str,
    platform: str,
    operation: str,
) -> Live | None:
    """The ready object (``until == "ready"``) or None (``"gone"``).

    Raises ProviderError ``timeout`` after ``limit`` seconds.
    """
    deadline = clock() + limit
    delay = min(first_delay, poll_interval)
    last = "not read yet"
    while True:
        try:
            live = await read()
        except ProviderError as exc:
            if not exc.retryable:
                raise
            last = f"last error: {exc}"
        else:
            if settled(live):
                return live if until == "ready" else None
            last = f"last status: {live.status if live else 'absent'}"
        now = clock()
        if now >= deadline:
            message = f"{what} did not become {until} within {limit:g}s ({last})"
            raise ProviderError(platform, message, code="timeout", operation=operation)
        await sleep(min(delay, deadline - now))
        delay = min(delay * 2, poll_interval)
