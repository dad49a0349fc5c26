"""The error codes DataArts Fabric documents, as data: the only codes the Fabric emulator answers.

Sources, and what each gave:

* The DataArts Fabric API reference's error-code page, "Error Codes"
  (``dataartsfabric_03_0028``): English
  https://support.huaweicloud.com/intl/en-us/api-fabric/dataartsfabric_03_0028.html,
  Chinese https://support.huaweicloud.com/api-fabric/dataartsfabric_03_0028.html.
  Its body example is ``{"error_msg": "Inference features are not enabled.",
  "error_code": "dataartsfabric.00010195"}``; its table lists the codes without
  the ``dataartsfabric.`` prefix (the body example shows it, so the keys here
  carry it). Only the opening of the table could be read (through the stored
  copies the search tool holds): the English rows up to ``00010009``, the
  Chinese rows up to ``00010036``. Codes seen only in Chinese keep the Chinese
  message, verbatim; ``00010037`` (its message cut off) and ``00010195`` (no
  status seen) are left out. None of the rows seen is about names already
  taken, busy resources, objects still in use, fields that cannot be updated,
  or capacity: several codes the emulator used to answer for those mean
  something else here (``00010011`` an invalid spec code, ``00010022`` a
  restricted feature, ``00010023`` a bad time format, ``00010030`` a null
  condition), and ``00010002``, ``00010010``, ``00010012``, ``00010020``,
  ``00010021`` and ``00010040`` are not in the rows seen at all. They are gone.
* The platform's generic codes, from seed 000 (the DeployServiceInstance page:
  ``common.01000001`` for 400 and for 404, ``APIG.1002``, ``common.00000408``,
  ``common.00000500``; the page's 403 example carries a numeric ``error_code``
  403 and is not answered by the emulator).
* API Gateway's documented codes, for what the gateway in front of Fabric
  answers: ``APIG.0301`` "Incorrect IAM authentication information" (401; the
  API Gateway FAQ "Common Errors Related to IAM Authentication Information",
  e.g. https://support.huaweicloud.com/intl/en-us/usermanual-apig/apig-faq-0003.html)
  and ``APIG.0308`` "The throttling threshold has been reached" (429; API
  Gateway's error-code table,
  https://support.huaweicloud.com/intl/en-us/usermanual-apig/apig_03_0048.html).
* The official SDKs (``huaweicloudsdkdataartsfabric``, ``...ep``) name no codes.

What the emulator decided: every situation the rows seen have no code for (a
name already taken, a busy or not-RUNNING object, an object still in use, a
field that cannot be updated, a scale the endpoint cannot hold, a non-empty
workspace, the current model version) answers the generic documented 400
``common.01000001`` in the documented form "failed to read http request,
please check your input, code: 400, reason: ..., cause: ...", the reason
naming the rule. An object whose provisioning fails carries ``common.00000500``
"internal error" (with the reason appended) in its ``error_code`` /
``error_msg`` fields. :func:`fabric_error` is the one way to build an answer,
and it refuses a code this table does not hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from reconciler.emulators.envelope import FabricError

# ---------------------------------------------------------------- the codes the emulator answers

BAD_REQUEST = "common.01000001"
TIMEOUT = "common.00000408"
INTERNAL_ERROR = "common.00000500"
BAD_TOKEN = "APIG.1002"
IAM_AUTH_FAILED = "APIG.0301"
THROTTLED = "APIG.0308"
WORKSPACE_NOT_EXIST = "dataartsfabric.00010003"
NO_RESOURCES_FOUND = "dataartsfabric.00010009"

#: code -> (HTTP status, documented message): the only codes any Fabric answer may carry.
DOCUMENTED: Mapping[str, tuple[int, str]] = MappingProxyType(
    {
        # generic, seed 000
        BAD_REQUEST: (400, "failed to read http request, please check your input, code: 400"),
        TIMEOUT: (408, "timeout exception occurred"),
        INTERNAL_ERROR: (500, "internal error"),
        BAD_TOKEN: (401, "Incorrect token or token resolution failed"),
        # API Gateway
        IAM_AUTH_FAILED: (401, "Incorrect IAM authentication information"),
        THROTTLED: (429, "The throttling threshold has been reached"),
        # the DataArts Fabric error-code table (English rows)
        "dataartsfabric.00000001": (500, "Running, please wait."),
        WORKSPACE_NOT_EXIST: (400, "Workspace not exist."),
        "dataartsfabric.00010004": (400, "Bucket entered not exist."),
        "dataartsfabric.00010005": (400, "Protocol version entered not exist."),
        "dataartsfabric.00010006": (400, "Empty protocol version."),
        "dataartsfabric.00010007": (400, "Resource clearing task ID xx error."),
        NO_RESOURCES_FOUND: (400, "No resources found."),
        # the same table, rows seen only on the Chinese page (messages verbatim)
        "dataartsfabric.00010011": (400, "该规格编码是无效的。"),
        "dataartsfabric.00010022": (400, "该特性【xx】为受限特性,面向白名单客户开放。"),
        "dataartsfabric.00010023": (400, "参数中的时间格式非法。"),
        "dataartsfabric.00010024": (400, "服务委托异常。"),
        "dataartsfabric.00010026": (400, "标签列表中的key重复"),
        "dataartsfabric.00010028": (400, "标签列表中成员的值列表中存在重复的值。"),
        "dataartsfabric.00010029": (400, "标签列表中的成员不能为NULL。"),
        "dataartsfabric.00010030": (400, "条件列表中的成员不能为NULL。"),
        "dataartsfabric.00010031": (400, "标签列表中成员的值列表不能包含NULL。"),
        "dataartsfabric.00010032": (400, "标签列表中成员的值列表不能为NULL。"),
        "dataartsfabric.00010033": (400, "条件列表成员的值不能为NULL。"),
        "dataartsfabric.00010034": (400, "当前不支持批量删除系统标签。"),
        "dataartsfabric.00010035": (400, "您没有权限操作系统标签。"),
        "dataartsfabric.00010036": (400, "系统标签不能为空。"),
    }
)

#: (code, status) -> message, where a page documents one code under a second status.
OTHER_STATUSES: Mapping[tuple[str, int], str] = MappingProxyType(
    {(BAD_REQUEST, 404): "response status exception, code: 404"},  # seed 000's 404 example
)


class UndocumentedCode(LookupError):
    """A code (or a code under a status) that no page or SDK documents: never answered."""


def documented(code: str, status: int | None = None) -> tuple[int, str]:
    """``(status, message)`` the pages give ``code`` (under ``status``, when given)."""
    try:
        own_status, message = DOCUMENTED[code]
    except KeyError:
        raise UndocumentedCode(f"{code} is not a documented DataArts Fabric error code") from None
    if status is None or status == own_status:
        return own_status, message
    try:
        return status, OTHER_STATUSES[(code, status)]
    except KeyError:
        raise UndocumentedCode(f"{code} is not documented with status {status}") from None


def message(code: str, detail: str = "") -> str:
    """The documented message of ``code``, ``detail`` appended as it is."""
    return documented(code)[1] + detail


def fabric_error(
    code: str, detail: str = "", solution: str = "", *, status: int | None = None
) -> FabricError:
    """The answer for ``code``: its documented status and message (``detail`` appended).

    Raises :class:`UndocumentedCode` for a code the table does not hold.
    """
    answer_status, text = documented(code, status)
    return FabricError(answer_status, code, text + detail, solution)


# ---------------------------------------------------------------- the answers the handlers raise


def bad_request(reason: str, cause: str = "ConstraintViolationException", solution: str = "") -> FabricError:
    """The generic 400 in its documented form: ``..., code: 400, reason: <reason>, cause: <cause>``."""
    return fabric_error(BAD_REQUEST, f", reason: {reason}, cause: {cause}", solution)


def state_conflict(reason: str, solution: str) -> FabricError:
    """A request the current state of an object refuses (busy, in use, not running, ...)."""
    return bad_request(reason, "IllegalStateException", solution)


def type_mismatch(field: str, expected: str) -> FabricError:
    """The documented "Type mismatch." answer, naming the field and the type it needs."""
    return bad_request("Type mismatch.", f"TypeMismatchException, field: {field}, expected: {expected}")


def not_found() -> FabricError:
    """The documented 404 for an id that names nothing."""
    return fabric_error(BAD_REQUEST, status=404)
