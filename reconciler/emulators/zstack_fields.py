"""Reading an API message's fields with ZStack's rules: types, mandatory fields, value lists.

ZStack builds its API message from the JSON with Gson and then checks each
``@APIParam``: mandatory fields, lengths, valid values. A value of the wrong
JSON type is refused here with ``SYS.1007`` naming the field and the type it
needs (the real server would answer a 500 from Gson; an emulator never does).
Fields the message does not know are ignored, as Gson ignores them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.emulators.zstack_errors import ZStackError, invalid_argument, mandatory

_MISSING = object()


class Fields:
    """The parameters of one API message (``message`` names it in errors, e.g. ``APIAddModelServiceMsg``)."""

    def __init__(self, params: Mapping[str, Any], message: str) -> None:
        self.params = params
        self.message = message

    def has(self, name: str) -> bool:
        return self.params.get(name) is not None

    def _value(self, name: str, required: bool) -> Any:
        value = self.params.get(name)
        if value is None:
            if required:
                raise mandatory(name, self.message)
            return _MISSING
        return value

    def _wrong(self, name: str, value: Any, expected: str) -> ZStackError:
        return invalid_argument(
            f"invalid value[{value!r}] of field[{name}] of message[{self.message}]: must be {expected}"
        )

    def string(self, name: str, *, required: bool = False, max_length: int = 2048, empty: bool = True) -> Any:
        """A string (``None`` when absent and optional)."""
        value = self._value(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            raise self._wrong(name, value, "a string")
        if len(value) > max_length:
            raise self._wrong(name, value[:40] + "...", f"at most {max_length} characters")
        if not empty and not value.strip():
            raise self._wrong(name, value, "a non-empty string")
        return value

    def choice(self, name: str, choices: Iterable[str], *, required: bool = False) -> Any:
        allowed = tuple(choices)
        value = self.string(name, required=required)
        if value is not None and value not in allowed:
            raise invalid_argument(
                f"valid value for field[{name}] of message[{self.message}] are {list(allowed)}, "
                f"but {value} found"
            )
        return value

    def integer(self, name: str, *, required: bool = False, minimum: int = 0) -> Any:
        value = self._value(name, required)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(name, value, "an integer")
        if value < minimum:
            raise self._wrong(name, value, f"an integer of at least {minimum}")
        return value

    def boolean(self, name: str) -> Any:
        value = self._value(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            raise self._wrong(name, value, "true or false")
        return value

    def string_map(self, name: str) -> Any:
        """A map of string to string (``environmentVariables``, ``startupParameters``)."""
        value = self._value(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._wrong(name, value, "a map of string to string")
        return dict(value)

    def mapping(self, name: str) -> Any:
        value = self._value(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            raise self._wrong(name, value, "an object")
        return dict(value)

    def string_list(self, name: str) -> Any:
        value = self._value(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong(name, value, "a list of strings")
        return list(value)

    def port_list(self, name: str) -> Any:
        """Ports: integers, or strings (seed 003's UpdateModelService example sends strings)."""
        value = self._value(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or not all(
            isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in value
        ):
            raise self._wrong(name, value, "a list of ports (integers or strings)")
        return list(value)

    def any_list(self, name: str) -> Any:
        """A list of any JSON values (Go ``[]interface{}``)."""
        value = self._value(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, list):
            raise self._wrong(name, value, "a list")
        return list(value)

    def uuid(self, name: str, *, required: bool = False) -> Any:
        """A ZStack uuid: 32 hex digits."""
        value = self.string(name, required=required)
        if value is not None and (len(value) != 32 or any(c not in "0123456789abcdefABCDEF" for c in value)):
            raise self._wrong(name, value, "a uuid of 32 hex digits without hyphens")
        return value
