"""The Fabric emulator's input rules: what a request body or query may hold.

Every reader here takes untrusted JSON and returns plain values ready to be
stored, or raises :func:`~reconciler.emulators.fabric_errors.bad_request`: the
platform's 400 ``common.01000001`` envelope naming the field and the rule.
Nothing here touches the store: rules that need other objects (does the
endpoint exist, does the capacity fit) live with the handlers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

from reconciler.emulators.fabric_errors import bad_request, type_mismatch


@dataclass(frozen=True)
class TextRule:
    """Length bounds, an optional whole-string pattern and characters it may not hold."""

    min_len: int
    max_len: int
    pattern: re.Pattern[str] | None = None
    forbidden: str = ""
    explanation: str = ""

    def check(self, field: str, value: str) -> None:
        if not self.min_len <= len(value) <= self.max_len:
            raise bad_request(f"{field} must be {self.min_len}-{self.max_len} characters long.")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise bad_request(f"{field} {self.explanation}.")
        bad = sorted({char for char in value if char in self.forbidden})
        if bad:
            raise bad_request(f"{field} must not contain any of {self.forbidden} (found {''.join(bad)}).")


NAME = TextRule(
    1, 64, re.compile(r"[\w\-. ]+"), explanation="may contain only letters, digits, '-', '_', '.' and spaces"
)
DESCRIPTION = TextRule(0, 1024, forbidden="!<>=&'\"")
IDENTIFIER = TextRule(
    1, 36, re.compile(r"[A-Za-z0-9\-]+"), explanation="may contain only letters, digits and '-'"
)
SPEC_CODE = TextRule(1, 64)
SHORT_TEXT = TextRule(1, 255)
PATH_TEXT = TextRule(1, 1024)
OPTIONAL_SHORT_TEXT = TextRule(0, 255)  # the inference walk-through sends "" for base_model_type
OPTIONAL_PATH_TEXT = TextRule(0, 1024)  # ... and for model_path
ANY_TEXT = TextRule(0, 65536)

ENDPOINT_TYPES = ("inference", "service", "ray", "job", "ray_service", "sql", "container_job", "notebook")
MODEL_TYPES = ("LLM_MODEL",)
SCALE_LIMIT = 1000
PAGE_LIMIT = 100


class Fields:
    """Typed reads from one JSON object of a request; ``where`` is its dotted path."""

    def __init__(self, data: object, where: str = "") -> None:
        if not isinstance(data, dict):
            raise type_mismatch(where or "(request body)", "object")
        self._data: dict[str, Any] = data
        self._where = where

    def path(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def _value(self, key: str, required: bool) -> Any:
        value = self._data.get(key)
        if value is None and required:
            raise bad_request(f"{self.path(key)} is required.")
        return value

    @overload
    def text(self, key: str, rule: TextRule, *, required: Literal[True]) -> str: ...
    @overload
    def text(self, key: str, rule: TextRule, *, required: bool = False) -> str | None: ...
    def text(self, key: str, rule: TextRule, *, required: bool = False) -> str | None:
        value = self._value(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise type_mismatch(self.path(key), "string")
        rule.check(self.path(key), value)
        return value

    @overload
    def choice(self, key: str, choices: tuple[str, ...], *, required: Literal[True]) -> str: ...
    @overload
    def choice(self, key: str, choices: tuple[str, ...], *, required: bool = False) -> str | None: ...
    def choice(self, key: str, choices: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self.text(key, ANY_TEXT, required=required)
        if value is not None and value not in choices:
            raise bad_request(f"{self.path(key)} must be one of {', '.join(choices)} (got {value!r}).")
        return value

    @overload
    def integer(self, key: str, low: int, high: int, *, required: Literal[True]) -> int: ...
    @overload
    def integer(self, key: str, low: int, high: int, *, required: bool = False) -> int | None: ...
    def integer(self, key: str, low: int, high: int, *, required: bool = False) -> int | None:
        value = self._value(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_mismatch(self.path(key), "integer")
        if not low <= value <= high:
            raise bad_request(f"{self.path(key)} must be between {low} and {high} (got {value}).")
        return value

    def flag(self, key: str) -> bool | None:
        value = self._value(key, False)
        if value is not None and not isinstance(value, bool):
            raise type_mismatch(self.path(key), "boolean")
        return value

    @overload
    def child(self, key: str, *, required: Literal[True]) -> Fields: ...
    @overload
    def child(self, key: str, *, required: bool = False) -> Fields | None: ...
    def child(self, key: str, *, required: bool = False) -> Fields | None:
        value = self._value(key, required)
        return None if value is None else Fields(value, self.path(key))

    def raw(self, key: str) -> dict[str, Any] | None:
        """An object taken as it is (its inner rules are not emulated)."""
        value = self._data.get(key)
        if value is not None and not isinstance(value, dict):
            raise type_mismatch(self.path(key), "object")
        return value


def _ordered(low_name: str, low: int, high_name: str, high: int) -> None:
    if high < low:
        raise bad_request(f"{high_name} ({high}) must be greater than or equal to {low_name} ({low}).")


# ---------------------------------------------------------------- queries


def query_int(query: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise type_mismatch(key, "integer") from None
    if not low <= value <= high:
        raise bad_request(f"{key} must be between {low} and {high} (got {value}).")
    return value


def page(query: Mapping[str, str]) -> tuple[int, int]:
    """``(offset, limit)``: offset >= 0 (default 0), limit in [1, 100] (default 10)."""
    offset = query_int(query, "offset", 0, 0, 2**31 - 1)
    limit = query_int(query, "limit", 10, 1, PAGE_LIMIT)
    return offset, limit


# ---------------------------------------------------------------- workspaces


def workspace_create(body: dict[str, Any]) -> dict[str, Any]:
    fields = Fields(body)
    return {
        "name": fields.text("name", NAME, required=True),
        "description": fields.text("description", DESCRIPTION) or "",
        "metastore_id": fields.text("metastore_id", IDENTIFIER),
        "enterprise_project_id": fields.text("enterprise_project_id", IDENTIFIER) or "0",
    }


def workspace_update(body: dict[str, Any]) -> dict[str, Any]:
    fields = Fields(body)
    changes = {
        "name": fields.text("name", NAME),
        "description": fields.text("description", DESCRIPTION),
        "metastore_id": fields.text("metastore_id", IDENTIFIER),
    }
    return {key: value for key, value in changes.items() if value is not None}


# ---------------------------------------------------------------- endpoints


def reserved_resource(fields: Fields) -> dict[str, Any]:
    """``{"mu": {spec_code, min, max}}`` and/or ``{"apu"|"dpu": {spec_code, warm_up_num, max_num}}``."""
    result: dict[str, Any] = {}
    mu = fields.child("mu")
    if mu is not None:
        low = mu.integer("min", 0, SCALE_LIMIT, required=True)
        high = mu.integer("max", 1, SCALE_LIMIT, required=True)
        _ordered(mu.path("min"), low, mu.path("max"), high)
        result["mu"] = {"spec_code": mu.text("spec_code", SPEC_CODE, required=True), "min": low, "max": high}
    for kind in ("apu", "dpu"):
        unit = fields.child(kind)
        if unit is None:
            continue
        warm = unit.integer("warm_up_num", 0, SCALE_LIMIT, required=True)
        most = unit.integer("max_num", 1, SCALE_LIMIT, required=True)
        _ordered(unit.path("warm_up_num"), warm, unit.path("max_num"), most)
        result[kind] = {
            "spec_code": unit.text("spec_code", SPEC_CODE, required=True),
            "warm_up_num": warm,
            "max_num": most,
        }
    return result


def endpoint_create(body: dict[str, Any]) -> dict[str, Any]:
    fields = Fields(body)
    reserved = fields.child("reserved_resource")
    return {
        "name": fields.text("name", NAME, required=True),
        "type": fields.choice("type", ENDPOINT_TYPES, required=True),
        "description": fields.text("description", DESCRIPTION) or "",
        "reserved_resource": reserved_resource(reserved) if reserved is not None else {},
        "public_access": bool(fields.flag("public_access")),
        "custom_image_id": fields.text("custom_image_id", SHORT_TEXT),
    }


def endpoint_update(body: dict[str, Any]) -> dict[str, Any]:
    """Only the updatable fields, plus ``type`` when sent (the handler refuses a change)."""
    fields = Fields(body)
    reserved = fields.child("reserved_resource")
    changes = {
        "type": fields.choice("type", ENDPOINT_TYPES),
        "name": fields.text("name", NAME),
        "description": fields.text("description", DESCRIPTION),
        "reserved_resource": reserved_resource(reserved) if reserved is not None else None,
        "ray_resource": fields.raw("ray_resource"),
        "cap": fields.raw("cap"),
    }
    return {key: value for key, value in changes.items() if value is not None}


# ---------------------------------------------------------------- models


def model_version(fields: Fields) -> dict[str, Any]:
    config = fields.child("config", required=True)
    llm = config.child("llm_model_config", required=True)
    return {
        "name": fields.text("name", NAME, required=True),
        "description": fields.text("description", DESCRIPTION) or "",
        "config": {
            "llm_model_config": {
                "base_model_type": llm.text("base_model_type", OPTIONAL_SHORT_TEXT, required=True),
                "model_path": llm.text("model_path", OPTIONAL_PATH_TEXT, required=True),
            }
        },
    }


def model_create(body: dict[str, Any]) -> dict[str, Any]:
    fields = Fields(body)
    version = fields.child("version", required=True)
    return {
        "name": fields.text("name", NAME, required=True),
        "description": fields.text("description", DESCRIPTION) or "",
        "type": fields.choice("type", MODEL_TYPES, required=True),
        "version": model_version(version),
    }


def model_update(body: dict[str, Any]) -> dict[str, Any]:
    fields = Fields(body)
    version = fields.child("version")
    if version is not None and fields.has("current_version_id"):
        raise bad_request("current_version_id and version cannot be given together.")
    changes = {
        "name": fields.text("name", NAME),
        "description": fields.text("description", DESCRIPTION),
        "current_version_id": fields.text("current_version_id", IDENTIFIER),
        "version": model_version(version) if version is not None else None,
    }
    return {key: value for key, value in changes.items() if value is not None}


# ---------------------------------------------------------------- service instances


def instance_deploy(body: dict[str, Any]) -> dict[str, Any]:
    """The deploy body; ``source.version_id`` and ``config`` are optional (None when not sent)."""
    fields = Fields(body)
    source = fields.child("source", required=True)
    config = fields.child("config")
    model_config = config.child("model_instance_config") if config is not None else None
    resource = model_config.child("resource", required=True) if model_config is not None else None
    stored_config: dict[str, Any] | None = None
    if resource is not None:
        low = resource.integer("min", 1, SCALE_LIMIT, required=True)
        high = resource.integer("max", 1, SCALE_LIMIT, required=True)
        _ordered(resource.path("min"), low, resource.path("max"), high)
        stored_config = {
            "model_instance_config": {
                "resource": {
                    "spec_code": resource.text("spec_code", SPEC_CODE, required=True),
                    "min": low,
                    "max": high,
                }
            }
        }
    return {
        "source": {
            "id": source.text("id", IDENTIFIER, required=True),
            "version_id": source.text("version_id", IDENTIFIER),
        },
        "name": fields.text("name", NAME, required=True),
        "description": fields.text("description", DESCRIPTION) or "",
        "endpoint_id": fields.text("endpoint_id", IDENTIFIER, required=True),
        "config": stored_config,
    }


def instance_update(body: dict[str, Any]) -> dict[str, Any]:
    """Flat changes: name, description, source_id, version_id, spec_code, min, max (those sent)."""
    fields = Fields(body)
    changes: dict[str, Any] = {
        "name": fields.text("name", NAME),
        "description": fields.text("description", DESCRIPTION),
    }
    source = fields.child("source")
    if source is not None:
        changes["source_id"] = source.text("id", IDENTIFIER)
        changes["version_id"] = source.text("version_id", IDENTIFIER)
    config = fields.child("config")
    model_config = config.child("model_instance_config") if config is not None else None
    resource = model_config.child("resource") if model_config is not None else None
    if resource is not None:
        changes["spec_code"] = resource.text("spec_code", SPEC_CODE)
        changes["min"] = resource.integer("min", 1, SCALE_LIMIT)
        changes["max"] = resource.integer("max", 1, SCALE_LIMIT)
    return {key: value for key, value in changes.items() if value is not None}


def invocation_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if messages is None:
        raise bad_request("messages is required.")
    if not isinstance(messages, list):
        raise type_mismatch("messages", "array")
    if not messages:
        raise bad_request("messages must hold at least one message.")
    result = []
    for index, item in enumerate(messages):
        message = Fields(item, f"messages[{index}]")
        role = message.text("role", SHORT_TEXT, required=True)
        content = message.text("content", ANY_TEXT, required=True)
        result.append({"role": role, "content": content})
    return result
