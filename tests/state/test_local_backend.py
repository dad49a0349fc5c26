"""The backend contract, and the local file backend that passes it.

:class:`BackendContract` holds the tests every state backend must pass. A
backend's test module subclasses it (the subclass name starts with ``Test`` so
that pytest collects it) and implements :meth:`BackendContract.make_backend`::

    from .test_local_backend import BackendContract

    class TestPostgresBackend(BackendContract):
        def make_backend(self, tmp_path: Path) -> Backend:
            return PostgresBackend(DSN, stack=tmp_path.name)

:class:`TestLocalBackend` adds what only a file backend has: modes, backup
file, temp files, and locks held by (killed) processes.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import reconciler
from reconciler.errors import LockError, StateError
from reconciler.state import Backend, LocalBackend, LockInfo, ResourceState, StateDoc


def _resource(address: str, id: str) -> ResourceState:
    return ResourceState(address=address, platform="fabric", kind="service_instance", id=id)


class BackendContract:
    """Tests every state backend passes. Subclasses implement :meth:`make_backend`."""

    def make_backend(self, tmp_path: Path) -> Backend:
        """A backend over storage keyed by ``tmp_path``.

        Two calls with the same ``tmp_path`` must return *independent* backend
        objects (as two processes would have) over the *same* stored state.
        """
        raise NotImplementedError

    # -- read and write ------------------------------------------------------------------

    def test_is_a_backend_and_describes_itself(self, tmp_path: Path) -> None:
        backend = self.make_backend(tmp_path)
        assert isinstance(backend, Backend)
        assert backend.describe()

    def test_read_without_state_is_none(self, tmp_path: Path) -> None:
        assert self.make_backend(tmp_path).read() is None

    def test_write_then_read(self, tmp_path: Path) -> None:
        doc = StateDoc.new("demo").with_resource(_resource("deployments.chat", "si-1")).bumped()
        self.make_backend(tmp_path).write(doc)
        assert self.make_backend(tmp_path).read() == doc

    def test_successive_writes_each_replace_the_document(self, tmp_path: Path) -> None:
        backend = self.make_backend(tmp_path)
        doc = StateDoc.new("demo")
        backend.write(doc)
        for n in range(1, 4):
            doc = doc.with_resource(_resource(f"models.m{n}", f"id-{n}")).bumped()
            backend.write(doc)
            assert backend.read() == doc
        assert doc.serial == 3 and len(doc.resources) == 3

    @pytest.mark.parametrize("behind", [0, 1])
    def test_serial_not_greater_than_stored_is_refused_and_nothing_overwritten(
        self, tmp_path: Path, behind: int
    ) -> None:
        backend = self.make_backend(tmp_path)
        stored = StateDoc.new("demo").bumped().bumped()
        backend.write(stored)
        stale = stored.model_copy(update={"serial": stored.serial - behind}).with_resource(
            _resource("models.m", "x")
        )
        with pytest.raises(StateError, match=f"serial {stale.serial}.*serial {stored.serial}"):
            backend.write(stale)
        assert backend.read() == stored

    def test_lineage_mismatch_is_refused(self, tmp_path: Path) -> None:
        backend = self.make_backend(tmp_path)
        stored = StateDoc.new("demo")
        backend.write(stored)
        other = StateDoc.new("demo").bumped().bumped()
        with pytest.raises(StateError, match=f"lineage {other.lineage}.*lineage {stored.lineage}"):
            backend.write(other)
        assert backend.read() == stored

    def test_two_writers_of_the_same_serial_exactly_one_wins(self, tmp_path: Path) -> None:
        first, second = self.make_backend(tmp_path), self.make_backend(tmp_path)
        first.write(StateDoc.new("demo"))
        base_a, base_b = first.read(), second.read()
        assert base_a is not None and base_b is not None
        a = base_a.with_resource(_resource("models.a", "a")).bumped()
        b = base_b.with_resource(_resource("models.b", "b")).bumped()
        first.write(a)
        with pytest.raises(StateError, match="changed since it was read"):
            second.write(b)
        assert second.read() == a

    def test_racing_writers_exactly_one_wins(self, tmp_path: Path) -> None:
        writers = [self.make_backend(tmp_path) for _ in range(4)]
        doc = StateDoc.new("demo")
        writers[0].write(doc)
        for round_ in range(10):
            candidates = [
                doc.with_resource(_resource(f"models.w{i}", f"r{round_}")).bumped()
                for i in range(len(writers))
            ]
            outcomes = _race(writers, candidates)
            assert sorted(outcomes) == ["refused"] * (len(writers) - 1) + ["won"], outcomes
            doc = candidates[outcomes.index("won")]
            assert writers[0].read() == doc

    # -- lock ----------------------------------------------------------------------------

    def test_lock_yields_who_holds_it(self, tmp_path: Path) -> None:
        with self.make_backend(tmp_path).lock("reconciler apply") as info:
            assert info.command == "reconciler apply"
            assert info.pid == os.getpid()
            assert "@" in info.who
            assert info.since.endswith("Z") and info.id

    def test_held_lock_refuses_a_second_naming_the_holder(self, tmp_path: Path) -> None:
        first, second = self.make_backend(tmp_path), self.make_backend(tmp_path)
        with first.lock("reconciler apply") as held:
            with pytest.raises(LockError) as caught, second.lock("reconciler plan"):
                pytest.fail("second lock was granted")
            message = str(caught.value)
            assert held.describe() in message
            for part in (held.who, f"pid {held.pid}", "`reconciler apply`", held.since, held.id):
                assert part in message
            assert "stale" not in message
            # not reentrant, not even on the same object
            with pytest.raises(LockError), first.lock("again"):
                pass

    def test_lock_is_free_again_after_release_and_after_an_error(self, tmp_path: Path) -> None:
        first, second = self.make_backend(tmp_path), self.make_backend(tmp_path)
        with first.lock("one"):
            pass
        with pytest.raises(RuntimeError), first.lock("two"):
            raise RuntimeError("boom")
        with second.lock("three") as info:
            assert info.command == "three"
        assert second.force_unlock() is None

    def test_lock_timeout_waits_then_fails(self, tmp_path: Path) -> None:
        first, second = self.make_backend(tmp_path), self.make_backend(tmp_path)
        with first.lock("reconciler apply") as held:
            started = time.monotonic()
            with pytest.raises(LockError, match=held.id), second.lock("reconciler plan", timeout=0.3):
                pytest.fail("second lock was granted")
            elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 3.0

    def test_lock_without_timeout_fails_at_once(self, tmp_path: Path) -> None:
        first, second = self.make_backend(tmp_path), self.make_backend(tmp_path)
        with first.lock("reconciler apply"):
            started = time.monotonic()
            with pytest.raises(LockError), second.lock("reconciler plan"):
                pass
            assert time.monotonic() - started < 1.0

    def test_lock_waits_for_the_holder_to_finish(self, tmp_path: Path) -> None:
        first, second = self.make_backend(tmp_path), self.make_backend(tmp_path)
        taken, release = threading.Event(), threading.Event()

        def hold() -> None:
            with first.lock("reconciler apply"):
                taken.set()
                release.wait(timeout=10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert taken.wait(timeout=10)
            threading.Timer(0.2, release.set).start()
            started = time.monotonic()
            with second.lock("reconciler plan", timeout=10) as info:
                assert info.command == "reconciler plan"
            assert 0.15 <= time.monotonic() - started < 5.0
        finally:
            release.set()
            holder.join(timeout=10)

    def test_force_unlock_returns_the_holder_and_frees_the_lock(self, tmp_path: Path) -> None:
        first, second = self.make_backend(tmp_path), self.make_backend(tmp_path)
        assert second.force_unlock() is None
        first_lock = first.lock("reconciler apply")
        held = first_lock.__enter__()
        try:
            assert second.force_unlock() == held
            with second.lock("reconciler plan") as mine:
                # The first holder finishing now must not free somebody else's lock.
                first_lock.__exit__(None, None, None)
                with pytest.raises(LockError, match=mine.id), first.lock("reconciler plan"):
                    pass
        finally:
            first_lock.__exit__(None, None, None)
        assert second.force_unlock() is None


class TestLocalBackend(BackendContract):
    def make_backend(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "state" / "demo.json")

    def local(self, tmp_path: Path) -> LocalBackend:
        return LocalBackend(tmp_path / "state" / "demo.json")

    def test_describe_names_the_file(self, tmp_path: Path) -> None:
        assert self.local(tmp_path).describe() == f"local file {tmp_path / 'state' / 'demo.json'}"

    def test_first_write_creates_private_directories_and_file(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path / "a" / "b" / "demo.json")
        backend.write(StateDoc.new("demo"))
        assert _mode(tmp_path / "a") == _mode(tmp_path / "a" / "b") == 0o700
        assert _mode(backend.path) == 0o600
        assert not backend.backup_path.exists()

    def test_file_modes_are_0600_whatever_the_umask(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        old = os.umask(0o000)
        try:
            doc = StateDoc.new("demo")
            backend.write(doc)
            backend.write(doc.bumped())
            with backend.lock("reconciler apply"):
                assert _mode(backend.lock_path) == 0o600
        finally:
            os.umask(old)
        assert _mode(backend.path) == 0o600
        assert _mode(backend.backup_path) == 0o600

    def test_backup_holds_the_previous_version(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        v0 = StateDoc.new("demo")
        v1 = v0.with_resource(_resource("models.a", "a")).bumped()
        v2 = v1.without_resource("models.a").bumped()
        backend.write(v0)
        backend.write(v1)
        assert StateDoc.from_json(backend.backup_path.read_text(), "backup") == v0
        backend.write(v2)
        assert StateDoc.from_json(backend.backup_path.read_text(), "backup") == v1
        assert backend.read() == v2

    def test_refused_write_leaves_state_and_backup_alone(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        v0 = StateDoc.new("demo")
        backend.write(v0)
        backend.write(v0.bumped())
        before = (backend.path.read_bytes(), backend.backup_path.read_bytes())
        with pytest.raises(StateError):
            backend.write(v0.bumped())
        assert (backend.path.read_bytes(), backend.backup_path.read_bytes()) == before

    def test_no_temporary_files_are_left_behind(self, tmp_path: Path) -> None:
        backend, other = self.local(tmp_path), self.local(tmp_path)
        doc = StateDoc.new("demo")
        for _ in range(3):
            backend.write(doc)
            doc = doc.bumped()
        with pytest.raises(StateError):
            backend.write(StateDoc.new("demo"))
        with (
            backend.lock("reconciler apply"),
            pytest.raises(LockError),
            other.lock("reconciler plan", timeout=0.1),
        ):
            pass
        assert sorted(p.name for p in backend.path.parent.iterdir()) == ["demo.json", "demo.json.backup"]

    def test_the_file_is_canonical_checksummed_json(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        doc = StateDoc.new("demo").bumped()
        backend.write(doc)
        assert backend.path.read_text() == doc.to_json()

    def test_corrupted_file_is_refused_on_read_and_write(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        doc = StateDoc.new("demo")
        backend.write(doc)
        backend.write(doc.bumped())
        text = backend.path.read_text()
        backend.path.write_text(text.replace('"serial": 1', '"serial": 7'))
        with pytest.raises(
            StateError, match=r"corrupted \(checksum mismatch\); restore the backup .*demo\.json\.backup"
        ):
            backend.read()
        with pytest.raises(StateError, match="corrupted"):
            backend.write(doc.bumped().bumped().bumped())
        backend.path.write_text(text[: len(text) // 2])
        with pytest.raises(StateError, match="not valid JSON"):
            backend.read()
        backend.path.write_bytes(b"\xff\xfe\x00")
        with pytest.raises(StateError, match="not UTF-8"):
            backend.read()

    def test_lock_file_holds_the_lock_record(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        with backend.lock("reconciler apply") as info:
            assert LockInfo.from_dict(json.loads(backend.lock_path.read_text())) == info
        assert not backend.lock_path.exists()

    def test_lock_held_by_another_process(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        with _lock_in_subprocess(backend.path) as child:
            with pytest.raises(LockError) as caught, backend.lock("reconciler plan"):
                pass
            message = str(caught.value)
            assert f"pid {child.pid}" in message and "`reconciler apply`" in message
            assert "stale" not in message

    def test_lock_of_a_killed_process_is_taken_over_by_the_next_run(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        backend = self.local(tmp_path)
        with _lock_in_subprocess(backend.path) as child:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        assert backend.lock_path.exists()
        found = backend.lock_holder()
        assert found is not None and found[1] and found[0].pid == child.pid  # stale: nobody flocks it
        with caplog.at_level("WARNING", logger="reconciler"), backend.lock("reconciler apply") as info:
            assert info.pid == os.getpid()
            assert backend.lock_holder() == (info, False)
        (line,) = [r.getMessage() for r in caplog.records if "took over" in r.getMessage()]
        assert f"its holder is gone (locked by {found[0].who} (pid {child.pid}" in line
        assert not backend.lock_path.exists()  # released as usual

    def test_a_live_holder_is_waited_for_and_named(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        with _lock_in_subprocess(backend.path) as child:
            with pytest.raises(LockError) as caught, backend.lock("reconciler apply", timeout=0.0):
                pass
            message = str(caught.value)
            assert f"pid {child.pid}" in message and "wait for that run to finish" in message
            assert backend.lock_holder() is not None

    def test_a_lock_of_another_host_is_not_taken_over(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        backend.lock_path.parent.mkdir(parents=True)
        other = LockInfo(id="lock-7", who="ci@other-host", pid=4242, command="reconciler apply", since="then")
        backend.lock_path.write_text(json.dumps(other.to_dict()))
        with pytest.raises(LockError) as caught, backend.lock("reconciler apply"):
            pass
        assert "ci@other-host (pid 4242" in str(caught.value)
        assert "`reconciler force-unlock demo lock-7`" in str(caught.value)
        assert backend.force_unlock() == other

    def test_unreadable_lock_file_is_reported_not_taken_over(self, tmp_path: Path) -> None:
        backend = self.local(tmp_path)
        backend.lock_path.parent.mkdir(parents=True)
        backend.lock_path.write_text("not json")
        with (
            pytest.raises(LockError, match=r"locked by unknown.*force-unlock demo unknown"),
            backend.lock("reconciler apply"),
        ):
            pass
        assert backend.force_unlock() == LockInfo.unknown()

    def test_stack_name_for_messages_can_be_given(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path / "x.json", stack="quickstart")
        backend.lock_path.write_text("{}")
        expected = "`reconciler force-unlock quickstart unknown`"
        with pytest.raises(LockError, match=expected), backend.lock("c"):
            pass


def _race(writers: list[Backend], docs: list[StateDoc]) -> list[str]:
    """Each writer writes its document at the same moment; "won" or "refused" for each."""
    barrier = threading.Barrier(len(writers))
    outcomes = [""] * len(writers)

    def run(i: int) -> None:
        barrier.wait()
        try:
            writers[i].write(docs[i])
            outcomes[i] = "won"
        except StateError:
            outcomes[i] = "refused"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(writers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from reconciler.state import LocalBackend
    with LocalBackend(sys.argv[1]).lock("reconciler apply"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


@contextmanager
def _lock_in_subprocess(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A separate Python process holding the lock on ``path`` until the block ends."""
    root = str(Path(reconciler.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "locked\n"
            yield child
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
