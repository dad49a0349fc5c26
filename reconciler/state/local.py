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
``P.history/`` (only with ``history_keep``)
    earlier versions for ``reconciler state history|restore``: ``<serial>.json.gz``
    (mode 0600, the document as written, gzip-compressed: see
    :func:`reconciler.state.history.compress`; temp file, fsync, rename) and
    ``log.jsonl``, one line per write (serial, lineage, who, when, command).
    Kept best effort after the write itself succeeded; the newest
    ``history_keep`` versions are kept (by count). ``<serial>.json`` files
    (uncompressed, written by earlier releases) are still read, and converted
    to ``.json.gz`` a few per write.

``P.journal`` (only for documents of ``journal_threshold`` bytes and more)
    the changes written since ``P`` was last written in full, one line per
    write (:mod:`reconciler.state.journal`: the resources added, changed and
    removed, the apply-journal entries, the outputs, the serial, a checksum),
    appended and ``fdatasync``-ed. The state is ``P`` with every line
    replayed; a torn last line (the write that never returned) is ignored,
    any other bad line refuses with a StateError naming the file. Recording
    one step therefore costs what the step changed, not the size of the state.
    *Compaction* writes the whole document to ``P`` the old way (so
    ``P.backup`` and ``P.history/`` see only full writes) and then removes
    ``P.journal``: when the journal outgrows ``P`` (and ``journal_limit``),
    when the lock is released, and on :meth:`LocalBackend.compact`. A
    compaction that dies between the two leaves lines ``P`` already holds;
    replay skips them by serial.

Compare-and-set: a write takes a short ``flock`` on the state directory, reads
the stored lineage and serial, and replaces the file only if the new document
continues it. That makes concurrent writers safe without the run lock. An
appending writer reads nothing: it checks that ``P`` and ``P.journal`` are
the very files it last read or wrote (inode, size, modification time) and
compares with the document it remembers; anything else (another process
wrote) sends it down the full read-compare-replace path.

POSIX only (``fcntl``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path

from reconciler.errors import LockError, StateError
from reconciler.state import journal
from reconciler.state.backend import LockInfo
from reconciler.state.document import StateDoc, utc_timestamp
from reconciler.state.history import (
    UNKNOWN_COMMAND,
    Version,
    check_replaces,
    compress,
    decompress,
    missing_version,
)

_LOG = logging.getLogger(__name__)
_HOST = socket.gethostname()

_FILE_MODE = 0o600
_DIR_MODE = 0o700
_READ_ATTEMPTS = 5
_COMPRESSED = ".json.gz"  # a kept version, P.history/<serial>.json.gz
_LEGACY = ".json"  # a kept version written uncompressed by an earlier release
_CONVERT_PER_WRITE = 8  # uncompressed versions converted per history write


class _Known:
    """The stored state as this backend last read or wrote it, and the files it came from.

    The descriptors stay open: an inode cannot be reused while it is open, so
    a path that still names the same inode, with the size and modification
    time seen then, is the very file this backend read or wrote.
    """

    def __init__(self, doc: StateDoc, base_fd: int, journal_fd: int | None, journal_size: int) -> None:
        self.doc = doc
        self.base_fd = base_fd
        self.base = _identity(os.fstat(base_fd))
        self.journal_fd = journal_fd
        self.journal_size = journal_size
        self.journal_writable = False
        self._fds = [fd for fd in (base_fd, journal_fd) if fd is not None]
        self._finalizer = weakref.finalize(self, _close_all, self._fds)

    @property
    def base_size(self) -> int:
        return self.base[2]

    def writable_journal(self, path: Path) -> int:
        """A descriptor that appends to ``path``, which is created if missing."""
        if self.journal_fd is None or not self.journal_writable:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)
            if self.journal_fd is not None:
                self._fds.remove(self.journal_fd)
                os.close(self.journal_fd)
            self._fds.append(fd)
            self.journal_fd, self.journal_writable = fd, True
        return self.journal_fd

    def close(self) -> None:
        self._finalizer()


class LocalBackend:
    """State of one stack in a local file. See the module docstring for the layout.

    ``stack`` is what messages tell the user to pass to ``reconciler
    force-unlock STACK``: give what that command takes (the stack file path);
    it defaults to the state file's stem. ``write_timeout`` bounds the wait for the
    brief directory lock a write takes (another write in progress).
    ``history_keep`` turns on ``P.history/`` and bounds the versions kept there
    (``reconciler.operations.backend_for`` turns it on; off by default).
    ``journal_threshold``: documents smaller than this many bytes are always
    written in full (cheap, and the backup is then the previous version);
    ``journal_limit``: the journal is compacted once it is larger than ``P``
    and than this many bytes.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        stack: str | None = None,
        poll_interval: float = 0.1,
        write_timeout: float = 30.0,
        history_keep: int | None = None,
        journal_threshold: int = 64 * 1024,
        journal_limit: int = 1024 * 1024,
    ) -> None:
        self.path = Path(path)
        self.stack = stack if stack is not None else self.path.stem
        self.poll_interval = poll_interval
        self.write_timeout = write_timeout
        self.history_keep = history_keep
        self.journal_threshold = journal_threshold
        self.journal_limit = journal_limit
        self._held: LockInfo | None = None
        self._known: _Known | None = None  # see _Known; only ever set under our own reads and writes

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".backup")

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @property
    def journal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".journal")

    def describe(self) -> str:
        return f"local file {self.path}"

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.path)!r}, stack={self.stack!r})"

    # -- the document -------------------------------------------------------------------

    def read(self) -> StateDoc | None:
        """``P`` with ``P.journal`` replayed; read again if a compaction replaced ``P`` meanwhile."""
        for _ in range(_READ_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                self._forget()
                return None
            except OSError as exc:
                raise StateError(f"cannot read state file {self.path}: {exc.strerror or exc}") from None
            journal_fd: int | None = None
            try:
                raw = _read_all(fd)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise StateError(
                        f"state file {self.path} is corrupted (not UTF-8 text); "
                        f"restore the backup {self.backup_path}"
                    ) from None
                doc = StateDoc.from_json(text, str(self.path), backup=str(self.backup_path))
                journal_fd, lines = self._read_journal()
                if not _same_file(fd, self.path):  # compacted between our two reads: again
                    continue
                doc = journal.replay(doc, lines, str(self.journal_path))
                self._forget()
                if lines.endswith(b"\n") or not lines:  # a torn tail must go before anything is appended
                    self._known = _Known(doc, fd, journal_fd, len(lines))
                    fd, journal_fd = -1, None  # now the _Known's
                return doc
            finally:
                _close_all([d for d in (fd, journal_fd) if d is not None and d >= 0])
        raise StateError(f"state file {self.path} kept changing while it was read; try again")

    def write(self, doc: StateDoc) -> None:
        self._make_parent()
        with self._directory_locked() as dir_fd:
            if self._append(doc):
                return
            data = doc.to_json().encode("utf-8")
            stored = self.read()
            if stored is not None:
                self._check_continues(stored, doc)
                self._keep_backup()
            self._replace(self.path, data)
            os.fsync(dir_fd)
            self._written_in_full(doc, dir_fd)
            self._record_history(doc, data)

    def compact(self) -> None:
        """Write the state in full and drop ``P.journal`` (nothing to do without a journal)."""
        if not self.journal_path.exists():
            return
        with self._directory_locked() as dir_fd:
            stored = self.read()
            if stored is None or not self.journal_path.exists():
                return
            self._keep_backup()
            data = stored.to_json().encode("utf-8")
            self._replace(self.path, data)
            os.fsync(dir_fd)
            self._written_in_full(stored, dir_fd)
            self._record_history(stored, data)

    # -- the journal --------------------------------------------------------------------

    def _append(self, doc: StateDoc) -> bool:
        """Record ``doc`` as one journal line, if it can be; whether it was. Under the directory lock."""
        known = self._known
        if known is None or known.base_size < self.journal_threshold:
            return False
        if not self._unchanged(known):
            self._forget()  # another writer was here: read everything again
            return False
        self._check_continues(known.doc, doc)
        if known.journal_size > max(self.journal_limit, known.base_size):
            return False  # compact: write in full
        line = journal.delta(known.doc, doc)
        if line is None:
            return False
        data = journal.encode(line)
        created = known.journal_fd is None
        try:
            fd = known.writable_journal(self.journal_path)
            _write_all(fd, data)
            _sync_data(fd)
            if created:  # a new file: make its name durable too
                _fsync_directory(self.journal_path.parent)
        except BaseException:
            self._forget()  # a torn line may be down: the next write reads and writes in full
            raise
        known.doc = doc
        known.journal_size += len(data)
        return True

    def _unchanged(self, known: _Known) -> bool:
        """Whether ``P`` and ``P.journal`` are still exactly the files ``known`` came from."""
        try:
            if _identity(os.stat(self.path)) != known.base:
                return False
            current = os.stat(self.journal_path)
        except FileNotFoundError:
            return known.journal_fd is None and not self.journal_path.exists() and self.path.exists()
        if known.journal_fd is None:
            return False
        mine = os.fstat(known.journal_fd)
        return (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino) and (
            current.st_size == known.journal_size
        )

    def _read_journal(self) -> tuple[int | None, bytes]:
        """An open descriptor of ``P.journal`` and its content (None and nothing when there is none)."""
        try:
            fd = os.open(self.journal_path, os.O_RDONLY)
        except FileNotFoundError:
            return None, b""
        except OSError as exc:
            raise StateError(
                f"cannot read state journal {self.journal_path}: {exc.strerror or exc}"
            ) from None
        try:
            return fd, _read_all(fd)
        except BaseException:
            os.close(fd)
            raise

    def _written_in_full(self, doc: StateDoc, dir_fd: int) -> None:
        """``P`` now holds all of ``doc``, durably: drop the journal and remember the new file."""
        self._forget()
        if self.journal_path.exists():
            _unlink_quietly(self.journal_path)
            os.fsync(dir_fd)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        self._known = _Known(doc, fd, None, 0)

    def _forget(self) -> None:
        if self._known is not None:
            self._known.close()
            self._known = None

    def _compact_quietly(self) -> None:
        """Compact at lock release; a failure leaves the journal, which is valid state."""
        with contextlib.suppress(StateError, OSError):
            self.compact()

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

    def check_writable(self) -> None:
        """Prove the state directory can be written (create it, then a temp file in it); else StateError.

        Called before the lock is taken and before the first platform change of
        an apply, so an unwritable state fails with the path and the OS reason
        while nothing has changed anywhere.
        """
        directory = self.path.parent
        try:
            self._make_parent()
            probe = self._temp_name(self.path)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            try:
                _write_all(fd, b"probe\n")
                os.fsync(fd)
            finally:
                os.close(fd)
                _unlink_quietly(probe)
            for existing in (self.path, self.journal_path):
                if existing.exists() and not os.access(existing, os.W_OK):
                    raise PermissionError(13, "Permission denied", str(existing))
        except OSError as exc:
            where = exc.filename if exc.filename is not None else directory
            raise StateError(
                f"{where} is not writable: [Errno {exc.errno}] {exc.strerror or exc}; state of "
                f"{self.describe()} cannot be recorded, so nothing was changed. Fix the path or its "
                "permissions and run again"
            ) from None

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
        self.check_writable()
        fd = self._acquire(info, timeout)
        self._held = info
        try:
            yield info
        finally:
            try:
                self._compact_quietly()
            finally:
                self._held = None
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
                here = held_by.host == _HOST
                if stale and here and self._take_over(temp):
                    gone = held_by.describe()
                    _LOG.warning("took over the lock of %s: its holder is gone (%s)", self.describe(), gone)
                    return fd
                now = time.monotonic()
                if now >= deadline:
                    waited = f" (waited {now - started:.1f}s)" if timeout > 0 else ""
                    if stale:  # only on another host: its process cannot be checked from here
                        advice = (
                            f"if that run is gone, run `reconciler force-unlock {self.stack} {held_by.id}`"
                        )
                    else:
                        advice = "wait for that run to finish and try again (or pass --lock-timeout)"
                    raise LockError(f"state {self.describe()} is {held_by.describe()}{waited}; {advice}")
                time.sleep(min(pause, deadline - now))
                pause = min(pause * 2, self.poll_interval)
        except BaseException:
            os.close(fd)
            raise
        finally:
            _unlink_quietly(temp)

    def _take_over(self, temp: Path) -> bool:
        """Replace a lock file nobody flocks by ours (``temp``, flocked); False if someone was faster.

        The stale file is flocked first: two runs taking over at once cannot
        both hold it, and the loser then finds the winner's (flocked) lock.
        """
        try:
            old = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if not _same_file(old, self.lock_path):  # replaced or released meanwhile
                return False
            os.replace(temp, self.lock_path)
            _fsync_directory(self.lock_path.parent)
            return True
        finally:
            os.close(old)

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

    def lock_holder(self) -> tuple[LockInfo, bool] | None:
        """Who holds the lock and whether it is stale (its holder is gone); None when unlocked."""
        return self._holder()

    def force_unlock(self) -> LockInfo | None:
        try:
            raw = self.lock_path.read_bytes()
        except FileNotFoundError:
            return None
        _unlink_quietly(self.lock_path)
        return _parse_lock(raw)

    # -- history (see reconciler.state.history.VersionedBackend) -------------------------

    @property
    def history_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".history")

    def _version_path(self, serial: int, suffix: str = _COMPRESSED) -> Path:
        return self.history_dir / f"{serial}{suffix}"

    def _record_history(self, doc: StateDoc, data: bytes) -> None:
        """Keep ``data`` (just written as ``doc``) as ``P.history/<serial>.json.gz``; under the dir lock."""
        if self.history_keep is None:
            return
        held = self._held
        entry = {
            "serial": doc.serial,
            "lineage": doc.lineage,
            "written_at": utc_timestamp(),
            "who": held.who if held else LockInfo.current("").who,
            "command": held.command if held else UNKNOWN_COMMAND,
        }
        with contextlib.suppress(OSError):  # best effort: the state itself is written already
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.history_dir, _DIR_MODE)
            self._replace(self._version_path(doc.serial), compress(data))
            _unlink_quietly(self._version_path(doc.serial, _LEGACY))  # an older copy of that serial
            _fsync_directory(self.history_dir)
            line = json.dumps(entry, sort_keys=True).encode("utf-8") + b"\n"
            fd = os.open(self.history_dir / "log.jsonl", os.O_RDWR | os.O_APPEND | os.O_CREAT, _FILE_MODE)
            try:
                size = os.fstat(fd).st_size
                torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"  # a crash cut the last line short
                _write_all(fd, b"\n" + line if torn else line)
            finally:
                os.close(fd)
            self._prune_history(max(self.history_keep, 1))
            if doc.serial % 64 == 0:
                self._compact_history_log()

    def _stored_versions(self) -> dict[int, set[str]]:
        """The serials with a file in ``P.history/``, each with its suffixes (``.json.gz``, ``.json``)."""
        found: dict[int, set[str]] = {}
        for name in os.listdir(self.history_dir):
            for suffix in (_COMPRESSED, _LEGACY):
                stem = name[: -len(suffix)]
                if name.endswith(suffix) and stem.isdigit():
                    found.setdefault(int(stem), set()).add(suffix)
                    break
        return found

    def _prune_history(self, keep: int) -> None:
        """Keep the newest ``keep`` versions; convert a few uncompressed ones. Under the directory lock."""
        stored = self._stored_versions()
        newest_first = sorted(stored, reverse=True)
        for serial in newest_first[keep:]:
            for suffix in stored[serial]:
                _unlink_quietly(self._version_path(serial, suffix))
        converted = 0
        for serial in newest_first[:keep]:
            if _LEGACY not in stored[serial] or converted >= _CONVERT_PER_WRITE:
                continue
            legacy = self._version_path(serial, _LEGACY)
            if _COMPRESSED not in stored[serial]:  # else a conversion died before the unlink
                try:
                    raw = legacy.read_bytes()
                except FileNotFoundError:
                    continue
                self._replace(self._version_path(serial), compress(raw))
                converted += 1
            _unlink_quietly(legacy)
        if converted:
            _fsync_directory(self.history_dir)

    def _compact_history_log(self) -> None:
        """Drop the log lines of versions no longer kept."""
        kept = self._history_entries()
        text = "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in kept)
        self._replace(self.history_dir / "log.jsonl", text.encode("utf-8"))

    def _is_kept(self, serial: int) -> bool:
        return any(self._version_path(serial, suffix).exists() for suffix in (_COMPRESSED, _LEGACY))

    def _history_entries(self) -> list[Version]:
        """Log entries whose version file is still kept, oldest first (the last write of a serial wins)."""
        try:
            lines = (self.history_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read the history of {self.describe()}: {exc}") from None
        by_serial: dict[int, Version] = {}
        for line in lines:
            try:
                data = json.loads(line)
                version = Version(
                    serial=int(data["serial"]),
                    lineage=str(data["lineage"]),
                    written_at=str(data["written_at"]),
                    who=str(data["who"]),
                    command=str(data["command"]),
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash; its version stays readable by serial
            by_serial.pop(version.serial, None)
            by_serial[version.serial] = version
        return [v for v in by_serial.values() if self._is_kept(v.serial)]

    def history(self, limit: int | None = None) -> tuple[Version, ...]:
        """Kept versions, newest first, at most ``limit``."""
        newest_first = self._history_entries()[::-1]
        return tuple(newest_first if limit is None else newest_first[: max(limit, 0)])

    def version(self, serial: int) -> StateDoc:
        """The version ``serial``: ``<serial>.json.gz``, else an uncompressed ``<serial>.json``."""
        compressed, legacy = self._version_path(serial), self._version_path(serial, _LEGACY)
        backup = f"another version from {self.history_dir}"
        for path in (compressed, legacy, compressed):  # the last: converted while we looked
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None
            if path == compressed:
                text = decompress(raw, str(path))
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise StateError(f"cannot read {path}: not UTF-8 text") from None
            return StateDoc.from_json(text, str(path), backup=backup)
        raise missing_version(serial, self.describe(), self.stack)

    def replace(self, doc: StateDoc, *, over_serial: int | None) -> None:
        """Write ``doc`` whatever its lineage, if the stored serial is still ``over_serial``."""
        data = doc.to_json().encode("utf-8")
        self._make_parent()
        with self._directory_locked() as dir_fd:
            stored = self.read()
            check_replaces(self.describe(), stored.serial if stored else None, doc, over_serial)
            if stored is not None:
                self._keep_backup()
            self._replace(self.path, data)
            os.fsync(dir_fd)
            self._written_in_full(doc, dir_fd)
            self._record_history(doc, data)


def _parse_lock(raw: bytes) -> LockInfo:
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return LockInfo.from_dict(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return LockInfo.unknown()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells one version of a file from another: device, inode, size, modification time."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _sync_data(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)  # the data and the size; not every platform has it
    sync(fd)


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
