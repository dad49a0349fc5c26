"""A real PostgreSQL server for the postgres backend tests.

Where the server comes from, in order:

1. ``RECONCILER_TEST_PG_DSN``: a database on a running server, in which the
   tests create (and at the end drop) a schema of their own. ``.ci/run`` sets it.
2. Else a throwaway server started from the installed binaries (``initdb`` and
   ``pg_ctl`` from ``RECONCILER_TEST_PG_BIN``, ``PATH`` or
   ``/usr/lib/postgresql/*/bin``), in a temporary directory, listening only on
   a unix socket there, run as the ``postgres`` user when the tests run as root.
3. Else the postgres tests are skipped with a message saying how to run them
   -- except under ``CI=true``, where they fail: a CI run never passes with
   them skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.state.postgres import PostgresBackend

DSN_ENV = "RECONCILER_TEST_PG_DSN"
BIN_ENV = "RECONCILER_TEST_PG_BIN"
HOW = (
    f"set {DSN_ENV} to a PostgreSQL database the tests may create schemas in "
    f"(e.g. {DSN_ENV}='host=/tmp user=postgres dbname=postgres'), or install the PostgreSQL "
    f"server (initdb and pg_ctl; Debian: apt-get install postgresql, or set {BIN_ENV}) "
    "so that the tests start a throwaway one"
)


@dataclass(frozen=True)
class PG:
    """A database and a schema of this test session's own."""

    dsn: str
    schema: str

    def backend(self, stack: str, **options: Any) -> PostgresBackend:
        return PostgresBackend(self.dsn, stack=stack, schema=self.schema, **options)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True)


def stack_name(seed: object) -> str:
    """A valid, unique stack name derived from ``seed`` (e.g. a tmp_path)."""
    return "t" + hashlib.sha256(str(seed).encode()).hexdigest()[:16]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The DSN of a database on a running PostgreSQL server."""
    given = os.environ.get(DSN_ENV)
    if given:
        yield given
        return
    binaries = _binaries()
    problem = None if binaries else "no PostgreSQL server binaries were found"
    if binaries and os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            problem = "running as root and there is no 'postgres' user to run the server as"
    if problem is not None or binaries is None:
        _unavailable(f"PostgreSQL tests: {problem}; {HOW}")
        return
    server = _Throwaway(binaries)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg(pg_server: str) -> Iterator[PG]:
    """A schema of this session's own on the test server, dropped at the end."""
    schema = f"rt_{uuid.uuid4().hex[:12]}"
    try:
        yield PG(pg_server, schema)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{message} (CI=true: these tests must run in CI, not be skipped)", pytrace=False)
    pytest.skip(message)


def _binaries() -> Path | None:
    candidates: list[Path] = []
    if os.environ.get(BIN_ENV):
        candidates.append(Path(os.environ[BIN_ENV]))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


class _Throwaway:
    """A PostgreSQL server of the test session's own, on a unix socket in a temporary directory."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="rpg-", dir="/tmp"))  # short: socket paths are limited
        self.data = self.root / "data"
        self.run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self.started = False

    def _run(self, *args: str) -> None:
        with open(self.root / "commands.log", "ab") as log:
            subprocess.run(
                [str(self.binaries / args[0]), *args[1:]],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                timeout=120,
                **self.run_as,
            )

    def start(self) -> str:
        options = f"-c listen_addresses='' -k {self.root} -c fsync=off -c max_connections=200"
        try:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                      "-E", "UTF8", "--locale=C")  # fmt: skip
            log = str(self.root / "server.log")
            self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", options, "start")
            self.started = True
            with psycopg.connect(f"host={self.root} user=postgres dbname=postgres", autocommit=True) as conn:
                conn.execute("CREATE DATABASE reconciler_test")
        except (subprocess.SubprocessError, OSError, psycopg.Error) as exc:
            logs = "".join(
                p.read_text(errors="replace")[-2000:] for p in self.root.glob("*.log") if p.is_file()
            )
            self.stop()
            _unavailable(f"PostgreSQL tests: could not start a throwaway server ({exc}): {logs}; {HOW}")
        return f"host={self.root} user=postgres dbname=reconciler_test"

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)
