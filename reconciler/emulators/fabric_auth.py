"""Who may call the Fabric emulator: an IAM token, or a request signed with an AK/SK pair.

A request carrying ``Authorization: SDK-HMAC-SHA256 ...`` is judged by its
signature alone (when ``EmulatorConfig.fabric_ak``/``fabric_sk`` are set);
any other request by its ``X-Auth-Token``. The signature is recomputed with
the shared :mod:`reconciler.signing` over the request exactly as received:
the raw path, the raw query string, the headers it names (values decoded as
UTF-8, which is how the SDK sends them) and the body bytes. ``X-Sdk-Date``
must lie within 15 minutes of the emulator's clock.

Failures answer 401 in the platform's envelope. Fabric APIs use IAM
authentication at API Gateway, whose AK/SK failures are all ``APIG.0301``
"Incorrect IAM authentication information: ..." (API Gateway FAQ "Common
Errors Related to IAM Authentication Information"): ``verify aksk signature
fail`` for a wrong signature, ``Get secretKey failed,ak:******,err:ak not
exist`` for an unknown AK. For a stale or future ``X-Sdk-Date`` the IAM page
publishes no text of its own (it tells to check the 15 minutes under
"verify aksk signature fail"), so the emulator borrows the wording API
Gateway uses for app authentication (``APIG.0303`` "signature expired,
signature time:...,server time:...") under ``APIG.0301``. ``APIG.0303``
itself belongs to APIG *app* authentication, which cloud-service APIs do not
use. A missing or wrong token stays ``APIG.1002``. The gateway's lock-out
after five failed signatures in a row is not emulated.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from starlette.requests import Request

from reconciler.emulators.config import EmulatorConfig
from reconciler.emulators.envelope import BodyRefused, FabricError, read_body
from reconciler.emulators.fabric_errors import BAD_TOKEN, IAM_AUTH_FAILED, bad_request, fabric_error
from reconciler.signing import SignatureError, is_signed, verify

IAM_AUTH_CODE = IAM_AUTH_FAILED
TOKEN_CODE = BAD_TOKEN


async def authenticate(request: Request, config: EmulatorConfig) -> None:
    """The one gate every Fabric request passes; raises the platform's 401 when it may not."""
    headers = _received_headers(request)
    if is_signed(headers):
        await _check_signature(request, headers, config)
        return
    token = request.headers.get("X-Auth-Token")
    if token is None or not hmac.compare_digest(token.encode(), config.fabric_token.encode()):
        raise fabric_error(
            TOKEN_CODE,
            solution="Send a valid IAM token in the X-Auth-Token header, or sign the request with an AK/SK.",
        )


def _received_headers(request: Request) -> dict[str, str]:
    """Header names in lower case, values as the sender's UTF-8 (the last of repeated names wins)."""
    return {
        name.decode("latin-1").lower(): value.decode("utf-8", errors="replace")
        for name, value in request.headers.raw
    }


async def _check_signature(request: Request, headers: dict[str, str], config: EmulatorConfig) -> None:
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    try:
        body = await read_body(request)
    except BodyRefused as exc:
        raise bad_request(exc.reason, exc.cause) from None
    now = datetime.fromtimestamp(config.clock(), tz=UTC)

    def lookup_sk(ak: str) -> str | None:
        known, sk = config.fabric_ak, config.fabric_sk
        return sk if known and sk and hmac.compare_digest(ak.encode(), known.encode()) else None

    try:
        verify(request.method, path, query, headers, body, lookup_sk, now)
    except SignatureError as exc:
        raise _signature_refused(exc) from None


def _signature_refused(exc: SignatureError) -> FabricError:
    if exc.reason == "unknown_ak":
        return fabric_error(
            IAM_AUTH_CODE,
            ": Get secretKey failed,ak:******,err:ak not exist",
            "Check that the access key ID (AK) is correct and still enabled.",
        )
    if exc.reason == "expired":
        return fabric_error(
            IAM_AUTH_CODE,
            f": signature expired, {exc.detail}",
            "X-Sdk-Date must be within 15 minutes of the server time; check the client's clock.",
        )
    detail = "" if exc.reason == "mismatch" else f", {exc.detail}"
    return fabric_error(
        IAM_AUTH_CODE,
        f": verify aksk signature fail{detail}",
        "Check that the SK belongs to the AK and that the request is signed as sent "
        "(method, path, query, signed headers, body).",
    )
