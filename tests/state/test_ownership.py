"""A state belongs to one stack: a stack pointed at another stack's state is refused before anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli


def stack(name: str, workspace: str) -> str:
    return (
        f"stack: {name}\n"
        "backend: {local: {path: state/shared.json}}\n"
        "providers: {fabric: {url: embedded}}\n"
        f"workspaces:\n  main: {{name: {workspace}}}\n"
    )


def test_a_stack_pointed_at_another_stacks_state_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "first.yaml").write_text(stack("first", "ml-first"))
    (tmp_path / "second.yaml").write_text(stack("second", "ml-second"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["apply", "--auto-approve", "first.yaml"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    before = (tmp_path / "state" / "shared.json").read_bytes()
    for command in (["plan", "second.yaml"], ["apply", "--auto-approve", "second.yaml"]):
        result = runner.invoke(cli, command, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.stderr
        assert "state/shared.json holds the state of stack 'first'" in result.stderr
        assert "not of stack 'second' (second.yaml)" in result.stderr
    assert (tmp_path / "state" / "shared.json").read_bytes() == before
