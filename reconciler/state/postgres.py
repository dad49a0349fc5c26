"""State in PostgreSQL: one row per stack, every version kept, locks that die with their session.

Tables, in one schema (default ``reconciler``), created on first use by the
first user with the right to create them (a DBA may create them instead: a
role that can only read and write rows works once they exist):

``schema_version``
    one row, the version of these tables (:data:`SCHEMA_VERSION`). Older
    tables are migrated on first use; newer ones are refused with a message
    saying to upgrade reconciler, and left untouched.
``states``
    one row per stack (keyed by the stack's ``stack:`` name): lineage, serial
    and the document as canonical, checksummed JSON text.
``state_history``
    one row per write: serial, lineage, the document, who wrote it, when, and
    the command that held the lock. The newest ``history_keep`` are kept. The
    document is stored gzip-compressed in ``document_gz`` (bytea, stored
    without PostgreSQL's own compression; see
    :func:`reconciler.state.history.compress`); rows written by schema
    version 1 hold it as text in ``document``, are still read, and are
    converted a few per write.
``locks``
    who holds a stack's lock (:class:`LockInfo`) and the database session
    (server pid) holding it. A row counts only while that session holds the
    advisory lock: a row left by a killed process is ignored and overwritten.

Writes are one transaction each: lock the stack's row (``SELECT ... FOR
UPDATE``), compare lineage and serial, update it, append to the history.
Writers of the same serial: exactly one wins, the others get ``StateError``.

The lock is ``pg_try_advisory_lock`` keyed by a hash of schema and stack, on
a connection dedicated to it and held for the whole plan or apply. It is a
*session* lock: when the process dies its connection closes and the server
releases the lock, so a killed run never leaves a stale lock behind. While it
is held, this backend object reads and writes through that same connection,
so a run whose session was lost (network, ``force-unlock``) fails at its next
write instead of going on unlocked. ``force_unlock`` ends the session holding
the lock (``pg_terminate_backend``: the only way to free a session lock from
outside, e.g. after a client host vanished without closing its connection).

The DSN is a secret: it is kept private, never part of :meth:`describe`,
``repr`` or any message, and driver error texts are scrubbed of it and of its
password before they are shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString
from urllib.parse import quote, quote_plus

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from reconciler.errors import LockError, StateError
from reconciler.state.backend import LockInfo
from reconciler.state.document import StateDoc, utc_timestamp
from reconciler.state.history import (
    HISTORY_KEEP,
    UNKNOWN_COMMAND,
    Version,
    check_replaces,
    compress,
    decompress,
    missing_version,
)

SCHEMA_VERSION = 2
"""The version of the tables this reconciler creates, and the newest it uses."""

DEFAULT_SCHEMA = "reconciler"
DSN_ENV = "RECONCILER_PG_DSN"
"""The environment variable that conventionally holds the DSN (``{{ env.RECONCILER_PG_DSN }}``)."""

SCHEMA_RULE = "1-63 characters a-z, 0-9 and '_', starting with a letter or '_'"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

Connection = psycopg.Connection[TupleRow]

# Each migration brings the tables from the previous version to its own.
_MIGRATIONS: dict[int, tuple[LiteralString, ...]] = {
    1: (
        "CREATE SCHEMA IF NOT EXISTS {s}",
        """CREATE TABLE IF NOT EXISTS {s}.schema_version (
               singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
               version integer NOT NULL,
               migrated_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE IF NOT EXISTS {s}.states (
               stack text PRIMARY KEY,
               lineage text NOT NULL,
               serial bigint NOT NULL CHECK (serial >= 0),
               document text NOT NULL,
               updated_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE IF NOT EXISTS {s}.state_history (
               id bigserial PRIMARY KEY,
               stack text NOT NULL,
               serial bigint NOT NULL,
               lineage text NOT NULL,
               document text NOT NULL,
               who text NOT NULL,
               command text NOT NULL,
               written_at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX IF NOT EXISTS state_history_stack_serial ON {s}.state_history (stack, serial)",
        """CREATE TABLE IF NOT EXISTS {s}.locks (
               stack text PRIMARY KEY,
               id text NOT NULL,
               who text NOT NULL,
               pid integer NOT NULL,
               command text NOT NULL,
               since text NOT NULL,
               session_pid integer NOT NULL)""",
    ),
    # history documents compressed (one transaction, like every migration; old rows stay readable)
    2: (
        "ALTER TABLE {s}.state_history ADD COLUMN IF NOT EXISTS document_gz bytea",
        "ALTER TABLE {s}.state_history ALTER COLUMN document DROP NOT NULL",
        "ALTER TABLE {s}.state_history ALTER COLUMN document_gz SET STORAGE EXTERNAL",
    ),
}

_CONVERT_PER_WRITE = 8
"""Uncompressed history rows (schema version 1) converted per write."""

# The session holding the stack's advisory lock, and its lock record if it wrote one.
_HOLDER: LiteralString = """
    SELECT h.pid, l.id, l.who, l.pid, l.command, l.since
      FROM (SELECT pid FROM pg_catalog.pg_locks
             WHERE locktype = 'advisory' AND granted AND objsubid = 1
               AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
               AND classid::bigint = %s AND objid::bigint = %s) AS h
      LEFT JOIN {s}.locks AS l ON l.stack = %s AND l.session_pid = h.pid
"""


@dataclass
class _Held:
    """The connection holding this object's lock, and the lock record."""

    conn: Connection
    info: LockInfo


class PostgresBackend:
    """State of one stack in PostgreSQL. See the module docstring for tables and locking.

    ``stack`` is the row key (the stack's ``stack:`` name, so that every
    checkout of the stack shares one state); ``stack_file`` is what messages
    tell the user to pass to ``reconciler`` commands (defaults to ``stack``).
    ``history_keep`` bounds the versions kept per stack (``None``: all).
    """

    def __init__(
        self,
        dsn: str,
        *,
        stack: str,
        schema: str = DEFAULT_SCHEMA,
        stack_file: str | None = None,
        poll_interval: float = 0.25,
        connect_timeout: float = 10.0,
        history_keep: int | None = HISTORY_KEEP,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise StateError(f"postgres backend schema {schema!r}: must be {SCHEMA_RULE}")
        self._dsn = dsn
        self._params = _parse_dsn(dsn)
        self._secrets = _secrets_of(dsn, self._params)
        self.stack = stack
        self.schema = schema
        self.stack_file = stack_file if stack_file is not None else stack
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self.history_keep = history_keep
        self._key = _lock_key(schema, stack)
        self._who = LockInfo.current("").who
        self._held: _Held | None = None
        self._mutex = threading.RLock()
        self._ready = False

    def describe(self) -> str:
        return f"PostgreSQL state of stack {self.stack!r} (schema {self.schema})"

    def check_writable(self) -> None:
        """Reach the database and its tables (a write is one transaction there: nothing to probe on disk)."""
        self.read()

    def __repr__(self) -> str:  # never the DSN
        return f"PostgresBackend(stack={self.stack!r}, schema={self.schema!r})"

    # -- the document -------------------------------------------------------------------

    def read(self) -> StateDoc | None:
        with self._session() as conn, self._errors("read", conn):
            row = conn.execute(self._q("SELECT document FROM {s}.states WHERE stack = %s"), [self.stack])
            found = row.fetchone()
        if found is None:
            return None
        return StateDoc.from_json(found[0], self.describe(), backup=self._restore_hint())

    def write(self, doc: StateDoc) -> None:
        text = doc.to_json()
        with self._session() as conn, self._errors("write", conn), conn.transaction():
            stored = self._stored_for_update(conn)
            if stored is None:
                self._insert(conn, doc, text)
            else:
                lineage, serial = stored
                if doc.lineage != lineage:
                    raise StateError(
                        f"refusing to write state of stack {doc.stack!r} (lineage {doc.lineage}) over "
                        f"{self.describe()}, which holds a different state (lineage {lineage}); check "
                        "the stack's backend block (schema) and its `stack:` name"
                    )
                if doc.serial <= serial:
                    raise StateError(
                        f"refusing to write serial {doc.serial} over {self.describe()} at serial "
                        f"{serial}: the state changed since it was read (another run wrote it); plan again"
                    )
                self._update(conn, doc, text)
            self._append_history(conn, doc, text)

    def replace(self, doc: StateDoc, *, over_serial: int | None) -> None:
        text = doc.to_json()
        with self._session() as conn, self._errors("write", conn), conn.transaction():
            stored = self._stored_for_update(conn)
            check_replaces(self.describe(), stored[1] if stored else None, doc, over_serial)
            if stored is None:
                self._insert(conn, doc, text)
            else:
                self._update(conn, doc, text)
            self._append_history(conn, doc, text)

    def _stored_for_update(self, conn: Connection) -> tuple[str, int] | None:
        query = self._q("SELECT lineage, serial FROM {s}.states WHERE stack = %s FOR UPDATE")
        row = conn.execute(query, [self.stack]).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def _insert(self, conn: Connection, doc: StateDoc, text: str) -> None:
        inserted = conn.execute(
            self._q(
                "INSERT INTO {s}.states (stack, lineage, serial, document) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (stack) DO NOTHING"
            ),
            [self.stack, doc.lineage, doc.serial, text],
        )
        if inserted.rowcount != 1:  # another writer created the row since we looked
            raise StateError(
                f"refusing to write serial {doc.serial} over {self.describe()}: the state changed "
                "since it was read (another run wrote it); plan again"
            )

    def _update(self, conn: Connection, doc: StateDoc, text: str) -> None:
        conn.execute(
            self._q(
                "UPDATE {s}.states SET lineage = %s, serial = %s, document = %s, updated_at = now() "
                "WHERE stack = %s"
            ),
            [doc.lineage, doc.serial, text, self.stack],
        )

    def _append_history(self, conn: Connection, doc: StateDoc, text: str) -> None:
        held = self._held
        who, command = (held.info.who, held.info.command) if held else (self._who, UNKNOWN_COMMAND)
        conn.execute(
            self._q(
                "INSERT INTO {s}.state_history (stack, serial, lineage, document_gz, who, command) "
                "VALUES (%s, %s, %s, %s, %s, %s)"
            ),
            [self.stack, doc.serial, doc.lineage, compress(text.encode("utf-8")), who, command],
        )
        if self.history_keep is not None:  # the newest history_keep rows of this stack stay
            conn.execute(
                self._q(
                    "DELETE FROM {s}.state_history WHERE stack = %s AND id <= ("
                    "SELECT id FROM {s}.state_history WHERE stack = %s ORDER BY id DESC OFFSET %s LIMIT 1)"
                ),
                [self.stack, self.stack, max(self.history_keep, 1)],
            )
        legacy = conn.execute(
            self._q(
                "SELECT id, document FROM {s}.state_history WHERE stack = %s AND document IS NOT NULL "
                "ORDER BY id DESC LIMIT %s"
            ),
            [self.stack, _CONVERT_PER_WRITE],
        ).fetchall()
        for row_id, old_text in legacy:
            conn.execute(
                self._q("UPDATE {s}.state_history SET document_gz = %s, document = NULL WHERE id = %s"),
                [compress(str(old_text).encode("utf-8")), row_id],
            )

    # -- history ------------------------------------------------------------------------

    def history(self, limit: int | None = None) -> tuple[Version, ...]:
        with self._session() as conn, self._errors("read the history of", conn):
            rows = conn.execute(
                self._q(
                    "SELECT serial, lineage, written_at, who, command FROM {s}.state_history "
                    "WHERE stack = %s ORDER BY id DESC LIMIT %s"
                ),
                [self.stack, limit],
            ).fetchall()
        return tuple(
            Version(
                serial=int(serial),
                lineage=str(lineage),
                written_at=utc_timestamp(written_at) if isinstance(written_at, datetime) else str(written_at),
                who=str(who),
                command=str(command),
            )
            for serial, lineage, written_at, who, command in rows
        )

    def version(self, serial: int) -> StateDoc:
        with self._session() as conn, self._errors("read the history of", conn):
            row = conn.execute(
                self._q(
                    "SELECT document, document_gz FROM {s}.state_history WHERE stack = %s AND serial = %s "
                    "ORDER BY id DESC LIMIT 1"
                ),
                [self.stack, serial],
            ).fetchone()
        if row is None:
            raise missing_version(serial, self.describe(), self.stack_file)
        where = f"{self.describe()}, version {serial}"
        text = str(row[0]) if row[1] is None else decompress(bytes(row[1]), where)
        return StateDoc.from_json(text, where, backup=self._restore_hint())

    # -- the lock -----------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, command: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        """Hold the state lock for ``command``; see :class:`~reconciler.state.backend.Backend`."""
        info = LockInfo.current(command)
        conn = self._connect(f"reconciler lock: {command}")
        try:
            self._ensure_schema(conn)
            self._acquire(conn, info, timeout)
        except BaseException:
            conn.close()
            raise
        with self._mutex:
            outer, self._held = self._held, _Held(conn, info)
        try:
            yield info
        finally:
            with self._mutex:
                if self._held is not None and self._held.info.id == info.id:
                    self._held = outer
            self._release(conn, info)

    def _acquire(self, conn: Connection, info: LockInfo, timeout: float) -> None:
        started = time.monotonic()
        deadline = started + max(timeout, 0.0)
        pause = min(self.poll_interval, 0.05)
        classid, objid = _halves(self._key)
        vanished = 0
        while True:
            with self._errors("lock", conn):
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", [self._key]).fetchone()
                if got is not None and got[0]:
                    conn.execute(
                        self._q(
                            "INSERT INTO {s}.locks (stack, id, who, pid, command, since, session_pid) "
                            "VALUES (%s, %s, %s, %s, %s, %s, pg_backend_pid()) ON CONFLICT (stack) DO UPDATE "
                            "SET id = excluded.id, who = excluded.who, pid = excluded.pid, "
                            "command = excluded.command, since = excluded.since, "
                            "session_pid = excluded.session_pid"
                        ),
                        [self.stack, info.id, info.who, info.pid, info.command, info.since],
                    )
                    return
                holder = self._holder(conn, classid, objid)
            if holder is None:  # released between our attempt and our look: try again at once
                vanished += 1
                if vanished > 1000:
                    raise LockError(f"could not take the lock on {self.describe()}: it keeps changing")
                continue
            now = time.monotonic()
            if now >= deadline:
                waited = f" (waited {now - started:.1f}s)" if timeout > 0 else ""
                raise LockError(
                    f"state {self.describe()} is {holder.describe()}{waited}; wait for that run to "
                    "finish and try again (a run that was killed holds no lock: its session ended with it)"
                )
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, self.poll_interval)

    def _holder(self, conn: Connection, classid: int, objid: int) -> LockInfo | None:
        """Who holds the advisory lock now; ``None`` if nobody does."""
        for _ in range(20):  # the holder records itself just after it took the lock
            row = conn.execute(self._q(_HOLDER), [classid, objid, self.stack]).fetchone()
            if row is None:
                return None
            session_pid, lock_id, who, pid, command, since = row
            if lock_id is not None:
                return LockInfo(id=lock_id, who=who, pid=int(pid), command=command, since=since)
            time.sleep(0.05)
        return self._session_info(conn, int(session_pid))

    def _session_info(self, conn: Connection, session_pid: int) -> LockInfo:
        """A holder that recorded nothing, described from the server's view of its session."""
        row = conn.execute(
            "SELECT usename, client_addr::text, application_name, backend_start "
            "FROM pg_catalog.pg_stat_activity WHERE pid = %s",
            [session_pid],
        ).fetchone()
        if row is None:
            return LockInfo.unknown()
        user, address, application, started = row
        return LockInfo(
            id=f"session-{session_pid}",
            who=f"{user or 'unknown'}@{address or 'local socket'} (database session {session_pid})",
            pid=0,
            command=application or "unknown",
            since=utc_timestamp(started) if isinstance(started, datetime) else "unknown",
        )

    def _release(self, conn: Connection, info: LockInfo) -> None:
        try:
            if not conn.closed:
                mine = self._q("DELETE FROM {s}.locks WHERE stack = %s AND id = %s")
                conn.execute(mine, [self.stack, info.id])
                conn.execute("SELECT pg_advisory_unlock(%s)", [self._key])
        except psycopg.Error:
            pass  # the session is gone, and its lock with it
        finally:
            conn.close()

    def lock_holder(self) -> tuple[LockInfo, bool] | None:
        """Who holds the lock and whether it is stale (never: an advisory lock dies with its session)."""
        classid, objid = _halves(self._key)
        conn = self._connect("reconciler force-unlock")
        try:
            self._ensure_schema(conn)
            with self._errors("unlock", conn):
                holder = self._holder(conn, classid, objid)
        finally:
            conn.close()
        return None if holder is None else (holder, False)

    def force_unlock(self) -> LockInfo | None:
        """End the session holding the lock (if any) and clear its record; return who held it."""
        classid, objid = _halves(self._key)
        conn = self._connect("reconciler force-unlock")
        try:
            self._ensure_schema(conn)
            with self._errors("unlock", conn):
                holder = self._holder(conn, classid, objid)
                session = conn.execute(self._q(_HOLDER), [classid, objid, self.stack]).fetchone()
                if session is not None:
                    self._terminate(conn, int(session[0]))
                    deadline = time.monotonic() + 10.0
                    while conn.execute(self._q(_HOLDER), [classid, objid, self.stack]).fetchone():
                        if time.monotonic() >= deadline:
                            raise StateError(
                                f"ended database session {session[0]}, but the lock on {self.describe()} "
                                "is still held after 10s; try again"
                            )
                        time.sleep(0.05)
                # a record left by a killed run (whose lock died with it) is cleared too
                conn.execute(self._q("DELETE FROM {s}.locks WHERE stack = %s"), [self.stack])
        finally:
            conn.close()
        return holder

    def _terminate(self, conn: Connection, session_pid: int) -> None:
        try:
            conn.execute("SELECT pg_terminate_backend(%s)", [session_pid])
        except psycopg.errors.InsufficientPrivilege:
            raise StateError(
                f"the lock on {self.describe()} is held by database session {session_pid}, which this "
                "database role may not end; a role with pg_signal_backend (or the same role) can run "
                f"`SELECT pg_terminate_backend({session_pid})`"
            ) from None

    # -- connections --------------------------------------------------------------------

    def _q(self, text: LiteralString) -> sql.Composed:
        return sql.SQL(text).format(s=sql.Identifier(self.schema))

    @contextlib.contextmanager
    def _session(self) -> Iterator[Connection]:
        """The lock's connection while this object holds the lock, else a short-lived one."""
        with self._mutex:
            held = self._held
            if held is not None:
                yield held.conn
                return
        conn = self._connect("reconciler")
        try:
            self._ensure_schema(conn)
            yield conn
        finally:
            conn.close()

    def _connect(self, purpose: str) -> Connection:
        extra: dict[str, Any] = {"autocommit": True}
        defaults = {
            "application_name": purpose[:63],
            "connect_timeout": max(1, round(self.connect_timeout)),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        extra.update({k: v for k, v in defaults.items() if k not in self._params})
        try:
            return psycopg.connect(self._dsn, **extra)
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to the PostgreSQL state backend for stack {self.stack!r}: "
                f"{self._scrub(exc)}; check the backend's dsn and that the server is running"
            ) from None

    def _ensure_schema(self, conn: Connection) -> None:
        """Create or migrate the tables once per object; refuse tables newer than this tool."""
        if self._ready:
            return
        with self._errors("prepare the tables of", conn):
            found = self._schema_version(conn)
            if found != SCHEMA_VERSION:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [_migration_key(self.schema)])
                    found = self._schema_version(conn)  # another process may have done it meanwhile
                    for version in range((found or 0) + 1, SCHEMA_VERSION + 1):
                        for statement in _MIGRATIONS[version]:
                            conn.execute(self._q(statement))
                        conn.execute(
                            self._q(
                                "INSERT INTO {s}.schema_version (version) VALUES (%s) "
                                "ON CONFLICT (singleton) "
                                "DO UPDATE SET version = excluded.version, migrated_at = now()"
                            ),
                            [version],
                        )
        self._ready = True

    def _schema_version(self, conn: Connection) -> int | None:
        table = f"{self.schema}.schema_version"
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute(self._q("SELECT max(version) FROM {s}.schema_version")).fetchone()
        version = int(row[0]) if row and row[0] is not None else None
        if version is not None and version > SCHEMA_VERSION:
            raise StateError(
                f"the reconciler tables in PostgreSQL schema {self.schema!r} are at version {version}, "
                f"newer than this reconciler understands ({SCHEMA_VERSION}): a newer reconciler has used "
                "them; upgrade reconciler (nothing was read or changed)"
            )
        return version

    @contextlib.contextmanager
    def _errors(self, action: str, conn: Connection) -> Iterator[None]:
        """Turn driver errors into ``StateError`` with a scrubbed message."""
        try:
            yield
        except psycopg.Error as exc:
            text = self._scrub(exc)
            held = self._held
            if held is not None and held.conn is conn and (conn.closed or conn.broken):
                raise StateError(
                    f"lost the database session holding the lock on {self.describe()} ({text}); another "
                    "run may hold the lock now (was it force-unlocked?), so this run stops here; "
                    "nothing more was written. Run plan again"
                ) from None
            raise StateError(f"cannot {action} {self.describe()}: {text}") from None

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc).strip() or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())

    def _restore_hint(self) -> str:
        return (
            f"with `reconciler state restore {self.stack_file} SERIAL` "
            f"(list versions with `reconciler state history {self.stack_file}`)"
        )


def _parse_dsn(dsn: str) -> dict[str, Any]:
    try:
        return dict(conninfo_to_dict(dsn))
    except psycopg.Error:
        raise StateError(
            "the postgres backend's dsn is not a valid connection string (not shown: it may hold a "
            "password); expected e.g. postgresql://USER@HOST:5432/DBNAME or 'host=HOST dbname=DBNAME'"
        ) from None


def _secrets_of(dsn: str, params: dict[str, Any]) -> tuple[str, ...]:
    """Texts that must never appear in a message: the DSN and its password in every spelling."""
    found = {dsn.strip()}
    password = params.get("password")
    if password:
        found |= {str(password), quote(str(password), safe=""), quote_plus(str(password))}
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def _lock_key(schema: str, stack: str) -> int:
    """The advisory lock key of one stack: 64 bits of sha256 of schema and stack, signed."""
    digest = hashlib.sha256(f"reconciler-state-lock\0{schema}\0{stack}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _migration_key(schema: str) -> int:
    digest = hashlib.sha256(f"reconciler-schema-migration\0{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _halves(key: int) -> tuple[int, int]:
    """``pg_locks`` shows a bigint advisory key as (classid, objid): its high and low 32 bits."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF
