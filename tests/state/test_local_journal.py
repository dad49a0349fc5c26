"""The local backend's append-only journal: one line per write, replay, torn lines, compaction."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.state import Backend, LocalBackend, ResourceState, StateDoc
from reconciler.state.document import JournalEntry

from .test_local_backend import BackendContract


class TestJournaledLocalBackend(BackendContract):
    """The whole contract, with every write after the first one a journal line."""

    def make_backend(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "state" / "demo.json", journal_threshold=0)


def _backend(tmp_path: Path, **options: int) -> LocalBackend:
    return LocalBackend(tmp_path / "demo.json", journal_threshold=0, **options)


def _resource(n: int) -> ResourceState:
    return ResourceState(
        address=f"deployments.d{n}",
        platform="fabric",
        kind="service_instance",
        id=f"si-{n}",
        name=f"d{n}",
        scope={"workspace_id": "ws-1"},
        attributes={"name": f"d{n}", "config": {"min": 1, "max": 2}, "status": "RUNNING"},
        dependencies=("workspaces.w",),
    )


def _entry(seq: int) -> JournalEntry:
    return JournalEntry(
        seq=seq, address="deployments.d0", action="create", phase="intent", token="t", time="now"
    )


def _big(n: int) -> StateDoc:
    doc = StateDoc.new("demo")
    resources = {r.address: r for r in map(_resource, range(n))}
    return doc.model_copy(update={"resources": resources}).bumped()


def test_a_write_appends_one_line_and_leaves_the_document_alone(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    doc = _big(50)
    backend.write(doc)
    base = backend.path.read_bytes()
    doc = doc.with_resource(_resource(50)).with_journal(_entry(1)).bumped()
    backend.write(doc)
    assert backend.path.read_bytes() == base
    lines = backend.journal_path.read_bytes().splitlines()
    assert len(lines) == 1 and b'"deployments.d50"' in lines[0] and b'"deployments.d1"' not in lines[0]
    assert LocalBackend(backend.path).read() == doc


def test_removals_outputs_and_a_cleared_journal_replay(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    doc = _big(5)
    backend.write(doc)
    steps = [
        lambda d: d.with_journal(_entry(1)),
        lambda d: d.with_journal(_entry(2)).without_resource("deployments.d2"),
        lambda d: d.with_outputs({"url": "https://x", "n": [1, 2]}),
        lambda d: d.with_resource(_resource(3).model_copy(update={"status": "FAILED"})),
        lambda d: d.cleared_journal(),
    ]
    for step in steps:
        doc = step(doc).bumped()
        backend.write(doc)
        assert LocalBackend(backend.path).read() == doc
    assert len(backend.journal_path.read_bytes().splitlines()) == len(steps)


def test_small_documents_are_written_in_full(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "demo.json")  # default threshold: 64 KiB
    doc = _big(3)
    backend.write(doc)
    backend.write(doc.with_resource(_resource(9)).bumped())
    assert not backend.journal_path.exists()


def test_a_torn_last_line_is_ignored_and_cleaned_up_by_the_next_write(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    doc = _big(3)
    backend.write(doc)
    doc = doc.with_resource(_resource(3)).bumped()
    backend.write(doc)
    with open(backend.journal_path, "ab") as journal:
        journal.write(b'{"lineage": "cut sho')
    fresh = _backend(tmp_path)
    assert fresh.read() == doc
    later = doc.with_resource(_resource(4)).bumped()
    fresh.write(later)
    assert _backend(tmp_path).read() == later
    assert b"cut sho" not in (backend.journal_path.read_bytes() if backend.journal_path.exists() else b"")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda line: line.replace(b'"si-11"', b'"si-99"'), r"is corrupted \(checksum mismatch\)"),
        (lambda line: b"not json", "is not JSON"),
        (lambda line: b"[1, 2]", "is not a state journal line"),
    ],
)
def test_any_other_bad_line_refuses_naming_the_file(tmp_path: Path, damage: object, message: str) -> None:
    backend = _backend(tmp_path)
    doc = _big(1)
    backend.write(doc)
    for n in (1, 2):
        doc = doc.with_resource(_resource(10 + n)).bumped()
        backend.write(doc)
    first, second = backend.journal_path.read_bytes().splitlines()
    assert callable(damage)
    backend.journal_path.write_bytes(damage(first) + b"\n" + second + b"\n")
    with pytest.raises(StateError, match=rf"{backend.journal_path} line 1 {message}.*move .* away"):
        _backend(tmp_path).read()


def test_a_line_that_does_not_follow_the_document_refuses(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    doc = _big(1)
    backend.write(doc)
    for n in (1, 2):
        doc = doc.with_resource(_resource(10 + n)).bumped()
        backend.write(doc)
    _first, second = backend.journal_path.read_bytes().splitlines()
    backend.journal_path.write_bytes(second + b"\n")
    with pytest.raises(StateError, match="line 1 continues serial 2, but the state is at serial 1"):
        _backend(tmp_path).read()


def test_compact_writes_the_document_and_drops_the_journal(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    doc = _big(2)
    backend.write(doc)
    doc = doc.with_resource(_resource(7)).bumped()
    backend.write(doc)
    backend.compact()
    assert not backend.journal_path.exists()
    assert backend.path.read_text() == doc.to_json()
    backend.compact()  # nothing to do
    doc = doc.without_resource("deployments.d0").bumped()
    backend.write(doc)  # appends again, over the compacted document
    assert backend.journal_path.exists() and _backend(tmp_path).read() == doc


def test_releasing_the_lock_compacts(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    doc = _big(2)
    with backend.lock("reconciler apply"):
        backend.write(doc)
        doc = doc.with_resource(_resource(7)).bumped()
        backend.write(doc)
        assert backend.journal_path.exists()
    assert not backend.journal_path.exists()
    assert backend.path.read_text() == doc.to_json()


def test_the_journal_is_compacted_once_it_outgrows_the_document(tmp_path: Path) -> None:
    backend = _backend(tmp_path, journal_limit=0)
    doc = _big(2)
    backend.write(doc)
    sizes = []
    for n in range(10):
        doc = doc.with_resource(_resource(100 + n)).bumped()
        backend.write(doc)
        sizes.append(backend.journal_path.stat().st_size if backend.journal_path.exists() else 0)
    assert 0 in sizes[1:], sizes  # compacted on the way
    assert max(sizes) <= 2 * backend.path.stat().st_size
    assert _backend(tmp_path).read() == doc


def test_lines_the_document_already_holds_are_skipped(tmp_path: Path) -> None:
    """A compaction that died after writing the document but before dropping the journal."""
    backend = _backend(tmp_path)
    doc = _big(2)
    backend.write(doc)
    for n in range(3):
        doc = doc.with_resource(_resource(20 + n)).bumped()
        backend.write(doc)
    saved = tmp_path / "saved.journal"
    shutil.copyfile(backend.journal_path, saved)
    backend.compact()
    shutil.copyfile(saved, backend.journal_path)
    assert _backend(tmp_path).read() == doc


def test_a_writer_sees_what_another_appended(tmp_path: Path) -> None:
    first, second = _backend(tmp_path), _backend(tmp_path)
    doc = _big(2)
    first.write(doc)
    theirs = second.read()
    assert theirs == doc
    theirs = theirs.with_resource(_resource(5)).bumped()
    second.write(theirs)  # an append by another writer
    mine = doc.with_resource(_resource(6)).bumped()
    with pytest.raises(StateError, match="changed since it was read"):
        first.write(mine)
    assert first.read() == theirs
    after = theirs.with_resource(_resource(6)).bumped()
    first.write(after)
    assert second.read() == after
