"""AK/SK request signing for DataArts Fabric, as an ``httpx.Auth`` that signs every request.

The algorithm itself is :mod:`reconciler.signing` (pure, shared with the
emulator, which must not import providers); :func:`sign` and :func:`verify`
are re-exported here so that provider code and its tests have one place to
look. :class:`AkSkAuth` applies it: for each request it sets ``X-Project-Id``
(when a project id is given, as the SDK's ``BasicCredentials`` does), rewrites
the query into its canonical order and encoding (what the official SDK sends:
sorted, spaces as ``%20``; httpx itself writes a space as ``+``, which the
signature would read as a literal plus), and adds
``X-Sdk-Date`` and ``Authorization`` computed over the method, path, query,
Host / Content-Type / X-Project-Id headers and the exact body bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import UTC, datetime

import httpx

from reconciler.signing import (
    ALGORITHM,
    DATE_HEADER,
    MAX_SKEW,
    PROJECT_HEADER,
    SignatureError,
    canonical_query,
    sign,
    verify,
)

__all__ = [
    "ALGORITHM",
    "DATE_HEADER",
    "MAX_SKEW",
    "PROJECT_HEADER",
    "SIGNED_HEADERS",
    "AkSkAuth",
    "SignatureError",
    "sign",
    "verify",
]

SIGNED_HEADERS = ("host", "content-type", PROJECT_HEADER.lower())
"""Headers signed when present, besides X-Sdk-Date. Transport headers (Accept-Encoding,
Connection, Content-Length) are left out, as the SDK leaves out what ``requests`` adds."""

Now = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AkSkAuth(httpx.Auth):
    """Signs each request with an AK/SK pair (SDK-HMAC-SHA256). The SK never shows in its repr."""

    requires_request_body = True

    def __init__(self, ak: str, sk: str, project_id: str | None = None, *, now: Now = _utc_now) -> None:
        if not ak or not sk:
            raise ValueError("AK/SK signing needs both an AK and an SK")
        self.ak = ak
        self._sk = sk
        self.project_id = project_id
        self._now = now

    def __repr__(self) -> str:
        project = f", project_id={self.project_id!r}" if self.project_id else ""
        return f"AkSkAuth(ak={self.ak!r}, sk='***'{project})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.project_id:
            request.headers[PROJECT_HEADER] = self.project_id
        query = canonical_query(request.url.params.multi_items())  # httpx's reading: "+" is a space
        request.url = request.url.copy_with(query=query.encode("ascii") if query else None)
        chosen = {name: request.headers[name] for name in SIGNED_HEADERS if name in request.headers}
        added = sign(
            request.method, str(request.url), chosen, request.content, self.ak, self._sk, self._now()
        )
        request.headers.update(added)
        yield request
