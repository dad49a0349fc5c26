"""The emulated cloud's memory: named collections of JSON objects, optionally kept in one file.

Every platform emulator keeps its objects here, one collection per kind, named
``"<platform>.<kind>"`` (``"fabric.workspaces"``). A collection is a plain
``dict`` from id to a JSON object; insertion order is creation order, which is
the order lists answer in. Keys starting with ``_`` are the emulator's own
bookkeeping (owning workspace, pending transitions) and are never shown.

Handlers work inside :meth:`Store.transaction`: it holds the store's lock for
the whole request and, when the transaction ends normally, saves the store if
anything changed (reads may use :meth:`Store.locked` and save only when they
changed something, which spares serialising the store on every GET).
Saving writes a temporary file next to the data file, fsyncs it and renames
it over the data file, so a crash never leaves half a cloud.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reconciler.errors import StateError

JsonObject = dict[str, Any]
Collection = dict[str, JsonObject]

FORMAT_VERSION = 1


class StoreError(StateError):
    """The data file cannot be read or written; the message names the file and the cause."""


class Store:
    """In-memory collections of JSON objects, mirrored to ``path`` when one is given."""

    def __init__(self, path: Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._collections: dict[str, Collection] = {}
        self._saved_text: str | None = None
        if path is not None and path.exists():
            self._load(path)

    @property
    def path(self) -> Path | None:
        return self._path

    def now(self) -> float:
        """The emulator's clock, in seconds since the epoch."""
        return self._clock()

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def collection(self, name: str) -> Collection:
        """The live dict id -> object of one kind; created empty on first use."""
        with self._lock:
            return self._collections.setdefault(name, {})

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock for one request; save afterwards unless it raised."""
        with self._lock:
            yield
            self.save()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock without saving: for reads, which call :meth:`save` only if they changed something."""
        with self._lock:
            yield

    def save(self) -> None:
        """Write the store to its file if it has one and it changed since the last save."""
        with self._lock:
            if self._path is None:
                return
            text = json.dumps({"format": FORMAT_VERSION, "collections": self._collections})
            if text == self._saved_text:
                return
            _write_atomically(self._path, text)
            self._saved_text = text

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
            document = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read emulator data file {path}: {exc}") from exc
        collections = document.get("collections") if isinstance(document, dict) else None
        if not isinstance(collections, dict) or not all(
            isinstance(objects, dict) for objects in collections.values()
        ):
            raise StoreError(
                f"emulator data file {path} is not an emulator store "
                "(expected an object with 'collections'); move it away to start an empty cloud"
            )
        self._collections = collections
        self._saved_text = text


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_directory(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot write emulator data file {path}: {exc}") from exc


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; not every platform can open a directory, which is fine."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
