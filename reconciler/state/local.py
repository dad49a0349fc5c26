"""State in a local JSON file, with a lock file beside it.

Files, for a state path ``P`` (by default ``state/<stack>.json``):

``P``
    the current document (mode 0600), replaced atomically on every write:
    temp file in the same directory, fsync, ``os.replace``, fsync directory.
``P.backup``
    the previous version (mode 0600). It is a hard link to the replaced file
    (no copy, no moment without ``P``), or a copy where links are unsupported.
``P.lock``
    the lock record (:class:`LockInfo` as JSON) while a run holds the lock.
    The holder also keeps an ``fcntl.flock`` on it; the kernel drops that when
    the process dies, so a lock file nobody flocks is *stale*. Stale locks are
    reported, never taken over: a person runs ``reconciler force-unlock STACK``.

Compare-and-set: a write takes a short ``flock`` on the state directory, reads
the stored lineage and serial, and replaces the file only if the new document
continues it. That makes concurrent writers safe without the run lock.

Writes are O(size of the document). A later append-only journal (``P.journal``,
one line per finished step) can sit beside ``P`` without changing this layout.
POSIX only (``fcntl``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from reconciler.errors import LockError, StateError
from reconciler.state.backend import LockInfo
from reconciler.state.document import StateDoc

_FILE_MODE = 0o600
_DIR_MODE = 0o700


class LocalBackend:
    """State of one stack in a local file. See the module docstring for the layout.

    ``stack`` is what messages tell the user to pass to ``reconciler
    force-unlock STACK``: give what that command takes (the stack file path);
    it defaults to the state file's stem. ``write_timeout`` bounds the wait for the
    brief directory lock a write takes (another write in progress).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        stack: str | None = None,
        poll_interval: float = 0.1,
        write_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.stack = stack if stack is not None else self.path.stem
        self.poll_interval = poll_interval
        self.write_timeout = write_timeout

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".backup")

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def describe(self) -> str:
        return f"local file {self.path}"

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.path)!r}, stack={self.stack!r})"

    # -- the document -------------------------------------------------------------------

    def read(self) -> StateDoc | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise StateError(
                f"state file {self.path} is corrupted (not UTF-8 text); restore the backup {self.backup_path}"
            ) from None
        return StateDoc.from_json(text, str(self.path), backup=str(self.backup_path))

    def write(self, doc: StateDoc) -> None:
        data = doc.to_json().encode("utf-8")
        self._make_parent()
        with self._directory_locked() as dir_fd:
            stored = self.read()
            if stored is not None:
                self._check_continues(stored, doc)
                self._keep_backup()
            self._replace(self.path, data)
            os.fsync(dir_fd)

    def _check_continues(self, stored: StateDoc, doc: StateDoc) -> None:
        if doc.lineage != stored.lineage:
            raise StateError(
                f"refusing to write state of stack {doc.stack!r} (lineage {doc.lineage}) over "
                f"{self.describe()}, which holds a different state (stack {stored.stack!r}, "
                f"lineage {stored.lineage}); check the stack and state path"
            )
        if doc.serial <= stored.serial:
            raise StateError(
                f"refusing to write serial {doc.serial} over {self.describe()} at serial "
                f"{stored.serial}: the state changed since it was read (another run wrote it); "
                "plan again"
            )

    def _keep_backup(self) -> None:
        """Make ``P.backup`` the current ``P`` (which is about to be replaced)."""
        temp = self._temp_name(self.backup_path)
        try:
            os.link(self.path, temp)
        except FileNotFoundError:  # deleted by hand since we read it: nothing to keep
            return
        except OSError:  # hard links unsupported here: copy instead
            self._replace(self.backup_path, self.path.read_bytes())
            return
        try:
            os.chmod(temp, _FILE_MODE)
            os.replace(temp, self.backup_path)
        except BaseException:
            _unlink_quietly(temp)
            raise

    def _replace(self, target: Path, data: bytes) -> None:
        """Atomically make ``target`` hold ``data`` (mode 0600). The caller fsyncs the directory."""
        temp = self._temp_name(target)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        try:
            try:
                os.fchmod(fd, _FILE_MODE)  # exactly 0600 whatever the umask
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, target)
        except BaseException:
            _unlink_quietly(temp)
            raise

    @staticmethod
    def _temp_name(target: Path) -> Path:
        return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")

    def _make_parent(self) -> None:
        missing: list[Path] = []
        parent = self.path.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, _DIR_MODE)

    @contextlib.contextmanager
    def _directory_locked(self) -> Iterator[int]:
        """Hold an exclusive flock on the state directory for one read-compare-replace."""
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            deadline = time.monotonic() + self.write_timeout
            while True:
                try:
                    fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateError(
                            f"timed out after {self.write_timeout:g}s waiting for another write to "
                            f"{self.describe()} to finish"
                        ) from None
                    time.sleep(0.005)
            yield dir_fd
        finally:
            os.close(dir_fd)  # also releases the flock

    # -- the lock -----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, command: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        """Hold the state lock for ``command``; see :class:`~reconciler.state.backend.Backend`."""
        info = LockInfo.current(command)
        self._make_parent()
        fd = self._acquire(info, timeout)
        try:
            yield info
        finally:
            self._release(fd)

    def _acquire(self, info: LockInfo, timeout: float) -> int:
        # The record is written and flocked under a temp name, then linked into
        # place: the lock file never exists empty or unflocked, so anyone who
        # finds it unflocked knows its holder is gone.
        temp = self._temp_name(self.lock_path)
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(fd, json.dumps(info.to_dict(), sort_keys=True).encode("utf-8") + b"\n")
            os.fsync(fd)
            started = time.monotonic()
            deadline = started + max(timeout, 0.0)
            pause = min(self.poll_interval, 0.05)
            vanished = 0
            while True:
                try:
                    os.link(temp, self.lock_path)
                except FileExistsError:
                    pass
                else:
                    _unlink_quietly(temp)
                    _fsync_directory(self.lock_path.parent)
                    return fd
                holder = self._holder()
                if holder is None:  # released between our attempt and our look: try again at once
                    vanished += 1
                    if vanished > 1000:  # someone locks and unlocks in a tight loop; never spin forever
                        raise LockError(f"could not take the lock on {self.describe()}: it keeps changing")
                    continue
                held_by, stale = holder
                if stale:
                    raise LockError(
                        f"state {self.describe()} has a stale lock: {held_by.describe()}; that process "
                        f"is gone and the lock was never released. If no one else is running "
                        f"reconciler on stack {self.stack!r}, run `reconciler force-unlock {self.stack}`"
                    )
                now = time.monotonic()
                if now >= deadline:
                    waited = f" (waited {now - started:.1f}s)" if timeout > 0 else ""
                    raise LockError(
                        f"state {self.describe()} is {held_by.describe()}{waited}; wait for that run "
                        "to finish and try again"
                    )
                time.sleep(min(pause, deadline - now))
                pause = min(pause * 2, self.poll_interval)
        except BaseException:
            os.close(fd)
            raise
        finally:
            _unlink_quietly(temp)

    def _holder(self) -> tuple[LockInfo, bool] | None:
        """Who holds the lock and whether it is stale; ``None`` if there is no lock file."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                stale = False
            else:
                # Nobody flocks it: either its holder died, or it released the
                # lock (unlinked the file) after we opened it.
                if not _same_file(fd, self.lock_path):
                    return None
                stale = True
            return _parse_lock(_read_all(fd)), stale
        finally:
            os.close(fd)

    def _release(self, fd: int) -> None:
        try:
            if _same_file(fd, self.lock_path):  # not if someone force-unlocked and relocked
                _unlink_quietly(self.lock_path)
        finally:
            os.close(fd)

    def force_unlock(self) -> LockInfo | None:
        try:
            raw = self.lock_path.read_bytes()
        except FileNotFoundError:
            return None
        _unlink_quietly(self.lock_path)
        return _parse_lock(raw)


def _parse_lock(raw: bytes) -> LockInfo:
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return LockInfo.from_dict(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return LockInfo.unknown()


def _same_file(fd: int, path: Path) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _fsync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
