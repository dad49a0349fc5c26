"""Error envelopes and request-body parsing, the way the platforms answer them.

:class:`ApiError` is the one exception a handler raises to answer an error;
the app turns it into its response in one place. :class:`FabricError` renders
DataArts Fabric's envelope ``{"error_code", "error_msg", "solution_msg"}``;
the other platforms add their own subclasses.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

BAD_REQUEST_PREFIX = "failed to read http request, please check your input, code: 400"
BAD_REQUEST_CODE = "common.01000001"
DEFAULT_SOLUTION = "Check the request against the DataArts Fabric API reference and try again."


class ApiError(Exception):
    """An error answer; subclasses know their platform's envelope."""

    status_code: int = 400

    def response(self) -> Response:
        raise NotImplementedError


class FabricError(ApiError):
    """One DataArts Fabric error answer."""

    def __init__(self, status_code: int, error_code: str, error_msg: str, solution_msg: str = "") -> None:
        super().__init__(f"{status_code} {error_code}: {error_msg}")
        self.status_code = status_code
        self.error_code = error_code
        self.error_msg = error_msg
        self.solution_msg = solution_msg or DEFAULT_SOLUTION

    def response(self) -> Response:
        return fabric_response(
            {"error_code": self.error_code, "error_msg": self.error_msg, "solution_msg": self.solution_msg},
            status_code=self.status_code,
        )


def fabric_response(content: Any, status_code: int = 200) -> Response:
    """A JSON answer carrying the request id header the platform sends; 204 has no body."""
    headers = {"X-request-id": uuid.uuid4().hex}
    if status_code == 204:
        return Response(status_code=204, headers=headers)
    return JSONResponse(content, status_code=status_code, headers=headers)


def invalid_input(reason: str, cause: str = "ConstraintViolationException") -> FabricError:
    """The platform's 400 for a request it cannot accept, with the reason spelled out."""
    return FabricError(400, BAD_REQUEST_CODE, f"{BAD_REQUEST_PREFIX}, reason: {reason}, cause: {cause}")


def type_mismatch(field: str, expected: str) -> FabricError:
    """The documented "Type mismatch." answer, naming the field and the type it needs."""
    return invalid_input("Type mismatch.", f"TypeMismatchException, field: {field}, expected: {expected}")


def not_found_status() -> FabricError:
    """The documented 404 for an id that names nothing."""
    return FabricError(404, BAD_REQUEST_CODE, "response status exception, code: 404")


#: The largest request body any emulator reads; a larger one is refused unread, with a 400.
MAX_BODY_BYTES = 1024 * 1024


class BodyRefused(Exception):
    """A request body that is not read: too large, or of a content type that is not JSON."""

    def __init__(self, reason: str, cause: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause  # the exception name a Java platform would report


def is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def check_json_type(request: Request) -> None:
    """:class:`BodyRefused` when a ``Content-Type`` is given and is not JSON (none given: taken as JSON)."""
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_type(content_type):
        raise BodyRefused(
            f"Content type '{content_type[:100]}' not supported; send application/json",
            "HttpMediaTypeNotSupportedException",
        )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, kept on the request as ``Request.body()`` keeps it, but never read past ``limit``
    bytes: :class:`BodyRefused` instead (by ``Content-Length`` before reading, else while reading)."""
    too_large = BodyRefused(
        f"Request body larger than {limit} bytes", "HttpMessageNotReadableException: body too large"
    )
    cached = getattr(request, "_body", None)
    if isinstance(cached, bytes):
        if len(cached) > limit:
            raise too_large
        return cached
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # what Request.body() would keep: later readers (signature checks) see it
    return body


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or the platform's 400 instead of a crash."""
    try:
        check_json_type(request)
        raw = await read_body(request)
    except BodyRefused as exc:
        raise invalid_input(exc.reason, exc.cause) from None
    if not raw.strip():
        raise invalid_input("Required request body is missing.", "HttpMessageNotReadableException")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_input(f"Malformed JSON ({exc}).", "JsonParseException") from exc
    except RecursionError:
        raise invalid_input("Malformed JSON (nested too deeply).", "JsonParseException") from None
    if not isinstance(body, dict):
        raise type_mismatch("(request body)", "object")
    return body
