"""History is kept compactly (gzip-compressed versions), ``history_keep`` versions of them.

Local backend: ``P.history/<serial>.json.gz``; ``<serial>.json`` files of
earlier releases are still read and converted a few per write. PostgreSQL:
``state_history.document_gz``; schema-version-1 rows (``document`` text) are
still read and converted likewise. The postgres tests use the server of
``tests/state/conftest.py`` (skipped locally without one, failed under ``CI=true``).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from psycopg import sql

from reconciler import operations
from reconciler.cli import cli
from reconciler.stack import load_stack
from reconciler.state import LocalBackend, ResourceState, StateDoc
from reconciler.state.history import HISTORY_KEEP, compress
from reconciler.state.postgres import _MIGRATIONS, SCHEMA_VERSION, PostgresBackend

from .conftest import PG, stack_name

QUICKSTART = Path(__file__).resolve().parents[2] / "stacks" / "quickstart.yaml"


def _resource(n: int) -> ResourceState:
    return ResourceState(
        address=f"models.m{n}",
        platform="fabric",
        kind="model",
        id=f"id-{n}",
        attributes={"description": f"model number {n}", "replicas": n % 4},
    )


def _docs(count: int) -> list[StateDoc]:
    """``count`` successive versions, serials 0.. ``count - 1``, each with one more resource."""
    docs = [StateDoc.new("demo")]
    while len(docs) < count:
        docs.append(docs[-1].with_resource(_resource(len(docs))).bumped())
    return docs


def _stack(tmp_path: Path, backend: str) -> Path:
    """A copy of the quickstart stack with ``backend`` (YAML lines, indented under ``backend:``)."""
    text = QUICKSTART.read_text()
    assert "backend: {local: {path: state/quickstart.json}}\n" in text
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("backend: {local: {path: state/quickstart.json}}\n", f"backend:\n{backend}"))
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def _version_files(backend: LocalBackend) -> list[str]:
    return sorted(p.name for p in backend.history_dir.iterdir() if p.name != "log.jsonl")


# -- how many are kept -----------------------------------------------------------------------------


def test_by_default_the_newest_100_are_kept_and_older_ones_dropped(tmp_path: Path) -> None:
    stack = load_stack(_stack(tmp_path, "  local: {path: state/x.json}\n"), env={})
    backend = operations.backend_for(stack)
    assert isinstance(backend, LocalBackend) and backend.history_keep == HISTORY_KEEP == 100
    doc = StateDoc.new("demo")
    backend.write(doc)
    for _ in range(104):
        doc = doc.bumped()
        backend.write(doc)
    assert [v.serial for v in backend.history()] == list(range(104, 4, -1))
    assert _version_files(backend) == sorted(f"{n}.json.gz" for n in range(5, 105))
    with pytest.raises(Exception, match="no version with serial 4 is kept"):
        backend.version(4)
    assert backend.version(5).serial == 5


def test_history_keep_5_keeps_5(tmp_path: Path) -> None:
    path = _stack(tmp_path, "  local:\n    path: state/x.json\n    history_keep: 5\n")
    backend = operations.backend_for(load_stack(path, env={}))
    assert isinstance(backend, LocalBackend) and backend.history_keep == 5
    for doc in _docs(12):
        backend.write(doc)
    assert [v.serial for v in backend.history()] == [11, 10, 9, 8, 7]
    assert _version_files(backend) == sorted(f"{n}.json.gz" for n in range(7, 12))
    listed = CliRunner().invoke(cli, ["state", "history", str(path), "--json"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.stderr
    assert [v["serial"] for v in json.loads(listed.stdout)] == [11, 10, 9, 8, 7]


def test_a_smaller_history_keep_drops_the_surplus_at_the_next_write(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "x.json", history_keep=HISTORY_KEEP)
    docs = _docs(10)
    for doc in docs[:-1]:
        backend.write(doc)
    backend.history_keep = 3
    backend.write(docs[-1])
    assert [v.serial for v in backend.history()] == [9, 8, 7]


def test_history_keep_reaches_the_postgres_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_PG_DSN", "host=/nonexistent dbname=x")  # never connected to here
    block = '  postgres:\n    dsn: "{{ env.RECONCILER_PG_DSN }}"\n    history_keep: 7\n'
    backend = operations.backend_for(load_stack(_stack(tmp_path, block), env=dict(os.environ)))
    assert isinstance(backend, PostgresBackend) and backend.history_keep == 7
    plain = '  postgres: {dsn: "{{ env.RECONCILER_PG_DSN }}"}\n'
    backend = operations.backend_for(load_stack(_stack(tmp_path, plain), env=dict(os.environ)))
    assert isinstance(backend, PostgresBackend) and backend.history_keep == HISTORY_KEEP


# -- what is stored ----------------------------------------------------------------------------------


def test_versions_are_gzip_files_identical_to_what_was_written(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "x.json", history_keep=HISTORY_KEEP)
    docs = _docs(6)
    written: list[bytes] = []
    for doc in docs:
        backend.write(doc)
        written.append(backend.path.read_bytes())
    assert _version_files(backend) == sorted(f"{n}.json.gz" for n in range(6))
    for doc, data in zip(docs, written, strict=True):
        stored = (backend.history_dir / f"{doc.serial}.json.gz").read_bytes()
        assert stored[:2] == b"\x1f\x8b" and gzip.decompress(stored) == data
        assert LocalBackend(tmp_path / "x.json", history_keep=HISTORY_KEEP).version(doc.serial) == doc
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_damaged_version_is_refused_naming_the_file(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "x.json", history_keep=HISTORY_KEEP)
    backend.write(StateDoc.new("demo"))
    (backend.history_dir / "0.json.gz").write_bytes(b"\x1f\x8bnot really")
    with pytest.raises(Exception, match=r"0\.json\.gz is damaged"):
        backend.version(0)


def test_compressed_history_is_much_smaller(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "x.json", history_keep=HISTORY_KEEP)
    doc = StateDoc.new("demo")
    for n in range(50):
        doc = doc.with_resource(_resource(n))
    plain = 0
    for _ in range(20):
        doc = doc.bumped()
        backend.write(doc)
        plain += backend.path.stat().st_size
    stored = sum(p.stat().st_size for p in backend.history_dir.glob("*.json.gz"))
    assert stored * 5 < plain


# -- versions written by earlier releases ----------------------------------------------------------


def _as_written_by_an_earlier_release(backend: LocalBackend) -> None:
    """Turn ``P.history/`` into the old layout: ``<serial>.json``, the newest a hard link to ``P``."""
    newest = max(int(p.name.split(".")[0]) for p in backend.history_dir.glob("*.json.gz"))
    for path in backend.history_dir.glob("*.json.gz"):
        old = path.with_name(path.name.removesuffix(".gz"))
        if int(path.name.split(".")[0]) == newest:
            os.link(backend.path, old)
        else:
            old.write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()


def test_uncompressed_versions_of_earlier_releases_are_read_then_converted(tmp_path: Path) -> None:
    path = _stack(tmp_path, "  local: {path: state/x.json}\n")
    backend = operations.backend_for(load_stack(path, env={}))
    assert isinstance(backend, LocalBackend)
    docs = _docs(4)
    for doc in docs[:3]:
        backend.write(doc)
    before = CliRunner().invoke(cli, ["state", "history", str(path)], catch_exceptions=False).stdout
    _as_written_by_an_earlier_release(backend)
    assert _version_files(backend) == ["0.json", "1.json", "2.json"]

    fresh = LocalBackend(backend.path, history_keep=HISTORY_KEEP)
    assert [v.serial for v in fresh.history()] == [2, 1, 0]
    assert [fresh.version(d.serial) for d in docs[:3]] == docs[:3]
    listed = CliRunner().invoke(cli, ["state", "history", str(path)], catch_exceptions=False)
    assert listed.exit_code == 0 and listed.stdout == before  # `state history` shows them as before

    current = backend.path.read_bytes()
    fresh.write(docs[3])  # converts them (and never touches the file a link shared with the state)
    assert _version_files(fresh) == ["0.json.gz", "1.json.gz", "2.json.gz", "3.json.gz"]
    assert [fresh.version(d.serial) for d in docs] == docs
    assert backend.backup_path.read_bytes() == current


def test_conversion_is_bounded_per_write_and_finishes_over_later_writes(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "x.json", history_keep=HISTORY_KEEP)
    docs = _docs(23)
    for doc in docs[:20]:
        backend.write(doc)
    _as_written_by_an_earlier_release(backend)
    backend.write(docs[20])
    legacy = [n for n in _version_files(backend) if not n.endswith(".gz")]
    assert len(legacy) == 20 - 8
    backend.write(docs[21])
    backend.write(docs[22])
    assert all(n.endswith(".json.gz") for n in _version_files(backend))
    assert [backend.version(d.serial) for d in docs] == docs


def test_a_conversion_cut_short_leaves_both_files_and_reads_either(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "x.json", history_keep=HISTORY_KEEP)
    docs = _docs(3)
    for doc in docs[:2]:
        backend.write(doc)
    (backend.history_dir / "0.json").write_bytes(
        gzip.decompress((backend.history_dir / "0.json.gz").read_bytes())
    )
    assert backend.version(0) == docs[0]
    backend.write(docs[2])
    assert _version_files(backend) == ["0.json.gz", "1.json.gz", "2.json.gz"]


# -- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "ten", "1.5", "[5]"])
@pytest.mark.parametrize("kind", ["local", "postgres"])
def test_a_bad_history_keep_is_refused_by_validate_naming_file_line_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    first = "    path: state/x.json\n" if kind == "local" else '    dsn: "postgresql://h/db"\n'
    path = _stack(tmp_path, f"  {kind}:\n{first}    history_keep: {value}\n")
    result = CliRunner().invoke(cli, ["validate", "s.yaml"], catch_exceptions=False)
    assert result.exit_code == 1
    line = _line_of(path, "history_keep")
    shown = {"ten": "'ten'", "1.5": "1.5", "[5]": "a list"}.get(value, value)
    assert (
        f"s.yaml:{line}: backend.{kind}.history_keep: must be an integer from 1 to 1000000, not {shown}"
        in (result.stderr)
    )
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("value", ["1", "20", "'30'"])
def test_a_good_history_keep_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.chdir(tmp_path)
    _stack(tmp_path, f"  local: {{path: state/x.json, history_keep: {value}}}\n")
    result = CliRunner().invoke(cli, ["validate", "s.yaml"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    backend = operations.backend_for(load_stack(tmp_path / "s.yaml", env={}))
    assert isinstance(backend, LocalBackend) and backend.history_keep == int(value.strip("'"))


# -- PostgreSQL --------------------------------------------------------------------------------------


def _rows(pg: PG, schema: str, stack: str) -> list[tuple[int, str | None, bytes | None]]:
    with pg.connect() as conn:
        query = sql.SQL(
            "SELECT serial, document, document_gz FROM {}.state_history WHERE stack = %s ORDER BY id"
        ).format(sql.Identifier(schema))
        return [(int(s), d, None if g is None else bytes(g)) for s, d, g in conn.execute(query, [stack])]


def test_postgres_keeps_history_keep_compressed_rows_identical_to_what_was_written(
    pg: PG, tmp_path: Path
) -> None:
    stack = stack_name(tmp_path)
    backend = pg.backend(stack, history_keep=5)
    docs = _docs(9)
    for doc in docs:
        backend.write(doc)
    assert [v.serial for v in backend.history()] == [8, 7, 6, 5, 4]
    rows = _rows(pg, pg.schema, stack)
    assert [r[0] for r in rows] == [4, 5, 6, 7, 8]
    for serial, text, packed in rows:
        assert text is None and packed is not None
        assert gzip.decompress(packed) == docs[serial].to_json().encode("utf-8")
        assert backend.version(serial) == docs[serial]
    with pytest.raises(Exception, match="no version with serial 3 is kept"):
        backend.version(3)


def test_postgres_default_keeps_100(pg: PG, tmp_path: Path) -> None:
    stack = stack_name(tmp_path)
    backend = pg.backend(stack)
    assert backend.history_keep == HISTORY_KEEP == 100
    doc = StateDoc.new("demo")
    backend.write(doc)
    for _ in range(102):
        doc = doc.bumped()
        backend.write(doc)
    assert [v.serial for v in backend.history()] == list(range(102, 2, -1))


def test_postgres_tables_of_schema_version_1_are_migrated_and_their_rows_read_then_converted(
    pg: PG, tmp_path: Path
) -> None:
    schema = f"{pg.schema}_v1{stack_name(tmp_path)[1:7]}"
    stack = stack_name(tmp_path)
    docs = _docs(4)
    try:
        with pg.connect() as conn:  # the tables and rows as a reconciler of schema version 1 left them
            q = lambda text: sql.SQL(text).format(s=sql.Identifier(schema))  # noqa: E731
            for statement in _MIGRATIONS[1]:
                conn.execute(q(statement))
            conn.execute(q("INSERT INTO {s}.schema_version (version) VALUES (1)"))
            conn.execute(
                q("INSERT INTO {s}.states (stack, lineage, serial, document) VALUES (%s, %s, %s, %s)"),
                [stack, docs[2].lineage, 2, docs[2].to_json()],
            )
            for doc in docs[:3]:
                conn.execute(
                    q(
                        "INSERT INTO {s}.state_history (stack, serial, lineage, document, who, command) "
                        "VALUES (%s, %s, %s, %s, 'old@host', 'reconciler apply')"
                    ),
                    [stack, doc.serial, doc.lineage, doc.to_json()],
                )
        backend = PostgresBackend(pg.dsn, stack=stack, schema=schema)
        assert [v.serial for v in backend.history()] == [2, 1, 0]
        assert [backend.version(d.serial) for d in docs[:3]] == docs[:3]
        with pg.connect() as conn:
            version = conn.execute(
                sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(schema))
            )
            assert version.fetchall() == [(SCHEMA_VERSION,)]
        assert [r[1] is not None for r in _rows(pg, schema, stack)] == [True, True, True]
        backend.write(docs[3])
        rows = _rows(pg, schema, stack)
        assert [(s, d is None, g is not None) for s, d, g in rows] == [(n, True, True) for n in range(4)]
        assert [backend.version(d.serial) for d in docs] == docs
        assert [v.command for v in backend.history()][1:] == ["reconciler apply"] * 3
    finally:
        with pg.connect() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_postgres_history_rows_are_smaller_compressed(pg: PG, tmp_path: Path) -> None:
    stack = stack_name(tmp_path)
    backend = pg.backend(stack)
    doc = StateDoc.new("demo")
    for n in range(50):
        doc = doc.with_resource(_resource(n))
    for _ in range(10):
        doc = doc.bumped()
        backend.write(doc)
    with pg.connect() as conn:
        query = sql.SQL(
            "SELECT sum(pg_column_size(document_gz)) FROM {}.state_history WHERE stack = %s"
        ).format(sql.Identifier(pg.schema))
        row = conn.execute(query, [stack]).fetchone()
    assert row is not None
    stored = int(row[0])
    assert stored * 5 < 10 * len(doc.to_json()) and stored > 0
    assert compress(doc.to_json().encode()) == compress(doc.to_json().encode())  # deterministic
