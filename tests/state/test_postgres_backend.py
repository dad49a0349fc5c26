"""The PostgreSQL backend against a real server: the shared contract, then what only it has.

The server comes from ``tests/state/conftest.py`` (``RECONCILER_TEST_PG_DSN``
or a throwaway server from the installed binaries; skipped with a message
otherwise, failed under ``CI=true``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg import sql

import reconciler
from reconciler.errors import LockError, StateError
from reconciler.state import Backend, ResourceState, StateDoc
from reconciler.state.postgres import SCHEMA_VERSION, PostgresBackend, _lock_key

from .conftest import PG, stack_name
from .test_history_contract import HistoryContract
from .test_local_backend import BackendContract

SECRET = "pw-SECRET-7d1e"


class TestPostgresBackend(BackendContract, HistoryContract):
    @pytest.fixture(autouse=True)
    def _server(self, pg: PG) -> None:
        self.pg = pg

    def make_backend(self, tmp_path: Path) -> Backend:
        return self.pg.backend(stack_name(tmp_path), poll_interval=0.05)

    def backend_code(self, tmp_path: Path) -> str:
        return f"PostgresBackend({self.pg.dsn!r}, stack={stack_name(tmp_path)!r}, schema={self.pg.schema!r})"


@pytest.fixture
def fresh_schema(pg: PG) -> Iterator[str]:
    """A schema nobody used yet, dropped afterwards."""
    schema = f"{pg.schema}_{uuid.uuid4().hex[:6]}"
    try:
        yield schema
    finally:
        with pg.connect() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _tables(pg: PG, schema: str) -> set[str]:
    with pg.connect() as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        ).fetchall()
    return {r[0] for r in rows}


# -- tables and their version ------------------------------------------------------------------


def test_tables_are_created_on_first_use_with_their_own_version(pg: PG, fresh_schema: str) -> None:
    assert _tables(pg, fresh_schema) == set()
    backend = PostgresBackend(pg.dsn, stack="demo", schema=fresh_schema)
    assert backend.read() is None
    assert _tables(pg, fresh_schema) == {"schema_version", "states", "state_history", "locks"}
    with pg.connect() as conn:
        row = conn.execute(
            sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(fresh_schema))
        ).fetchall()
    assert row == [(SCHEMA_VERSION,)]


def test_tables_newer_than_the_tool_are_refused_and_left_alone(pg: PG, fresh_schema: str) -> None:
    doc = StateDoc.new("demo")
    PostgresBackend(pg.dsn, stack="demo", schema=fresh_schema).write(doc)
    with pg.connect() as conn:
        conn.execute(
            sql.SQL("UPDATE {}.schema_version SET version = %s").format(sql.Identifier(fresh_schema)),
            [SCHEMA_VERSION + 1],
        )
    backend = PostgresBackend(pg.dsn, stack="demo", schema=fresh_schema)
    for attempt in (backend.read, lambda: backend.write(doc.bumped()), lambda: backend.lock("x").__enter__()):
        with pytest.raises(StateError, match=rf"at version {SCHEMA_VERSION + 1}, newer.*upgrade reconciler"):
            attempt()
    with pg.connect() as conn:
        stored = conn.execute(
            sql.SQL("SELECT serial, document FROM {}.states").format(sql.Identifier(fresh_schema))
        ).fetchall()
    assert stored == [(0, doc.to_json())]


def test_first_use_by_racing_processes_creates_the_tables_once(pg: PG, fresh_schema: str) -> None:
    code = f"PostgresBackend({pg.dsn!r}, stack='demo', schema={fresh_schema!r})"
    root = str(Path(reconciler.__file__).resolve().parents[1])
    script = f"from reconciler.state.postgres import PostgresBackend\nprint({code}.read())"
    children = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=_env(root))
        for _ in range(4)
    ]
    assert [c.communicate(timeout=60)[0].strip() for c in children] == ["None"] * 4
    assert [c.returncode for c in children] == [0] * 4


def test_schema_names_are_checked(pg: PG) -> None:
    with pytest.raises(StateError, match="must be 1-63 characters a-z"):
        PostgresBackend(pg.dsn, stack="demo", schema='x"; DROP TABLE y; --')


def test_the_row_holds_the_canonical_checksummed_document(pg: PG, tmp_path: Path) -> None:
    backend = pg.backend(stack_name(tmp_path))
    doc = StateDoc.new("demo").with_resource(
        ResourceState(address="models.m", platform="fabric", kind="model", id="m-1")
    )
    backend.write(doc)
    with pg.connect() as conn:
        row = conn.execute(
            sql.SQL("SELECT lineage, serial, document FROM {}.states WHERE stack = %s").format(
                sql.Identifier(pg.schema)
            ),
            [backend.stack],
        ).fetchone()
    assert row == (doc.lineage, 0, doc.to_json())


def test_stacks_share_the_tables_but_not_state_or_lock(pg: PG, tmp_path: Path) -> None:
    one, two = pg.backend(stack_name(tmp_path / "one")), pg.backend(stack_name(tmp_path / "two"))
    one.write(StateDoc.new("one"))
    assert two.read() is None
    with one.lock("reconciler apply"), two.lock("reconciler apply"):
        two.write(StateDoc.new("two"))
    assert [v.serial for v in two.history()] == [0] and len(one.history()) == 1


# -- the lock --------------------------------------------------------------------------------


def test_a_killed_holder_leaves_no_lock_behind(pg: PG, tmp_path: Path) -> None:
    backend = pg.backend(stack_name(tmp_path))
    with _lock_in_subprocess(pg, backend.stack) as child:
        with pytest.raises(LockError) as caught, backend.lock("reconciler plan"):
            pass
        message = str(caught.value)
        assert f"pid {child.pid}" in message and "`reconciler apply`" in message
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    started = time.monotonic()
    with backend.lock("reconciler apply", timeout=5) as info:  # the server ends the session at once
        assert time.monotonic() - started < 2.0
        assert info.pid == os.getpid()
    assert backend.force_unlock() is None


def test_force_unlock_ends_the_session_of_a_live_holder(pg: PG, tmp_path: Path) -> None:
    backend = pg.backend(stack_name(tmp_path))
    with _lock_in_subprocess(pg, backend.stack) as child:
        holder = backend.force_unlock()
        assert holder is not None and holder.pid == child.pid and holder.command == "reconciler apply"
        with backend.lock("reconciler apply") as info:
            assert info.pid == os.getpid()


def test_a_run_whose_lock_was_taken_away_writes_nothing(pg: PG, tmp_path: Path) -> None:
    first, second = pg.backend(stack_name(tmp_path)), pg.backend(stack_name(tmp_path))
    doc = StateDoc.new("demo")
    first.write(doc)
    with first.lock("reconciler apply"):
        assert second.force_unlock() is not None
        with pytest.raises(StateError, match=r"lost the database session holding the lock.*force-unlocked"):
            first.write(doc.bumped())
        with pytest.raises(StateError, match="lost the database session"):
            first.read()
    assert second.read() == doc
    assert first.read() == doc  # outside the lock, the object works again


def test_a_holder_that_recorded_nothing_is_described_from_its_session(pg: PG, tmp_path: Path) -> None:
    backend = pg.backend(stack_name(tmp_path))
    backend.read()  # tables exist
    with pg.connect() as raw:
        raw.execute("SET application_name = 'someone else'")
        raw.execute("SELECT pg_advisory_lock(%s)", [_lock_key(pg.schema, backend.stack)])
        with pytest.raises(LockError, match=r"database session \d+.*`someone else`"), backend.lock("x"):
            pass
    with backend.lock("x"):
        pass


def test_lock_timeout_waits_for_a_holder_in_another_process(pg: PG, tmp_path: Path) -> None:
    backend = pg.backend(stack_name(tmp_path), poll_interval=0.05)
    with _lock_in_subprocess(pg, backend.stack, hold=1.0):
        started = time.monotonic()
        with backend.lock("reconciler plan", timeout=30):
            assert 0.2 < time.monotonic() - started < 20


# -- the DSN is a secret ---------------------------------------------------------------------


def test_the_dsn_never_appears_in_descriptions_documents_history_or_locks(pg: PG, tmp_path: Path) -> None:
    dsn = f"{pg.dsn} password={SECRET}"  # the test server trusts local users: the password is unused
    backend = PostgresBackend(dsn, stack=stack_name(tmp_path), schema=pg.schema)
    backend.write(StateDoc.new("demo"))
    texts = [backend.describe(), repr(backend), str(backend.read()), str(backend.history())]
    with backend.lock("reconciler apply"):
        other = PostgresBackend(dsn, stack=backend.stack, schema=pg.schema)
        with pytest.raises(LockError) as caught, other.lock("x"):
            pass
        texts.append(str(caught.value))
    assert all(SECRET not in text for text in texts)


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://postgres:{SECRET}@/x?host=/nonexistent&bad",  # not a connection string
        f"host=/nonexistent/socket user=postgres password={SECRET}",  # no server there
        f"postgresql://postgres:{SECRET}%40x@/x?host=/nonexistent",  # url-encoded password
        f"'{SECRET}",  # unparsable: nothing of it is shown
    ],
)
def test_driver_errors_are_scrubbed_of_the_dsn(dsn: str) -> None:
    with pytest.raises(StateError) as caught:
        PostgresBackend(dsn, stack="demo").read()
    message = str(caught.value)
    assert SECRET not in message and "SECRET" not in message
    assert "postgres" in message.lower()


def test_errors_from_the_server_are_scrubbed_too(pg: PG) -> None:
    dsn = f"{pg.dsn} password={SECRET}".replace("dbname=", "dbname=missing_")
    with pytest.raises(StateError, match="does not exist") as caught:
        PostgresBackend(dsn, stack="demo").read()
    assert SECRET not in str(caught.value)


# -- helpers -----------------------------------------------------------------------------------


def _env(root: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from reconciler.state.postgres import PostgresBackend
    backend = PostgresBackend(sys.argv[1], stack=sys.argv[2], schema=sys.argv[3])
    with backend.lock("reconciler apply"):
        print("locked", flush=True)
        time.sleep(float(sys.argv[4]))
    """
)


@contextmanager
def _lock_in_subprocess(pg: PG, stack: str, hold: float = 60.0) -> Iterator[subprocess.Popen[str]]:
    """Another Python process holding the lock of ``stack`` for ``hold`` seconds or until the block ends."""
    root = str(Path(reconciler.__file__).resolve().parents[1])
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, pg.dsn, stack, pg.schema, str(hold)],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(root),
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "locked\n"
            yield child
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
