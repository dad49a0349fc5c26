"""A stack's relative paths are relative to the stack file, never to the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

STACK = "stack: paths\nproviders: {fabric: {url: embedded}}\nworkspaces:\n  main: {name: ml-paths}\n"


def run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_the_same_stack_run_from_two_directories_finds_the_same_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    elsewhere = tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "stack.yaml").write_text(STACK)

    monkeypatch.chdir(elsewhere)
    code, _, err = run(["apply", "--auto-approve", "../project/stack.yaml"])
    assert code == 0, err
    assert (project / "state" / "paths.json").is_file()
    assert not (elsewhere / "state").exists()

    monkeypatch.chdir(project)
    code, out, err = run(["plan", "--detailed-exitcode", "stack.yaml"])
    assert code == 0, out + err
    assert not (project / "project").exists()

    monkeypatch.chdir(tmp_path)
    code, out, err = run(["plan", "--detailed-exitcode", str(project / "stack.yaml")])
    assert code == 0, out + err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "project"]
