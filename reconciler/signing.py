"""Huawei Cloud AK/SK request signing ("SDK-HMAC-SHA256"), exactly as the official SDKs sign.

Pure: strings and bytes in, strings out; no I/O and no clock of its own (the
caller passes ``now``). It lives at the package root, outside ``providers``
and ``emulators``, because both sides use it: the Fabric provider signs with
:func:`sign` (through :mod:`reconciler.providers.fabric_signing`), the Fabric
emulator checks with :func:`verify`. One algorithm, so the two cannot drift;
``tests/providers/test_fabric_signing.py`` proves it against
``huaweicloudsdkcore.signer.signer.Signer``.

The algorithm (``huaweicloudsdkcore`` 3.1, ``Signer.sign``)::

    CanonicalRequest = METHOD "\\n" CanonicalURI "\\n" CanonicalQuery "\\n"
                       CanonicalHeaders "\\n" SignedHeaders "\\n" HexSHA256(body)
    StringToSign     = "SDK-HMAC-SHA256" "\\n" X-Sdk-Date "\\n" HexSHA256(CanonicalRequest)
    Signature        = HexHMAC-SHA256(key=SK, StringToSign)
    Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<h1;h2>, Signature=<hex>

* CanonicalURI: the path percent-decoded, split on ``/``, each segment
  re-encoded (everything but ``A-Za-z0-9_.-~``), always ending in ``/``.
* CanonicalQuery: ``key=value`` pairs, both decoded then re-encoded the same
  way, sorted by key then value, joined with ``&``.
* CanonicalHeaders: ``name:value\\n`` for each signed header; names in lower
  case and sorted; values stripped. The SDK signs every header it sets
  itself (never one whose name holds ``_``): Host, X-Sdk-Date, Content-Type,
  User-Agent and X-Project-Id among them.
* The body hash is that of the empty string for no body; when the request
  carries ``X-Sdk-Content-Sha256`` (the SDK sets ``UNSIGNED-PAYLOAD`` for
  content types other than JSON and BSON) its value stands in for the hash.
* ``X-Sdk-Date`` is UTC, ``%Y%m%dT%H%M%SZ``; the gateway refuses a date more
  than 15 minutes away from its own clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
CONTENT_HASH_HEADER = "X-Sdk-Content-Sha256"
PROJECT_HEADER = "X-Project-Id"
AUTHORIZATION_HEADER = "Authorization"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_SKEW = timedelta(minutes=15)
EMPTY_HASH = hashlib.sha256(b"").hexdigest()

Failure = Literal["malformed", "unknown_ak", "expired", "mismatch"]


class SignatureError(Exception):
    """A signed request that does not verify; ``reason`` says which check failed.

    ``reason``: ``malformed`` (the Authorization or X-Sdk-Date header cannot be
    read), ``unknown_ak``, ``expired`` (X-Sdk-Date too far from now) or
    ``mismatch`` (the signature is not the one the SK gives). ``ak`` is the
    access key the request named, when it could be read. Never holds the SK.
    """

    def __init__(self, reason: Failure, detail: str, *, ak: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Failure = reason
        self.detail = detail
        self.ak = ak


@dataclass(frozen=True)
class Authorization:
    """The parsed ``Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...``."""

    access: str
    signed_headers: tuple[str, ...]
    signature: str

    def header_value(self) -> str:
        signed = ";".join(self.signed_headers)
        return f"{ALGORITHM} Access={self.access}, SignedHeaders={signed}, Signature={self.signature}"


# ---------------------------------------------------------------- canonical forms


def _encode(text: str) -> str:
    """Percent-encoding as the SDK does it: ``quote(s, safe='~')``."""
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """The path decoded, each segment re-encoded, with a trailing slash."""
    uri = "/".join(_encode(segment) for segment in unquote(path or "/").split("/"))
    return uri if uri.endswith("/") else uri + "/"


def parse_query(raw: str) -> list[tuple[str, str]]:
    """``key=value`` pairs of a raw query string, percent-decoded (``+`` stays ``+``)."""
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if key:
            pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Decoded pairs sorted (by key, then value) and re-encoded: also what the SDK sends."""
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(pairs))


def payload_hash(body: bytes, headers: Mapping[str, str]) -> str:
    """The body's hex SHA-256; ``X-Sdk-Content-Sha256`` stands in when present (``headers`` lower-cased)."""
    if not body:
        return EMPTY_HASH
    declared = headers.get(CONTENT_HASH_HEADER.lower())
    return declared if declared else hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    body: bytes,
) -> str:
    """The canonical request; ``headers`` has lower-case names, every signed one present."""
    signed = tuple(signed_headers)
    lines = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            lines,
            ";".join(signed),
            payload_hash(body, headers),
        )
    )


def string_to_sign(canonical: str, date: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{date}\n{digest}"


def signature(sk: str, text_to_sign: str) -> str:
    return hmac.new(sk.encode("utf-8"), text_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def format_date(now: datetime) -> str:
    """``now`` in UTC as X-Sdk-Date (a naive ``now`` is taken as UTC, as the SDK's ``utcnow``)."""
    moment = now.astimezone(UTC) if now.tzinfo is not None else now
    return moment.strftime(DATE_FORMAT)


def parse_date(text: str) -> datetime:
    """An X-Sdk-Date as an aware UTC datetime; ValueError when it is not one."""
    return datetime.strptime(text, DATE_FORMAT).replace(tzinfo=UTC)


# ---------------------------------------------------------------- signing


def sign(
    method: str, url: str, headers: Mapping[str, str], body: bytes, ak: str, sk: str, now: datetime
) -> dict[str, str]:
    """The headers to add so the request verifies: X-Sdk-Date, Authorization, and Host if absent.

    ``headers`` are the ones to sign besides those added (Host, Content-Type,
    X-Project-Id, ...); names with ``_`` are never signed, as in the SDK. Like
    the SDK, a body whose Content-Type is neither JSON nor BSON is sent
    unsigned (``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` is added). The query
    is taken from ``url`` and must be sent in :func:`canonical_query` order or
    any order that decodes to the same pairs.
    """
    if not ak or not sk:
        raise ValueError("signing needs both an AK and an SK")
    parts = urlsplit(url)
    added: dict[str, str] = {}
    lowered = {name.lower(): str(value) for name, value in headers.items()}
    content_type = lowered.get("content-type")
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        added[CONTENT_HASH_HEADER] = UNSIGNED_PAYLOAD
    if "host" not in lowered:
        added["Host"] = parts.netloc
    added[DATE_HEADER] = format_date(now)
    lowered.update((name.lower(), value) for name, value in added.items())
    signed = tuple(sorted(name for name in lowered if "_" not in name))
    canonical = canonical_request(method, parts.path, parse_query(parts.query), lowered, signed, body)
    proof = signature(sk, string_to_sign(canonical, added[DATE_HEADER]))
    added[AUTHORIZATION_HEADER] = Authorization(ak, signed, proof).header_value()
    return added


# ---------------------------------------------------------------- verifying


def parse_authorization(value: str) -> Authorization:
    """Read an ``SDK-HMAC-SHA256`` Authorization value; SignatureError ``malformed`` otherwise."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError("malformed", f"the Authorization algorithm is not {ALGORITHM}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, field_value = item.strip().partition("=")
        if sep:
            fields[key.strip()] = field_value.strip()
    access, signed, proof = fields.get("Access"), fields.get("SignedHeaders"), fields.get("Signature")
    if not access or not signed or not proof:
        raise SignatureError("malformed", "Authorization needs Access, SignedHeaders and Signature")
    return Authorization(access, tuple(signed.split(";")), proof)


def is_signed(headers: Mapping[str, str]) -> bool:
    """Whether the request carries an ``SDK-HMAC-SHA256`` Authorization header (``headers`` any case)."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    return value.strip().startswith(ALGORITHM + " ")


def verify(
    method: str,
    url_path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup_sk: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta = MAX_SKEW,
) -> str | None:
    """The AK that signed this request as received; None when it is not signed at all.

    ``url_path`` and ``query`` are as received (percent-encoded or not),
    ``headers`` with names in any case. ``lookup_sk`` gives the SK of an AK, or
    None when the AK is unknown. Raises :class:`SignatureError` when the
    request is signed but does not verify.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    raw = lowered.get("authorization")
    if raw is None or not is_signed(lowered):
        return None
    auth = parse_authorization(raw)
    if list(auth.signed_headers) != sorted(auth.signed_headers) or any(
        name != name.lower() for name in auth.signed_headers
    ):
        raise SignatureError("malformed", "SignedHeaders must be lower-case and sorted", ak=auth.access)
    missing = [name for name in auth.signed_headers if name not in lowered]
    if missing:
        raise SignatureError("malformed", f"signed header(s) not sent: {', '.join(missing)}", ak=auth.access)
    if DATE_HEADER.lower() not in auth.signed_headers:
        raise SignatureError("malformed", f"{DATE_HEADER} must be a signed header", ak=auth.access)
    date_text = lowered[DATE_HEADER.lower()].strip()
    try:
        signed_at = parse_date(date_text)
    except ValueError:
        raise SignatureError("malformed", f"{DATE_HEADER} is not {DATE_FORMAT}", ak=auth.access) from None
    sk = lookup_sk(auth.access)
    if sk is None:
        raise SignatureError("unknown_ak", "ak not exist", ak=auth.access)
    current = now.astimezone(UTC) if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if abs(current - signed_at) > max_skew:
        raise SignatureError(
            "expired",
            f"signature time:{date_text},server time:{format_date(current)}",
            ak=auth.access,
        )
    canonical = canonical_request(method, url_path, parse_query(query), lowered, auth.signed_headers, body)
    expected = signature(sk, string_to_sign(canonical, date_text))
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise SignatureError("mismatch", "verify aksk signature fail", ak=auth.access)
    return auth.access
