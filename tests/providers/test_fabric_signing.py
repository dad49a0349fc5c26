"""AK/SK signing (SDK-HMAC-SHA256): ours against the official SDK's, and the provider against the emulator.

The SDK's own signer (``huaweicloudsdkcore.signer.signer.Signer``) is the
oracle: what it signs our :func:`verify` accepts, and what we sign it signs
identically, byte for byte, for the same request and X-Sdk-Date.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.emulators import EmulatorConfig, build_app
from reconciler.errors import ProviderError, UsageError
from reconciler.providers import build_provider
from reconciler.providers.fabric import FabricProvider, fabric_error
from reconciler.providers.fabric_signing import PROJECT_HEADER, AkSkAuth, SignatureError, sign, verify
from reconciler.providers.http import ApiClient
from reconciler.signing import canonical_query, canonical_uri, parse_authorization

AK = "HPUAEXAMPLEAK0000001"
SK = "sk-under-test-9bd1c0ffee"
PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
HOST = "fabric.cn-north-4.myhuaweicloud.com"
PATH = "/v1/workspaces/ws-1/models"
BODY = json.dumps({"name": "llm", "description": "a model"}).encode()


def lookup(ak: str) -> str | None:
    return SK if ak == AK else None


# ---------------------------------------------------------------- against the SDK's signer


def sdk_signed(
    method: str = "POST",
    path: str = PATH,
    query: list[tuple[str, Any]] | None = None,
    body: bytes = BODY,
    headers: dict[str, str] | None = None,
    when: datetime = NOW,
) -> SdkRequest:
    """A request signed by the SDK exactly as its client does (BasicCredentials adds X-Project-Id)."""
    header_params = {"Content-Type": "application/json", "User-Agent": "huaweicloud-usdk-python/3.0"}
    header_params.update(headers or {})
    header_params["X-Sdk-Date"] = when.strftime("%Y%m%dT%H%M%SZ")
    request = SdkRequest(
        method=method, schema="https", host=HOST, resource_path=path,
        query_params=list(query or []), header_params=header_params, body=body.decode() if body else None,
    )  # fmt: skip
    signed: SdkRequest = BasicCredentials(AK, SK, PROJECT).sign_request(request)
    return signed


def verify_sdk_request(request: SdkRequest, *, body: bytes | None = None, now: datetime = NOW) -> str | None:
    """Our verify over what the SDK puts on the wire: its URI, its headers, its body."""
    uri = urlsplit(request.uri)
    sent = body if body is not None else (request.body or b"")
    return verify(request.method, uri.path, uri.query, request.header_params, sent, lookup, now)


def test_a_request_the_sdk_signs_verifies() -> None:
    request = sdk_signed(query=[("name", "a b+c/ü"), ("limit", 10), ("offset", 0)])
    assert request.header_params[PROJECT_HEADER] == PROJECT
    assert parse_authorization(request.header_params["Authorization"]).signed_headers == (
        "content-type", "host", "user-agent", "x-project-id", "x-sdk-date",
    )  # fmt: skip
    assert verify_sdk_request(request) == AK


def test_sdk_get_and_delete_without_body_verify() -> None:
    for method in ("GET", "DELETE"):
        request = sdk_signed(method=method, path="/v1/workspaces/ws%201/endpoints/ep-1", body=b"")
        assert verify_sdk_request(request) == AK


def test_our_signature_is_the_sdks_signature() -> None:
    query = [("offset", "0"), ("limit", "100"), ("name", "my model ü"), ("id", "a+b")]
    url = f"https://{HOST}{PATH}?" + "&".join(f"{k}={quote(v)}" for k, v in query)
    headers = {"Host": HOST, "Content-Type": "application/json", PROJECT_HEADER: PROJECT}
    ours = sign("POST", url, headers, BODY, AK, SK, NOW)

    request = sdk_signed(query=query, headers={PROJECT_HEADER: PROJECT, "X-Sdk-Date": ours["X-Sdk-Date"]})
    del request.header_params["User-Agent"], request.header_params["Authorization"]
    Signer(BasicCredentials(AK, SK)).sign(request)
    assert ours["Authorization"] == request.header_params["Authorization"]
    assert ours["X-Sdk-Date"] == "20250314T092653Z"


segment = st.text(min_size=1, max_size=12)
pairs = st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=12)), max_size=5)


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    segments=st.lists(segment, min_size=1, max_size=4),
    query=pairs,
    body=st.binary(max_size=64),
)
def test_for_any_request_ours_and_the_sdks_agree(
    method: str, segments: list[str], query: list[tuple[str, str]], body: bytes
) -> None:
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    url = f"http://127.0.0.1:8080{path}?{canonical_query(query)}"
    ours = sign(method, url, {"Content-Type": "application/json"}, body, AK, SK, NOW)
    request = SdkRequest(
        method=method, schema="http", host="127.0.0.1:8080", resource_path=path, query_params=list(query),
        header_params={"Content-Type": "application/json", "X-Sdk-Date": ours["X-Sdk-Date"]}, body=body,
    )  # fmt: skip
    Signer(BasicCredentials(AK, SK)).sign(request)
    assert ours["Authorization"] == request.header_params["Authorization"]
    # ...and what the SDK then sends verifies under ours.
    assert verify_sdk_request(request, body=body) == AK


def test_canonical_uri_always_ends_in_a_slash_and_re_encodes_segments() -> None:
    assert canonical_uri("/v1/workspaces") == "/v1/workspaces/"
    assert canonical_uri("/v1/a%20b/") == "/v1/a%20b/"
    assert canonical_uri("") == "/"


# ---------------------------------------------------------------- what verify refuses


def refusal(request: SdkRequest, **kwargs: Any) -> str:
    with pytest.raises(SignatureError) as caught:
        verify_sdk_request(request, **kwargs)
    assert SK not in str(caught.value)
    return caught.value.reason


def test_tampered_body_path_query_or_header_is_a_mismatch() -> None:
    request = sdk_signed(query=[("limit", 10)])
    assert refusal(request, body=BODY.replace(b"llm", b"LLM")) == "mismatch"

    moved = sdk_signed(query=[("limit", 10)])
    moved.uri = moved.uri.replace("ws-1", "ws-2")
    assert refusal(moved) == "mismatch"

    requeried = sdk_signed(query=[("limit", 10)])
    requeried.uri = requeried.uri.replace("limit=10", "limit=100")
    assert refusal(requeried) == "mismatch"

    rehosted = sdk_signed()
    rehosted.header_params["Host"] = "evil.example.com"
    assert refusal(rehosted) == "mismatch"


def test_stale_or_future_dates_are_expired_within_fifteen_minutes_they_verify() -> None:
    request = sdk_signed()
    assert verify_sdk_request(request, now=NOW + timedelta(minutes=15)) == AK
    assert verify_sdk_request(request, now=NOW - timedelta(minutes=15)) == AK
    assert refusal(request, now=NOW + timedelta(minutes=15, seconds=1)) == "expired"
    assert refusal(request, now=NOW - timedelta(minutes=16)) == "expired"


def test_unknown_ak_and_malformed_authorizations() -> None:
    stranger = sdk_signed()
    stranger.header_params["Authorization"] = stranger.header_params["Authorization"].replace(AK, "OTHER")
    assert refusal(stranger) == "unknown_ak"

    for broken in ("SDK-HMAC-SHA256 Access=x", "SDK-HMAC-SHA256 Access=a, SignedHeaders=host, Signature="):
        request = sdk_signed()
        request.header_params["Authorization"] = broken
        assert refusal(request) == "malformed"

    undated = sdk_signed()
    undated.header_params["X-Sdk-Date"] = "yesterday"
    assert refusal(undated) == "malformed"


def test_unsigned_requests_are_not_judged() -> None:
    assert verify("GET", "/v1/workspaces", "", {"X-Auth-Token": "t"}, b"", lookup, NOW) is None


def test_wrong_sk_is_a_mismatch() -> None:
    ours = sign("GET", f"https://{HOST}/v1/workspaces", {}, b"", AK, "not-the-sk", NOW)
    headers = {"Host": HOST, **ours}
    with pytest.raises(SignatureError) as caught:
        verify("GET", "/v1/workspaces", "", headers, b"", lookup, NOW)
    assert caught.value.reason == "mismatch"


# ---------------------------------------------------------------- the httpx auth


def test_auth_signs_every_request_with_its_body_and_keeps_the_sk_out_of_its_repr() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    auth = AkSkAuth(AK, SK, PROJECT, now=lambda: NOW)
    assert SK not in repr(auth) and AK in repr(auth)
    with httpx.Client(
        transport=httpx.MockTransport(handler), base_url=f"https://{HOST}", auth=auth
    ) as client:
        client.post(PATH, params={"name": "a b", "limit": 5}, json={"name": "llm"})
    request = seen[0]
    assert request.url.query == b"limit=5&name=a%20b"  # the SDK's canonical order and encoding
    assert request.headers[PROJECT_HEADER] == PROJECT
    assert request.headers["X-Sdk-Date"] == "20250314T092653Z"
    authorization = parse_authorization(request.headers["Authorization"])
    assert authorization.signed_headers == ("content-type", "host", "x-project-id", "x-sdk-date")
    headers = dict(request.headers)
    query = request.url.query.decode()
    assert verify("POST", request.url.path, query, headers, request.content, lookup, NOW) == AK


# ---------------------------------------------------------------- provider and emulator


class FakeClock:
    def __init__(self, now: float = NOW.timestamp()) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signed_provider(*, sk: str = SK, offset: float = 0.0) -> FabricProvider:
    """A provider signing with ``AK``/``sk``, its clock ``offset`` seconds off the emulator's,
    against an in-process emulator that knows ``AK``/``SK``."""
    clock = FakeClock()
    config = EmulatorConfig(provision_seconds=0, fabric_ak=AK, fabric_sk=SK, clock=clock)
    auth = AkSkAuth(AK, sk, PROJECT, now=lambda: datetime.fromtimestamp(clock() + offset, tz=UTC))
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(config)), base_url="http://fabric.test", auth=auth
    )
    api = ApiClient(http, platform="fabric", error_parser=fabric_error, secrets=(sk,))
    return FabricProvider(api, poll_interval=0.01)


def run(provider: FabricProvider, body: Callable[[FabricProvider], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await body(provider)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def test_provider_with_ak_sk_works_against_the_emulator() -> None:
    async def body(p: FabricProvider) -> None:
        ws = await p.create("workspace", p.desired("workspace", {"name": "signed ws"}, {}))
        found = await p.find("workspace", "signed ws", {})
        assert found is not None and found.id == ws.id
        await p.update(
            "workspace", found, p.desired("workspace", {"name": "signed ws", "description": "d"}, {})
        )
        assert (await p.read("workspace", ws.id, {})) is not None
        await p.delete("workspace", ws.id, {})

    run(signed_provider(), body)


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (lambda: signed_provider(sk="a-wrong-secret-key"), "verify aksk signature fail"),
        (lambda: signed_provider(offset=16 * 60), "signature expired"),
        (lambda: signed_provider(offset=-16 * 60), "signature expired"),
    ],
)
def test_wrong_sk_or_clock_is_apig_0301_and_never_shows_the_sk(
    provider: Callable[[], FabricProvider], message: str
) -> None:
    async def body(p: FabricProvider) -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            await p.list("workspace", {})
        return caught.value

    error = run(provider(), body)
    assert (error.status, error.code) == (401, "APIG.0301")
    assert message in error.platform_message
    assert SK not in str(error) and "a-wrong-secret-key" not in str(error)


def test_the_emulator_still_takes_its_token_when_signing_is_configured() -> None:
    config = EmulatorConfig(provision_seconds=0, fabric_token="tok", fabric_ak=AK, fabric_sk=SK)

    async def main() -> tuple[int, int, Any]:
        transport = httpx.ASGITransport(app=build_app(config))
        async with httpx.AsyncClient(transport=transport, base_url="http://fabric.test") as client:
            with_token = await client.get("/v1/workspaces", headers={"X-Auth-Token": "tok"})
            anonymous = await client.get("/v1/workspaces")
            unknown = await client.get(
                "/v1/workspaces", auth=AkSkAuth("SOMEONE-ELSE", SK, now=lambda: datetime.now(UTC))
            )
        return with_token.status_code, anonymous.status_code, unknown.json()

    token_status, anonymous_status, unknown = asyncio.run(main())
    assert (token_status, anonymous_status) == (200, 401)
    assert unknown["error_code"] == "APIG.0301" and "ak not exist" in unknown["error_msg"]


def test_a_signed_request_with_a_changed_body_is_refused_by_the_emulator() -> None:
    config = EmulatorConfig(provision_seconds=0, fabric_ak=AK, fabric_sk=SK)
    body = json.dumps({"name": "ws"}).encode()
    headers = {"Host": "fabric.test", "Content-Type": "application/json"}
    headers |= sign("POST", "http://fabric.test/v1/workspaces", headers, body, AK, SK, datetime.now(UTC))

    async def main() -> tuple[int, int, Any]:
        transport = httpx.ASGITransport(app=build_app(config))
        async with httpx.AsyncClient(transport=transport, base_url="http://fabric.test") as client:
            honest = await client.post("/v1/workspaces", content=body, headers=headers)
            changed = await client.post("/v1/workspaces", content=body.replace(b"ws", b"xx"), headers=headers)
        return honest.status_code, changed.status_code, changed.json()

    honest, changed, answer = asyncio.run(main())
    assert (honest, changed) == (201, 401)
    assert answer["error_code"] == "APIG.0301"


def test_embedded_block_with_ak_sk_signs_and_its_repr_hides_the_sk(tmp_path: Path) -> None:
    block = {"url": "embedded", "ak": AK, "sk": SK, "project_id": PROJECT, "provision_seconds": 0}

    async def body(p: FabricProvider) -> None:
        assert isinstance(p.control.http.auth, AkSkAuth)
        assert SK not in repr(p.control.http.auth)
        assert "X-Auth-Token" not in p.control.http.headers
        ws = await p.create("workspace", p.desired("workspace", {"name": "embedded"}, {}))
        assert ws.name == "embedded"

    provider = build_provider("fabric", block, state_dir=tmp_path)
    assert isinstance(provider, FabricProvider)
    run(provider, body)


def test_usage_errors_never_show_the_sk(tmp_path: Path) -> None:
    for block in (
        {"url": "https://fabric.example.com", "token": "t", "ak": AK, "sk": SK},
        {"url": "https://fabric.example.com", "sk": SK},
    ):
        with pytest.raises(UsageError) as caught:
            build_provider("fabric", block, state_dir=tmp_path)
        assert SK not in str(caught.value)
