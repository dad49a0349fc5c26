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


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or the platform's 400 instead of a crash."""
    raw = await request.body()
    if not raw.strip():
        raise invalid_input("Required request body is missing.", "HttpMessageNotReadableException")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_input(f"Malformed JSON ({exc}).", "JsonParseException") from exc
    if not isinstance(body, dict):
        raise type_mismatch("(request body)", "object")
    return body
