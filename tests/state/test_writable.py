"""An unwritable state fails before anything changes: the path and the OS reason, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.errors import StateError
from reconciler.state.local import LocalBackend


def test_a_file_where_the_state_directory_should_be(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a directory\n")
    backend = LocalBackend(blocker / "demo.json")
    with pytest.raises(StateError) as caught:
        backend.check_writable()
    message = str(caught.value)
    assert f"{blocker}" in message and "is not writable: [Errno 20] Not a directory" in message
    with (
        pytest.raises(StateError, match=r"is not writable: \[Errno 20\] Not a directory"),
        backend.lock("reconciler apply"),
    ):
        pass
    assert blocker.read_text() == "not a directory\n"


def test_a_directory_this_process_cannot_write(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        backend = LocalBackend(directory / "demo.json")
        if os.access(directory, os.W_OK):  # root: permissions do not stop it, so make the path a file instead
            directory.chmod(0o700)
            directory.rmdir()
            directory.write_text("")
            reason = r"\[Errno 20\] Not a directory"
        else:
            reason = r"\[Errno 13\] Permission denied"
        with pytest.raises(StateError, match=f"is not writable: {reason}"):
            backend.check_writable()
    finally:
        if directory.is_dir():
            directory.chmod(0o700)


def test_apply_with_an_unwritable_state_exits_1_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "blocker").write_text("")
    (tmp_path / "stack.yaml").write_text(
        "stack: unwritable\n"
        "backend: {local: {path: blocker/unwritable.json}}\n"
        "providers: {fabric: {url: embedded}}\n"
        "workspaces:\n  main: {name: ml-unwritable}\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["apply", "--auto-approve", "stack.yaml"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    assert "blocker" in result.stderr and "is not writable: [Errno 20] Not a directory" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "stack.yaml"]
