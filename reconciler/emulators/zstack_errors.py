"""ZStack's error answers, the way its REST server sends them.

ZStack answers in two shapes (from its ``RestServer``):

* an API that ran and failed: HTTP 503 with ``{"error": {"code", "description",
  "details"}}`` (:class:`ZStackError`); a synchronous call answers it at once,
  an asynchronous one through its job (``GET /zstack/v1/api-jobs/{uuid}``);
* a request the REST layer itself refuses before any API runs (no or a
  non-OAuth ``Authorization`` header, an unknown path, a bad query parameter,
  an expired job): a plain-text body with 400, 404 or 405 (:class:`PlainTextError`).

Codes used by the emulator (descriptions are ZStack's own wording of the code):

========  =====================================  ==========================================
code      description                            when
========  =====================================  ==========================================
ID.1000   Authentication error                   login with a wrong account name or password
ID.1001   Invalid session                        the session uuid is unknown or has expired
SYS.1006  An operation failed                    the object is busy, or still in use
SYS.1007  One or more API argument is invalid    missing / mistyped field, unknown uuid,
                                                 malformed JSON (then with HTTP 400)
========  =====================================  ==========================================
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response

from reconciler.emulators.envelope import ApiError

DESCRIPTIONS = {
    "ID.1000": "Authentication error",
    "ID.1001": "Invalid session",
    "SYS.1006": "An operation failed",
    "SYS.1007": "One or more API argument is invalid",
}


class ZStackError(ApiError):
    """An API failure: ``{"error": {code, description, details}}``, HTTP 503 unless told."""

    def __init__(self, code: str, details: str, status_code: int = 503) -> None:
        super().__init__(f"{code}: {details}")
        self.status_code = status_code
        self.code = code
        self.details = details

    @property
    def error(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "description": DESCRIPTIONS.get(self.code, self.code),
            "details": self.details,
        }

    def response(self) -> Response:
        return JSONResponse({"error": self.error}, status_code=self.status_code)


class PlainTextError(ApiError):
    """A refusal by the REST layer itself: plain text, no envelope."""

    def __init__(self, status_code: int, text: str) -> None:
        super().__init__(text)
        self.status_code = status_code
        self.text = text

    def response(self) -> Response:
        return PlainTextResponse(self.text, status_code=self.status_code)


def invalid_argument(details: str) -> ZStackError:
    return ZStackError("SYS.1007", details)


def mandatory(field: str, message: str) -> ZStackError:
    return invalid_argument(f"field[{field}] of message[{message}] is mandatory, can not be null")


def not_found(field: str, uuid: str, vo: str) -> ZStackError:
    return invalid_argument(f"invalid field[{field}], resource[uuid:{uuid}, type:{vo}] not found")


def operation_failed(details: str) -> ZStackError:
    return ZStackError("SYS.1006", details)


def invalid_session(session_uuid: str | None) -> ZStackError:
    return ZStackError("ID.1001", f"session[uuid:{session_uuid}] does not exist or has expired; log in again")


def authentication_failed() -> ZStackError:
    return ZStackError("ID.1000", "wrong account name or password")
