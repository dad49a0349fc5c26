"""Secret values a run knows, and scrubbing them out of everything it shows.

A value is *secret* when it is

* a credential of a provider block: Fabric ``token``, ``ak`` and ``sk``,
  Model Studio ``api_key``, ZStack ``password`` (and the SHA-512 digest of it
  that ZStack's login sends);
* the password inside a PostgreSQL ``backend.postgres.dsn``;
* the value of an environment variable whose name says it holds a credential
  (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*API_KEY*``, ``*ACCESS_KEY*``,
  ``*_AK``, ``*_SK``, ``*CREDENTIAL*``, ``*DSN*``, ...).

:data:`REDACTOR` collects them (the CLI adds the environment's at start and a
stack's as soon as it is loaded) and :meth:`Redactor.scrub` replaces each, and
its JSON-escaped and URL-encoded forms, with :data:`MASK`. The CLI scrubs
error messages, crash tracebacks, log records (:class:`RedactingFormatter`) and
rendered plans with it. Values shorter than :data:`MIN_LENGTH` and the
emulators' published defaults are never treated as secret: scrubbing them
would blank ordinary words.

Pure apart from the one process-wide :data:`REDACTOR`; no I/O.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from reconciler.plan import Plan

MASK = "***"
MIN_LENGTH = 6
#: Provider block keys whose values are credentials, per platform.
CREDENTIAL_KEYS: Mapping[str, frozenset[str]] = {
    "fabric": frozenset({"token", "ak", "sk"}),
    "modelstudio": frozenset({"api_key"}),
    "zstack": frozenset({"password"}),
}
#: Public defaults of the built-in emulators: not secrets, and common words.
PUBLIC_DEFAULTS = frozenset({"emulator-token", "emulator-key", "password", "admin"})
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW(OR)?D|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|(^|_)(AK|SK)$|DSN",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential."""
    return bool(_SECRET_NAME.search(name))


def environment_secrets(env: Mapping[str, str]) -> set[str]:
    """Values of the environment variables :func:`is_secret_name` picks."""
    return {value for name, value in env.items() if is_secret_name(name)}


def stack_secrets(providers: Mapping[str, Mapping[str, Any]], backend: Mapping[str, Any]) -> set[str]:
    """The credentials of a stack's (rendered) provider blocks and backend."""
    found: set[str] = set()
    for platform, block in providers.items():
        for key in CREDENTIAL_KEYS.get(platform, frozenset({"token", "password", "api_key", "sk"})):
            value = block.get(key)
            if isinstance(value, str) and value:
                found.add(value)
                if platform == "zstack" and key == "password":
                    found.add(hashlib.sha512(value.encode("utf-8")).hexdigest())
    postgres = backend.get("postgres")
    dsn = postgres.get("dsn") if isinstance(postgres, Mapping) else None
    if isinstance(dsn, str):
        found |= dsn_secrets(dsn)
    return found


def dsn_secrets(dsn: str) -> set[str]:
    """The password of a URL (``postgresql://u:pw@h/db``) or key/value (``password=pw``) DSN."""
    found = set(re.findall(r"(?:^|\s)password\s*=\s*'?([^'\s]+)", dsn))
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        found.add(password)
    return found


class Redactor:
    """A set of secret values and the one way to scrub them from text. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._ordered: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        """Treat each of ``values`` (and its escaped forms) as secret from now on."""
        fresh: set[str] = set()
        for value in values:
            if not isinstance(value, str) or len(value) < MIN_LENGTH or value in PUBLIC_DEFAULTS:
                continue
            fresh |= {value, json.dumps(value)[1:-1], quote(value, safe=""), quote(value)}
        with self._lock:
            if fresh - self._values:
                self._values |= fresh
                self._ordered = tuple(sorted(self._values, key=len, reverse=True))

    @property
    def values(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._values)

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by :data:`MASK`."""
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._ordered = ()


REDACTOR = Redactor()


def sensitive_paths(plan: Plan, values: Iterable[str]) -> dict[tuple[str, str], frozenset[str]]:
    """Per (platform, kind), the dotted attribute paths of ``plan`` whose values hold a secret.

    What a platform documents as secret is its kinds' ``KindSpec.secrets``; this
    finds the rest: a credential a stack put into an ordinary attribute (an
    environment variable of a deployment, say), so that renderers hide it by path
    and ``--format json`` lists it under ``sensitive``.
    """
    secrets = [v for v in values if v]
    found: dict[tuple[str, str], set[str]] = {}

    def holds(value: Any) -> bool:
        return any(secret in text for text in _texts(value) for secret in secrets)

    for change in plan.changes:
        paths = found.setdefault((change.platform, change.kind), set())
        for side in (change.before, change.after):
            paths.update(path for path, value in _leaves(side) if holds(value))
        paths.update(d.path for d in change.diff if holds(d.before) or holds(d.after))
    return {key: frozenset(paths) for key, paths in found.items() if paths}


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += _leaves(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix, value)] if prefix else []


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in _texts(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _texts(item)]
    return []


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output (message, arguments and traceback) is scrubbed."""

    def __init__(self, fmt: str | None = None, redactor: Redactor = REDACTOR) -> None:
        super().__init__(fmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.scrub(super().format(record))
