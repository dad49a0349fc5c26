"""CLI contract through click's CliRunner: exit codes, stdout and stderr apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

QUICKSTART = Path(__file__).resolve().parents[2] / "stacks" / "quickstart.yaml"


def run(args: list[str]) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def commands() -> list[list[str]]:
    out = []
    for name, cmd in cli.commands.items():
        sub = getattr(cmd, "commands", None)
        if sub:
            out += [[name, s] for s in sub]
        out.append([name])
    return out


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p))
def test_every_command_has_help(path: list[str]) -> None:
    code, out, _ = run([*path, "--help"])
    assert code == 0
    assert "Usage:" in out and len(out.splitlines()) > 3


def test_usage_errors_exit_1_never_2() -> None:
    code, _, err = run(["plan", "--no-such-flag", "x.yaml"])
    assert code == 1
    assert "No such option" in err


def test_validate_reports_every_problem_with_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "stack: bad\n"
        "providers: {fabric: {url: embedded}}\n"
        "workspaces:\n"
        "  main: {name: ml, descripton: x}\n"
        "endpoints:\n"
        "  infer: {workspace: main, name: infer, type: inference,"
        " reserved_resource: {mu: {spec_code: s, min: 0, max: 4}}}\n"
    )
    code, out, err = run(["validate", str(bad)])
    assert code == 1 and out == ""
    assert f"{bad}:4: workspaces.main.descripton: unknown field; did you mean 'description'?" in err
    assert "nothing was called or written" in err


def test_validate_quickstart() -> None:
    code, out, _ = run(["validate", str(QUICKSTART)])
    assert code == 0 and "valid (4 resources)" in out


def test_graph_formats() -> None:
    code, out, _ = run(["graph", str(QUICKSTART)])
    assert code == 0 and '"endpoints.infer" -> "deployments.chat";' in out
    code, out, _ = run(["graph", str(QUICKSTART), "--format", "mermaid"])
    assert code == 0 and out.startswith("graph LR")


def test_second_run_is_refused_while_the_state_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.state.local import LocalBackend

    monkeypatch.chdir(tmp_path)
    stack = tmp_path / "s.yaml"
    stack.write_text(QUICKSTART.read_text())
    backend = LocalBackend(tmp_path / "state" / "quickstart.json")
    with backend.lock("reconciler apply (another terminal)"):
        code, _, err = run(["plan", str(stack)])
    assert code == 1
    assert "locked by" in err and "reconciler apply (another terminal)" in err
    # once released, the same command works
    code, out, err = run(["plan", str(stack), "--detailed-exitcode"])
    assert code == 2, err
    assert "Plan: 4 to create" in out


def test_output_json_is_one_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    stack = tmp_path / "s.yaml"
    stack.write_text(
        QUICKSTART.read_text().replace("{url: embedded,", "{url: embedded, provision_seconds: 0,")
    )
    code, out, err = run(["apply", str(stack), "--auto-approve"])
    assert code == 0, err
    code, out, _ = run(["output", str(stack), "--json"])
    data = json.loads(out)
    assert set(data) == {"chat_id", "chat_url"} and data["chat_url"].endswith("/invocations")
    code, out, _ = run(["output", str(stack), "chat_id"])
    assert out.strip() == data["chat_id"]
    code, _, err = run(["output", str(stack), "nope"])
    assert code == 1 and "no output named 'nope'" in err
    code, out, _ = run(["state", "show", str(stack), "deployments.chat"])
    assert '"kind": "service_instance"' in out
