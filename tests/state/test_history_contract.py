"""The rest of the backend contract: kept versions, forced replacement, writers in other processes.

:class:`HistoryContract` is shared like
:class:`~tests.state.test_local_backend.BackendContract`: a backend's test
module subclasses both and implements ``make_backend`` and
:meth:`HistoryContract.backend_code` (how another process opens the same
state). :class:`TestLocalBackendHistory` runs it against the local backend;
``test_postgres_backend.py`` against a real PostgreSQL server.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import reconciler
from reconciler.errors import StateError
from reconciler.state import Backend, LocalBackend, ResourceState, StateDoc
from reconciler.state.history import HISTORY_KEEP, UNKNOWN_COMMAND, VersionedBackend


def _resource(address: str, id: str) -> ResourceState:
    return ResourceState(address=address, platform="fabric", kind="service_instance", id=id)


class HistoryContract:
    """Tests every versioned backend passes. Subclasses implement both methods below."""

    def make_backend(self, tmp_path: Path) -> Backend:
        raise NotImplementedError

    def backend_code(self, tmp_path: Path) -> str:
        """A Python expression that opens, in another process, the backend ``make_backend`` opens.

        It may use ``LocalBackend`` and ``PostgresBackend``.
        """
        raise NotImplementedError

    def versioned(self, tmp_path: Path) -> VersionedBackend:
        backend = self.make_backend(tmp_path)
        assert isinstance(backend, VersionedBackend)
        return backend

    # -- history ---------------------------------------------------------------------------

    def test_every_write_is_kept_newest_first(self, tmp_path: Path) -> None:
        backend = self.versioned(tmp_path)
        assert backend.history() == ()
        docs = [StateDoc.new("demo")]
        for n in range(1, 4):
            docs.append(docs[-1].with_resource(_resource(f"models.m{n}", f"id-{n}")).bumped())
        for doc in docs:
            backend.write(doc)
        versions = backend.history()
        assert [v.serial for v in versions] == [3, 2, 1, 0]
        assert {v.lineage for v in versions} == {docs[0].lineage}
        assert all(v.written_at.endswith("Z") and "@" in v.who for v in versions)
        assert [v.serial for v in backend.history(limit=2)] == [3, 2]
        for doc in docs:
            assert self.versioned(tmp_path).version(doc.serial) == doc

    def test_history_records_the_command_holding_the_lock(self, tmp_path: Path) -> None:
        backend = self.versioned(tmp_path)
        doc = StateDoc.new("demo")
        backend.write(doc)
        with backend.lock("reconciler apply") as held:
            backend.write(doc.bumped())
        newest, oldest = backend.history()
        assert (newest.serial, newest.command, newest.who) == (1, "reconciler apply", held.who)
        assert oldest.command == UNKNOWN_COMMAND

    def test_a_refused_write_is_not_kept(self, tmp_path: Path) -> None:
        backend = self.versioned(tmp_path)
        doc = StateDoc.new("demo").bumped()
        backend.write(doc)
        with pytest.raises(StateError):
            backend.write(doc.with_resource(_resource("models.x", "x")))
        with pytest.raises(StateError):
            backend.write(StateDoc.new("demo").bumped().bumped())
        assert [v.serial for v in backend.history()] == [1]

    def test_a_version_not_kept_names_the_history_command(self, tmp_path: Path) -> None:
        backend = self.versioned(tmp_path)
        backend.write(StateDoc.new("demo"))
        with pytest.raises(StateError, match=r"no version with serial 7 .*reconciler state history"):
            backend.version(7)

    def test_only_the_newest_versions_are_kept(self, tmp_path: Path) -> None:
        backend = self.versioned(tmp_path)
        assert getattr(backend, "history_keep", None) == HISTORY_KEEP
        backend.history_keep = 3  # type: ignore[attr-defined]
        doc = StateDoc.new("demo")
        backend.write(doc)
        for _ in range(6):
            doc = doc.bumped()
            backend.write(doc)
        assert [v.serial for v in backend.history()] == [6, 5, 4]
        with pytest.raises(StateError, match="no version with serial 2"):
            backend.version(2)

    # -- replace (forced writes) -------------------------------------------------------------

    def test_replace_takes_another_lineage_with_a_greater_serial(self, tmp_path: Path) -> None:
        backend = self.versioned(tmp_path)
        stored = StateDoc.new("demo").bumped()
        backend.write(stored)
        other = StateDoc.new("demo").with_resource(_resource("models.o", "o"))
        with pytest.raises(StateError, match="greater serial"):
            backend.replace(other, over_serial=1)
        forced = other.model_copy(update={"serial": 2})
        backend.replace(forced, over_serial=1)
        assert backend.read() == forced
        assert [(v.serial, v.lineage) for v in backend.history()][:2] == [
            (2, other.lineage),
            (1, stored.lineage),
        ]

    def test_replace_is_compare_and_set_on_the_serial_read(self, tmp_path: Path) -> None:
        backend = self.versioned(tmp_path)
        with pytest.raises(StateError, match="expected serial 3 but found no state"):
            backend.replace(StateDoc.new("demo").bumped(), over_serial=3)
        assert backend.read() is None
        doc = StateDoc.new("demo")
        backend.replace(doc, over_serial=None)
        backend.write(doc.bumped())
        late = StateDoc.new("demo").model_copy(update={"serial": 5})
        with pytest.raises(StateError, match="expected serial 0 but found serial 1"):
            backend.replace(late, over_serial=0)
        assert backend.read() == doc.bumped()

    # -- writers in other processes ------------------------------------------------------------

    def test_locked_writers_in_other_processes_lose_no_update(self, tmp_path: Path) -> None:
        backend = self.make_backend(tmp_path)
        backend.write(StateDoc.new("demo"))
        outcome = _writers(self.backend_code(tmp_path), mode="locked", processes=3, writes=4)
        assert outcome == ["ok"] * 3
        doc = backend.read()
        assert doc is not None and doc.serial == 12
        assert sorted(doc.resources) == sorted(f"models.w{p}-{i}" for p in range(3) for i in range(4))

    def test_optimistic_writers_in_other_processes_lose_no_update(self, tmp_path: Path) -> None:
        backend = self.make_backend(tmp_path)
        backend.write(StateDoc.new("demo"))
        outcome = _writers(self.backend_code(tmp_path), mode="optimistic", processes=3, writes=4)
        assert outcome == ["ok"] * 3
        doc = backend.read()
        assert doc is not None and doc.serial == 12 and len(doc.resources) == 12
        assert [v.serial for v in self.versioned(tmp_path).history(limit=12)] == list(range(12, 0, -1))


class TestLocalBackendHistory(HistoryContract):
    def make_backend(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "state" / "demo.json", history_keep=HISTORY_KEEP)

    def backend_code(self, tmp_path: Path) -> str:
        return f"LocalBackend({str(tmp_path / 'state' / 'demo.json')!r}, history_keep={HISTORY_KEEP})"

    def test_history_is_off_unless_asked_for(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path / "demo.json")
        backend.write(StateDoc.new("demo"))
        assert backend.history() == () and not backend.history_dir.exists()

    def test_versions_are_private_files_beside_the_state(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path / "state" / "demo.json", history_keep=HISTORY_KEEP)
        old = os.umask(0)
        try:
            doc = StateDoc.new("demo")
            backend.write(doc)
            backend.write(doc.bumped())
        finally:
            os.umask(old)
        names = sorted(p.name for p in backend.history_dir.iterdir())
        assert names == ["0.json.gz", "1.json.gz", "log.jsonl"]
        for path in backend.history_dir.iterdir():
            assert path.stat().st_mode & 0o777 == 0o600
        assert backend.history_dir.stat().st_mode & 0o777 == 0o700
        assert gzip.decompress((backend.history_dir / "1.json.gz").read_bytes()) == backend.path.read_bytes()

    def test_a_torn_log_line_is_skipped(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path / "demo.json", history_keep=HISTORY_KEEP)
        doc = StateDoc.new("demo")
        backend.write(doc)
        with open(backend.history_dir / "log.jsonl", "a") as log:
            log.write('{"serial": 1, "lin')
        backend.write(doc.bumped())
        assert [v.serial for v in backend.history()] == [1, 0]


_WRITER = textwrap.dedent(
    """
    import sys, time
    from reconciler.errors import StateError
    from reconciler.state import LocalBackend, ResourceState
    from reconciler.state.postgres import PostgresBackend

    backend = eval(sys.argv[1])
    mode, name, writes = sys.argv[2], sys.argv[3], int(sys.argv[4])
    for i in range(writes):
        address = f"models.{name}-{i}"
        resource = ResourceState(address=address, platform="fabric", kind="model", id=address)
        if mode == "locked":
            with backend.lock(f"writer {name}", timeout=60):
                doc = backend.read()
                backend.write(doc.with_resource(resource).bumped())
            continue
        for attempt in range(500):
            doc = backend.read()
            try:
                backend.write(doc.with_resource(resource).bumped())
                break
            except StateError as exc:
                assert "changed since it was read" in str(exc), exc
                time.sleep(0.001 * (attempt % 7))
        else:
            sys.exit("gave up")
    print("ok")
    """
)


def _writers(code: str, *, mode: str, processes: int, writes: int) -> list[str]:
    """Run ``processes`` writer processes at once; each prints ``ok`` after ``writes`` writes."""
    root = str(Path(reconciler.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, code, mode, f"w{p}", str(writes)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in range(processes)
    ]
    outcome = []
    for child in children:
        out, err = child.communicate(timeout=120)
        outcome.append(out.strip() or err.strip()[-500:])
    return outcome
