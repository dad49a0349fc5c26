"""ApiClient's retries, Retry-After, idempotency, rate limit and call slots, over httpx.MockTransport.

Nothing here sleeps for real: the client's ``sleep`` and the pacing's clock and
sleep are a :class:`FakeTime` that records every wait and moves its own clock.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from reconciler.errors import ProviderError, TransportError, UsageError
from reconciler.providers.fabric import fabric_error
from reconciler.providers.http import (
    HTTP_BLOCK_KEYS,
    ApiClient,
    HttpSettings,
    default_retry_on,
    http_settings,
)
from reconciler.providers.pacing import NO_RETRY, Pacing, RateLimiter, RetryPolicy, retry_after

WALL = 1_750_000_000.0
SEED = 20240611
Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


class FakeTime:
    """A clock that only moves when something sleeps on it; every sleep is recorded."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(
    handler: Handler,
    *,
    time: FakeTime | None = None,
    retry: RetryPolicy | None = None,
    rate: float | None = None,
    max_in_flight: int = 10,
    retry_on: Callable[[httpx.Response], bool] | None = None,
    timeout: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> ApiClient:
    fake = time or FakeTime()
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://platform.test")
    return ApiClient(
        http,
        platform="fabric",
        error_parser=fabric_error,
        pacing=Pacing(max_in_flight, rate, clock=fake, sleep=fake.sleep),
        retry=retry,
        retry_on=retry_on,
        rng=random.Random(SEED),
        sleep=sleep or fake.sleep,
        wall_clock=lambda: WALL,
        timeout=timeout,
    )


def run(api: ApiClient, body: Callable[[ApiClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await body(api)
        finally:
            await api.aclose()

    return asyncio.run(main())


def failing(times: int, status: int, *, headers: dict[str, str] | None = None) -> tuple[Handler, list[str]]:
    """A handler answering ``status`` ``times`` times, then 200 ``{"ok": true}``; and its request log."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) <= times:
            body = {"error_code": f"common.00000{status}", "error_msg": "try later"}
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(200, json={"ok": True})

    return handler, seen


def expected_backoffs(count: int, policy: RetryPolicy | None = None) -> list[float]:
    policy = policy or RetryPolicy()
    rng = random.Random(SEED)
    return [policy.backoff(n, rng) for n in range(1, count + 1)]


# ---------------------------------------------------------------- what is retried


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_transient_status_is_retried_then_succeeds(status: int) -> None:
    handler, seen = failing(2, status)
    time = FakeTime()
    answer = run(client(handler, time=time), lambda api: api.request("GET", "/x", operation="ShowX"))
    assert answer == {"ok": True} and seen == ["GET"] * 3
    assert time.sleeps == expected_backoffs(2)
    assert 0 <= time.sleeps[0] <= 0.5 and 0 <= time.sleeps[1] <= 1.0  # full jitter under base * 2**n


def test_retry_after_in_seconds_is_waited_for_at_least() -> None:
    handler, seen = failing(1, 503, headers={"Retry-After": "7"})
    time = FakeTime()
    run(client(handler, time=time), lambda api: api.request("GET", "/x"))
    assert len(seen) == 2 and time.sleeps == [7.0]


def test_retry_after_as_an_http_date() -> None:
    moment = format_datetime(datetime.fromtimestamp(WALL + 30, tz=UTC), usegmt=True)
    handler, seen = failing(1, 429, headers={"Retry-After": moment})
    time = FakeTime()
    run(client(handler, time=time), lambda api: api.request("GET", "/x"))
    assert len(seen) == 2 and time.sleeps == [30.0]


def test_a_short_retry_after_never_shortens_the_backoff() -> None:
    policy = RetryPolicy(base=4.0)
    handler, _ = failing(1, 503, headers={"Retry-After": "0"})
    time = FakeTime()
    run(client(handler, time=time, retry=policy), lambda api: api.request("GET", "/x"))
    assert time.sleeps == expected_backoffs(1, policy)


def test_a_retry_after_beyond_the_policy_fails_at_once_still_retryable() -> None:
    handler, seen = failing(1, 503, headers={"Retry-After": "3600"})
    time = FakeTime()

    async def body(api: ApiClient) -> None:
        with pytest.raises(ProviderError) as caught:
            await api.request("GET", "/x")
        assert caught.value.retryable and caught.value.status == 503

    run(client(handler, time=time), body)
    assert len(seen) == 1 and time.sleeps == []


def test_a_client_error_fails_at_once_with_code_and_message() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        body = {"error_code": "common.01000001", "error_msg": "name must not be empty"}
        return httpx.Response(400, json=body)

    time = FakeTime()

    async def body(api: ApiClient) -> None:
        with pytest.raises(ProviderError) as caught:
            await api.request("PUT", "/x", json={"name": ""}, operation="UpdateX")
        error = caught.value
        assert (error.status, error.code) == (400, "common.01000001")
        assert error.platform_message == "name must not be empty"
        assert not error.retryable and error.operation == "UpdateX"

    run(client(handler, time=time), body)
    assert seen == ["PUT"] and time.sleeps == []


def test_attempts_are_bounded() -> None:
    handler, seen = failing(100, 502)
    time = FakeTime()
    policy = RetryPolicy(max_attempts=3)

    async def body(api: ApiClient) -> None:
        with pytest.raises(ProviderError) as caught:
            await api.request("DELETE", "/x")
        assert caught.value.status == 502 and caught.value.retryable

    run(client(handler, time=time, retry=policy), body)
    assert seen == ["DELETE"] * 3 and time.sleeps == expected_backoffs(2, policy)


def test_the_default_policy_makes_five_attempts_with_capped_backoff() -> None:
    handler, seen = failing(100, 500)
    time = FakeTime()

    async def body(api: ApiClient) -> None:
        with pytest.raises(ProviderError):
            await api.request("GET", "/x")

    run(client(handler, time=time), body)
    assert len(seen) == 5 and len(time.sleeps) == 4
    assert all(0 <= s <= min(20.0, 0.5 * 2**n) for n, s in enumerate(time.sleeps))
    assert RetryPolicy(cap=20.0).backoff(40, random.Random(1)) <= 20.0


def test_no_retry_sends_once() -> None:
    handler, seen = failing(1, 503)

    async def body(api: ApiClient) -> None:
        with pytest.raises(ProviderError):
            await api.request("GET", "/x")

    run(client(handler, retry=NO_RETRY), body)
    assert seen == ["GET"]


# ---------------------------------------------------------------- idempotency


def test_post_is_not_retried_after_it_may_have_arrived_but_get_is() -> None:
    handler, seen = failing(1, 503)
    time = FakeTime()

    async def body(api: ApiClient) -> None:
        with pytest.raises(ProviderError) as caught:
            await api.request("POST", "/things", json={"name": "a"}, operation="CreateThing")
        # retryable, but only after the applier has looked for what the first POST may have made
        assert caught.value.retryable and caught.value.status == 503

    run(client(handler, time=time), body)
    assert seen == ["POST"] and time.sleeps == []

    handler, seen = failing(1, 503)
    run(client(handler), lambda api: api.request("GET", "/things"))
    assert seen == ["GET", "GET"]


def test_a_lost_answer_to_a_post_is_not_retried() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        raise httpx.ReadError("connection reset by peer", request=request)

    async def body(api: ApiClient) -> None:
        with pytest.raises(TransportError) as caught:
            await api.request("POST", "/things", json={})
        assert caught.value.retryable and "connection reset" in str(caught.value)
        assert isinstance(caught.value.__cause__, httpx.ReadError)

    run(client(handler), body)
    assert seen == ["POST"]


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("connection refused"), httpx.ConnectTimeout("connect timed out")]
)
def test_a_post_that_never_left_is_retried(failure: httpx.TransportError) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) == 1:
            raise failure
        return httpx.Response(201, json={"id": "t-1"})

    answer = run(client(handler), lambda api: api.request("POST", "/things", json={}))
    assert answer == {"id": "t-1"} and seen == ["POST", "POST"]


def test_a_throttled_post_is_retried_since_nothing_was_done() -> None:
    handler, seen = failing(1, 429, headers={"Retry-After": "1"})
    time = FakeTime()
    run(client(handler, time=time), lambda api: api.request("POST", "/things", json={}))
    assert seen == ["POST", "POST"] and time.sleeps[0] >= 1.0


def test_idempotent_overrides_the_method() -> None:
    handler, seen = failing(1, 500)
    run(client(handler), lambda api: api.request("POST", "/query", json={}, idempotent=True))
    assert seen == ["POST", "POST"]

    handler, seen = failing(1, 500)

    async def body(api: ApiClient) -> None:
        with pytest.raises(ProviderError):
            await api.request("PUT", "/append-version", json={}, idempotent=False)

    run(client(handler), body)
    assert seen == ["PUT"]


def test_a_timeout_is_retried_for_a_get() -> None:
    calls: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(5)  # cut short by the 0.02s timeout
        return httpx.Response(200, json={"ok": True})

    answer = run(client(handler, timeout=0.02), lambda api: api.request("GET", "/slow"))
    assert answer == {"ok": True} and len(calls) == 2


# ---------------------------------------------------------------- per-platform verdicts


def zstack_retry_on(response: httpx.Response) -> bool:
    """ZStack's 503 is also its ordinary API failure: retry it only without a code or with SYS.xxxx."""
    if response.status_code != 503:
        return default_retry_on(response)
    try:
        code = response.json().get("error", {}).get("code")
    except ValueError:
        return True
    return not code or str(code).startswith("SYS.")


@pytest.mark.parametrize(("code", "attempts", "retryable"), [("ID.1001", 1, False), ("SYS.1000", 2, True)])
def test_a_platform_predicate_decides_what_is_transient(code: str, attempts: int, retryable: bool) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return httpx.Response(503, json={"error": {"code": code, "description": "d", "details": "x"}})

    async def body(api: ApiClient) -> None:
        with pytest.raises(ProviderError) as caught:
            await api.request("GET", "/zstack/v1/things")
        assert caught.value.retryable is retryable

    run(client(handler, retry=RetryPolicy(max_attempts=2), retry_on=zstack_retry_on), body)
    assert len(seen) == attempts


# ---------------------------------------------------------------- pacing


def test_n_requests_at_r_per_second_take_at_least_n_minus_one_over_r() -> None:
    sent_at: list[float] = []
    time = FakeTime()

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(time())
        return httpx.Response(200, json={})

    count, rate = 9, 4.0

    async def sequential(api: ApiClient) -> None:
        for _ in range(count):
            await api.request("GET", "/x")

    start = time()
    run(client(handler, time=time, rate=rate), sequential)
    assert time() - start >= (count - 1) / rate - 1e-9
    assert all(b - a >= 1 / rate - 1e-9 for a, b in itertools.pairwise(sent_at))

    sent_at.clear()
    time2 = FakeTime()

    def handler2(request: httpx.Request) -> httpx.Response:
        sent_at.append(time2())
        return httpx.Response(200, json={})

    async def concurrent(api: ApiClient) -> None:
        await asyncio.gather(*(api.request("GET", f"/x/{n}") for n in range(count)))

    run(client(handler2, time=time2, rate=rate), concurrent)
    assert len(sent_at) == count and time2() - 100.0 >= (count - 1) / rate - 1e-9
    ordered = sorted(sent_at)
    assert all(b - a >= 1 / rate - 1e-9 for a, b in itertools.pairwise(ordered))


def test_no_rate_means_no_waiting() -> None:
    time = FakeTime()

    async def body(api: ApiClient) -> None:
        for _ in range(20):
            await api.request("GET", "/x")

    run(client(lambda request: httpx.Response(200, json={}), time=time, rate=0), body)
    assert time.sleeps == []


def test_a_burst_goes_at_once_then_the_rate_holds() -> None:
    time = FakeTime()
    limiter = RateLimiter(2.0, burst=3, clock=time, sleep=time.sleep)

    async def body() -> list[float]:
        return [await limiter.acquire() for _ in range(5)]

    assert asyncio.run(body()) == [0.0, 0.0, 0.0, 0.5, 0.5]


def test_calls_in_flight_never_exceed_the_limit() -> None:
    state = {"now": 0, "peak": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        for _ in range(5):
            await asyncio.sleep(0)
        state["now"] -= 1
        return httpx.Response(200, json={})

    async def body(api: ApiClient) -> None:
        await asyncio.gather(*(api.request("GET", f"/x/{n}") for n in range(20)))

    run(client(handler, max_in_flight=3), body)
    assert state["peak"] == 3


def test_a_backoff_does_not_hold_a_call_slot() -> None:
    pacing_seen: list[bool] = []
    handler, seen = failing(1, 503)
    time = FakeTime()

    async def watching_sleep(seconds: float) -> None:
        pacing_seen.append(api.pacing.semaphore.locked())
        await time.sleep(seconds)

    api = client(handler, time=time, max_in_flight=1, sleep=watching_sleep)
    run(api, lambda a: a.request("GET", "/x"))
    assert seen == ["GET", "GET"] and pacing_seen == [False]


def test_clients_of_one_provider_share_their_pacing() -> None:
    time = FakeTime()
    pacing = Pacing(1, 2.0, clock=time, sleep=time.sleep)

    def make() -> ApiClient:
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
        http = httpx.AsyncClient(transport=transport, base_url="http://h.test")
        return ApiClient(http, platform="fabric", pacing=pacing, sleep=time.sleep)

    async def body() -> None:
        control, ep = make(), make()
        try:
            calls = (control.request("GET", "/a"), ep.request("GET", "/b"), control.request("GET", "/c"))
            await asyncio.gather(*calls)
        finally:
            await control.aclose()
            await ep.aclose()

    asyncio.run(body())
    assert time.now - 100.0 >= 1.0 - 1e-9  # three calls at 2/s across both hosts


# ---------------------------------------------------------------- Retry-After and settings


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("1.5", 1.5),
        (" 0 ", 0.0),
        (format_datetime(datetime.fromtimestamp(WALL + 12, tz=UTC), usegmt=True), 12.0),
        (format_datetime(datetime.fromtimestamp(WALL - 50, tz=UTC), usegmt=True), 0.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parsing(value: str | None, seconds: float | None) -> None:
    assert retry_after(value, WALL) == seconds


def test_http_settings_reads_the_four_knobs() -> None:
    assert http_settings({}, "fabric") == HttpSettings()
    block = {"timeout": 5, "max_retries": 0, "max_requests_per_second": 2.5, "max_in_flight": 4, "url": "x"}
    settings = http_settings(block, "fabric")
    assert settings == HttpSettings(timeout=5.0, max_retries=0, max_requests_per_second=2.5, max_in_flight=4)
    assert settings.retry.max_attempts == 1 and HttpSettings().retry.max_attempts == 5
    pacing = settings.pacing()
    assert pacing.max_in_flight == 4 and pacing.rate.rate == 2.5
    assert http_settings({"max_requests_per_second": 0}, "zstack").max_requests_per_second is None
    assert sorted(HTTP_BLOCK_KEYS) == ["max_in_flight", "max_requests_per_second", "max_retries", "timeout"]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"timeout": 0}, "providers.zstack.timeout must be a positive number, not 0"),
        ({"timeout": "30"}, "timeout must be a positive number"),
        ({"max_retries": -1}, "max_retries must be a non-negative integer"),
        ({"max_retries": 1.5}, "max_retries must be a non-negative integer"),
        ({"max_retries": True}, "max_retries must be a non-negative integer"),
        ({"max_in_flight": 0}, "max_in_flight must be a positive integer"),
        ({"max_requests_per_second": -2}, "max_requests_per_second must be a non-negative number"),
        ({"max_requests_per_second": float("inf")}, "max_requests_per_second must be a non-negative number"),
    ],
)
def test_http_settings_refuse_bad_values(block: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        http_settings(block, "zstack")
