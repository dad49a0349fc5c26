"""Corrupted state and plan files, through the CLI: refused whole, with what to do, and nothing touched.

A stack on the embedded Fabric emulator is applied once (module fixture) and
its working directory copied for every test. A state file that is truncated,
emptied, edited by hand (checksum mismatch), binary, of a newer format or of
the wrong shape is refused by every command that reads it, naming the backup
to restore; the state and the emulated platform are byte for byte unchanged;
restoring the backup makes the stack usable again. A saved plan that is
truncated, emptied, edited, stripped of its checksum, of a newer format, made
for another stack, against another lineage or against an older serial is
refused; nothing is applied.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.state.document import _checksum

STACK = """\
stack: corrupt
providers:
  fabric: {url: embedded, token: emulator-token, provision_seconds: 0}
backend: {local: {path: state/corrupt.json}}
variables: {env: dev}
workspaces:
  main: {name: "ml-{{ var.env }}"}
endpoints:
  infer:
    workspace: main
    name: infer
    type: inference
    reserved_resource: {mu: {spec_code: mu.llama3.8b, min: 0, max: 4}}
outputs:
  ws: "{{ workspaces.main.id }}"
"""
STATE = Path("state/corrupt.json")
BACKUP = Path("state/corrupt.json.backup")
PLATFORM = Path("state/emulator/fabric.json")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working directory whose stack has been applied (state, its backup, the emulated platform)."""
    work = tmp_path_factory.mktemp("applied")
    (work / "stack.yaml").write_text(STACK, encoding="utf-8")
    old = Path.cwd()
    os.chdir(work)
    try:
        result = run("apply", "stack.yaml", "--auto-approve")
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(old)
    assert (work / STATE).exists() and (work / BACKUP).exists() and (work / PLATFORM).exists()
    yield work


@pytest.fixture
def work(applied: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "work"
    shutil.copytree(applied, copy, symlinks=True)
    monkeypatch.chdir(copy)
    return copy


def _edit_json(path: Path, change: Callable[[dict[str, object]], None], *, reseal: bool = False) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    if reseal:
        data.pop("checksum", None)
        data["checksum"] = _checksum(data) if path.suffix == ".json" else _plan_checksum(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def _plan_checksum(data: dict[str, object]) -> str:
    from reconciler.plan import _checksum as plan_checksum

    return plan_checksum(data)


def _drop_resource(data: dict[str, object]) -> None:
    resources = data["resources"]
    assert isinstance(resources, dict)
    resources.pop("endpoints.infer")


def _set(key: str, value: object) -> Callable[[dict[str, object]], None]:
    def change(data: dict[str, object]) -> None:
        data[key] = value

    return change


STATE_CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "is not valid JSON"),
    "emptied": (lambda p: p.write_bytes(b""), "is empty (truncated?)"),
    "edited": (lambda p: _edit_json(p, _drop_resource), "is corrupted (checksum mismatch)"),
    "binary": (lambda p: p.write_bytes(b"\x00\xff\xfe" * 50), "state file"),
    "newer": (lambda p: _edit_json(p, _set("format_version", 99)), "was written by a newer reconciler"),
    "a list": (lambda p: p.write_text("[]"), "does not hold a JSON object"),
    "invalid": (lambda p: _edit_json(p, _set("serial", -5), reseal=True), "is invalid"),
}
STATE_COMMANDS: dict[str, tuple[str, ...]] = {
    "plan": ("plan", "stack.yaml"),
    "apply": ("apply", "stack.yaml", "--auto-approve"),
    "destroy": ("destroy", "stack.yaml", "--auto-approve"),
    "state list": ("state", "list", "stack.yaml"),
    "state show": ("state", "show", "stack.yaml"),
    "output": ("output", "stack.yaml"),
}


@pytest.mark.parametrize("command", sorted(STATE_COMMANDS))
@pytest.mark.parametrize("corruption", sorted(STATE_CORRUPTIONS))
def test_a_corrupted_state_is_refused_and_left_alone(work: Path, corruption: str, command: str) -> None:
    corrupt, message = STATE_CORRUPTIONS[corruption]
    corrupt(STATE)
    state_before, platform_before = STATE.read_bytes(), PLATFORM.read_bytes()

    result = run(*STATE_COMMANDS[command])

    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    if corruption != "newer":  # a newer state is not broken: upgrading is the answer, not the backup
        assert str(BACKUP) in result.stderr or "reconciler state restore" in result.stderr, result.stderr
    assert STATE.read_bytes() == state_before, "a refused state was rewritten"
    assert PLATFORM.read_bytes() == platform_before, "the platform was changed on a corrupted state"


def test_restoring_the_named_backup_brings_the_stack_back(work: Path) -> None:
    STATE.write_bytes(STATE.read_bytes()[:100])
    assert run("plan", "stack.yaml").exit_code == 1
    shutil.copy(BACKUP, STATE)
    result = run("plan", "stack.yaml")
    assert result.exit_code == 0, result.output


# -- plan files ------------------------------------------------------------------------------------


@pytest.fixture
def saved(work: Path) -> Path:
    """A plan with changes (a new variable value), saved with --out."""
    Path("stack.yaml").write_text(STACK.replace("{env: dev}", "{env: prod}"), encoding="utf-8")
    result = run("plan", "stack.yaml", "--out", "change.plan")
    assert result.exit_code == 0, result.output
    return Path("change.plan")


def _refused(plan: Path, message: str) -> None:
    state_before, platform_before = STATE.read_bytes(), PLATFORM.read_bytes()
    result = run("apply", str(plan))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    assert message in result.stderr, result.stderr
    assert STATE.read_bytes() == state_before
    assert PLATFORM.read_bytes() == platform_before, "a refused plan changed the platform"


def test_an_intact_saved_plan_applies(saved: Path) -> None:
    from reconciler.schemas import PlanFile

    data = json.loads(saved.read_text())
    assert data["checksum"].startswith("sha256:")
    PlanFile.model_validate(data)  # the published plan schema describes the file as written
    result = run("apply", str(saved))
    assert result.exit_code == 0, result.output


PLAN_CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-40]), "is not valid JSON"),
    "emptied": (lambda p: p.write_bytes(b""), "is empty (truncated?)"),
    "binary": (lambda p: p.write_bytes(b"\xff\xfe\x00" * 20), "is not UTF-8 text"),
    "edited": (
        lambda p: _edit_json(p, _set("destroy", True)),
        "is corrupted or was edited (checksum mismatch)",
    ),
    "unsealed": (lambda p: _edit_json(p, lambda d: d.pop("checksum")), "has no checksum"),
    "newer": (lambda p: _edit_json(p, _set("format_version", 99)), "was written by a newer reconciler"),
    "a list": (lambda p: p.write_text("[1, 2]"), "is not a reconciler plan"),
}


@pytest.mark.parametrize("corruption", sorted(PLAN_CORRUPTIONS))
def test_a_corrupted_plan_is_refused_whole(saved: Path, corruption: str) -> None:
    corrupt, message = PLAN_CORRUPTIONS[corruption]
    corrupt(saved)
    _refused(saved, message)
    assert "reconciler plan --out" in run("apply", str(saved)).stderr or corruption == "newer"


def test_a_plan_for_another_stack_is_refused(saved: Path) -> None:
    text = Path("stack.yaml").read_text(encoding="utf-8")
    Path("stack.yaml").write_text(text.replace("stack: corrupt", "stack: another"), encoding="utf-8")
    _refused(saved, "plan was made for stack 'corrupt', not 'another'")


def test_a_plan_against_another_lineage_is_refused(saved: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "stack.yaml").write_text(STACK, encoding="utf-8")
    os.chdir(other)
    assert run("apply", "stack.yaml", "--auto-approve").exit_code == 0  # a separate state: another lineage
    (other / "stack.yaml").write_text(STACK.replace("{env: dev}", "{env: prod}"), encoding="utf-8")
    shutil.copy(saved.resolve() if saved.is_absolute() else tmp_path / "work" / saved, other / "change.plan")
    _refused(Path("change.plan"), "plan was made against state lineage")


def test_a_stale_plan_is_refused(saved: Path) -> None:
    assert run("apply", "stack.yaml", "--auto-approve").exit_code == 0  # the state moves on
    _refused(saved, "plan is stale")
