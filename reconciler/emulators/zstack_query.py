"""ZStack's query language, as its REST server reads it from the query string.

``GET /zstack/v1/<resources>?q=<cond>&q=<cond>&start=&limit=&count=&replyWithCount=&sort=``

A condition is ``<field><op><value>``; the operators are tried in ZStack's
order (an operator contained in another comes after it): ``!=``, ``>=``,
``<=``, ``!?=`` (not in), ``!~=`` (not like), ``~=`` (like: ``%`` any run,
``_`` one character, case-insensitive as in MySQL), ``?=`` (in: a comma
list), ``=``, ``>``, ``<``, ``is null``, ``not null``. Conditions are joined
with AND. ``limit`` defaults to 1000 and ``start`` to 0; ``count=true``
answers only ``{"total"}``; ``replyWithCount=true`` adds ``total`` (the number
of matches before paging) to ``{"inventories"}``. ``sort`` is ``+field``
(ascending, the default) or ``-field``.

Syntax errors are the REST layer's plain-text 400; a condition or sort on a
field the inventory does not have is the API's 503 ``SYS.1007``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from reconciler.emulators.zstack_errors import PlainTextError, invalid_argument

JsonObject = dict[str, Any]

OPERATORS = ("!=", ">=", "<=", "!?=", "!~=", "~=", "?=", "=", ">", "<", "is null", "not null")
DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str | None


@dataclass(frozen=True)
class Query:
    conditions: tuple[Condition, ...] = ()
    start: int = 0
    limit: int = DEFAULT_LIMIT
    count: bool = False
    reply_with_count: bool = False
    sort_by: str | None = None
    descending: bool = False


def parse_query(params: QueryParams) -> Query:
    """The query the parameters describe; raises the REST layer's plain-text 400 on bad syntax."""
    conditions = tuple(_condition(raw) for raw in params.getlist("q"))
    sort = params.get("sort")
    sort_by = None
    descending = False
    if sort:
        descending = sort.startswith("-")
        sort_by = sort.lstrip("+-").strip()
    return Query(
        conditions=conditions,
        start=_whole(params, "start", 0),
        limit=_whole(params, "limit", DEFAULT_LIMIT),
        count=params.get("count", "").lower() == "true",
        reply_with_count=params.get("replyWithCount", "").lower() == "true",
        sort_by=sort_by,
        descending=descending,
    )


def answer(
    query: Query,
    items: Iterable[JsonObject],
    fields: frozenset[str],
    view: Callable[[JsonObject], JsonObject],
) -> JsonObject:
    """The query's answer body over ``items`` (raw objects, shown through ``view``).

    Conditions see the view; sorting on a date uses the raw object's ``_<field>``
    timestamp when it has one, so that "Nov 2" sorts after "Jan 10".
    """
    for name in [c.field for c in query.conditions] + ([query.sort_by] if query.sort_by else []):
        if name not in fields:
            raise invalid_argument(f"condition name[{name}] is invalid, no such field on the inventory")
    rows = [(raw, view(raw)) for raw in items]
    selected = [(raw, shown) for raw, shown in rows if all(_matches(shown, c) for c in query.conditions)]
    if query.sort_by:
        key = query.sort_by
        selected.sort(
            key=lambda pair: _sort_key(pair[0].get(f"_{key}", pair[1].get(key))), reverse=query.descending
        )
    if query.count:
        return {"total": len(selected)}
    page = [shown for _, shown in selected[query.start : query.start + query.limit]]
    body: JsonObject = {"inventories": page}
    if query.reply_with_count:
        body["total"] = len(selected)
    return body


def _condition(raw: str) -> Condition:
    for op in OPERATORS:
        if op not in raw:
            continue
        name, _, value = raw.partition(op)
        if op in ("is null", "not null"):
            return Condition(name.strip(), op, None)
        return Condition(name.strip(), op, value)  # a space is valid in a value: not stripped
    raise PlainTextError(
        400,
        f"Invalid query parameter. The '{raw}' in the parameter[q] doesn't contain any query operator. "
        f"Valid query operators are {list(OPERATORS)}",
    )


def _whole(params: QueryParams, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise PlainTextError(400, f"Invalid query parameter. '{name}' must be an integer")
    return value


def _matches(obj: JsonObject, condition: Condition) -> bool:
    value = obj.get(condition.field)
    op, wanted = condition.op, condition.value or ""
    if op == "is null":
        return value is None
    if op == "not null":
        return value is not None
    if value is None:
        return False  # SQL: a comparison with NULL is never true
    if op == "=":
        return _equal(value, wanted)
    if op == "!=":
        return not _equal(value, wanted)
    if op in ("?=", "!?="):
        found = any(_equal(value, item) for item in wanted.split(","))
        return found if op == "?=" else not found
    if op in ("~=", "!~="):
        liked = _like(str(value), wanted)
        return liked if op == "~=" else not liked
    return _ordered(value, wanted, op)


def _equal(value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == wanted.strip().lower()
    if isinstance(value, int | float):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return str(value) == wanted


def _like(value: str, pattern: str) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, flags=re.IGNORECASE | re.DOTALL) is not None


def _ordered(value: Any, wanted: str, op: str) -> bool:
    left: Any = value
    right: Any = wanted
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            right = float(wanted)
        except ValueError:
            return False
    else:
        left = str(value)
    if op == ">":
        return bool(left > right)
    if op == "<":
        return bool(left < right)
    if op == ">=":
        return bool(left >= right)
    return bool(left <= right)


def _sort_key(value: Any) -> tuple[int, float, str]:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, str(value))
