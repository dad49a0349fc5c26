"""`plan --json` / `apply --json` (JSON Lines, schemas/ui-stream.schema.json) and `show PLANFILE`."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.redaction import REDACTOR
from reconciler.render.json_stream import error_of
from reconciler.schemas import StreamLine
from tests.cli.conftest import Served, start_emulator

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "stacks" / "quickstart.yaml"
SCHEMA = json.loads((ROOT / "schemas" / "ui-stream.schema.json").read_text())
TOKEN = "s3cret-fabric-token-9d1c"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(autouse=True)
def _forget_secrets() -> Any:
    yield
    REDACTOR.clear()


def run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def lines(out: str) -> list[dict[str, Any]]:
    """Every stdout line parsed and validated against the models and the schema file."""
    assert out.endswith("\n")
    parsed = [json.loads(text) for text in out.splitlines()]
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - the pydantic models are the schema's source
        validator = None
    else:
        validator = jsonschema_rs.validator_for(SCHEMA)
    for obj in parsed:
        StreamLine.model_validate(obj)
        if validator is not None:
            validator.validate(obj)
        assert obj["format_version"] == 1 and TIMESTAMP.match(obj["@timestamp"]), obj
        assert datetime.fromisoformat(obj["@timestamp"].replace("Z", "+00:00")).utcoffset() is not None
    return parsed


def quickstart(tmp: Path, *, url: str = "embedded", name: str = "chat-{{ var.env }}") -> Path:
    text = QUICKSTART.read_text()
    provider = f'fabric: {{url: {url}, token: "{TOKEN}"'
    provider += ", provision_seconds: 0}" if url == "embedded" else "}"
    text = re.sub(r"(?m)^  fabric: \{url: embedded, token: .*$", "  " + provider, text)
    text = text.replace("name: chat-{{ var.env }}", f'name: "{name}"')
    stack = tmp / "s.yaml"
    stack.write_text(text)
    return stack


def types(objs: list[dict[str, Any]]) -> list[str]:
    return [o["type"] for o in objs]


def test_plan_json_streams_a_summary_the_changes_and_a_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    stack = quickstart(tmp_path)
    code, out, err = run(["plan", str(stack), "--json", "--detailed-exitcode"])
    assert code == 2, err
    objs = lines(out)
    assert types(objs) == ["plan_summary"] + ["resource_change"] * 4 + ["result"]
    summary, *changes, result = objs
    assert summary["stack"] == "quickstart" and summary["serial"] is None
    assert summary["counts"] == {"create": 4, "update": 0, "replace": 0, "delete": 0}
    assert [c["address"] for c in changes] == [
        "workspaces.main",
        "endpoints.infer",
        "models.llama",
        "deployments.chat",
    ]
    chat = changes[-1]
    assert chat["action"] == "create" and chat["platform"] == "fabric" and chat["kind"] == "service_instance"
    assert "config.model_instance_config.resource.max" in chat["changed"]
    assert chat["after"]["endpoint_id"] == {"__unknown__": True} and chat["before"] is None
    assert result["ok"] is True and result["exit_code"] == 2 and result["error"] is None
    assert result["counts"] == summary["counts"]
    assert TOKEN not in out + err


def test_apply_json_streams_steps_then_the_result_with_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    stack = quickstart(tmp_path)
    code, out, err = run(["apply", str(stack), "--json", "--auto-approve"])
    assert code == 0, err
    objs = lines(out)
    kinds = types(objs)
    assert kinds[0] == "plan_summary" and kinds[-1] == "result"
    assert kinds[1:5] == ["resource_change"] * 4
    steps = objs[5:-1]
    assert {o["type"] for o in steps} == {"step_start", "step_finish"}
    starts = [(o["address"], o["op"]) for o in steps if o["type"] == "step_start"]
    finishes = [(o["address"], o["op"]) for o in steps if o["type"] == "step_finish"]
    assert sorted(starts) == sorted(finishes) and len(starts) == 4
    for o in steps:  # every step finishes after it started
        if o["type"] == "step_finish":
            assert o["ok"] is True and o["status"] == "ok" and o["error"] is None
            assert o["elapsed_seconds"] >= 0 and o["rollback"] is False
            before = steps[: steps.index(o)]
            assert any(s["type"] == "step_start" and s["address"] == o["address"] for s in before)
    result = objs[-1]
    assert result["ok"] is True and result["exit_code"] == 0
    assert result["counts"] == {"created": 4, "updated": 0, "deleted": 0, "failed": 0, "skipped": 0}
    assert set(result["outputs"]) == {"chat_id", "chat_url"}
    assert "Apply complete!" in err  # the human report goes to stderr
    assert TOKEN not in out + err

    # nothing to do: summary, no change, result
    code, out, err = run(["apply", str(stack), "--json", "--auto-approve"])
    assert code == 0, err
    objs = lines(out)
    assert types(objs) == ["plan_summary", "result"] and objs[0]["serial"] is not None


def test_apply_json_without_auto_approve_is_refused_with_a_result_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["apply", str(quickstart(tmp_path)), "--json"])
    assert code == 1
    (result,) = lines(out)
    assert result["type"] == "result" and result["ok"] is False and result["exit_code"] == 1
    assert "--auto-approve" in result["error"] and "--auto-approve" in err


def test_plan_json_error_ends_with_a_result_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("stack: bad\nproviders: {fabric: {url: embedded}}\nworkspaces:\n  main: {nme: x}\n")
    code, out, err = run(["plan", str(bad), "--json"])
    assert code == 1 and "the stack is invalid" in err
    (result,) = lines(out)
    assert result["ok"] is False and result["exit_code"] == 1 and "nme" in result["error"]
    code, out, err = run(["plan", str(bad), "--json", "--format", "markdown"])
    assert code == 1 and lines(out)[0]["type"] == "result"


@pytest.fixture
def doomed_emulator(tmp_path: Path) -> Any:
    served = start_emulator(tmp_path, "--fail-provisioning", "*-doomed", "--fabric-token", TOKEN)
    try:
        yield served
    finally:
        served.process.terminate()
        served.process.wait(timeout=10)


def test_failed_apply_streams_the_platform_error_and_a_failed_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doomed_emulator: Served
) -> None:
    monkeypatch.chdir(tmp_path)
    stack = quickstart(tmp_path, url=doomed_emulator.url, name="chat-doomed")
    code, out, err = run(["apply", str(stack), "--json", "--auto-approve"])
    assert code == 1, err
    objs = lines(out)
    assert objs[0]["type"] == "plan_summary" and objs[-1]["type"] == "result"
    failed = [o for o in objs if o["type"] == "step_finish" and not o["ok"]]
    assert len(failed) == 1
    (step,) = failed
    assert step["address"] == "deployments.chat" and step["op"] == "create" and step["status"] == "failed"
    assert step["rollback"] is False
    assert step["error"]["platform"] == "fabric"
    code_ = step["error"]["code"]  # the platform's own code (dataartsfabric.00010040 and the like)
    assert re.fullmatch(r"[a-z]+\.\d{8}", code_ or ""), step["error"]
    assert step["error"]["message"] and f"{code_}: {step['error']['message']}" in err
    rollback = [o for o in objs if o["type"] == "step_start" and o["rollback"]]
    assert rollback, "the rollback's steps are marked"
    result = objs[-1]
    assert result["ok"] is False and result["exit_code"] == 1
    assert result["counts"]["failed"] == 1 and "Apply failed" in result["error"]
    assert "Apply failed" in err
    assert TOKEN not in out + err


def test_error_of_reads_the_platform_code() -> None:
    text = "deployments.chat: fabric create service_instance failed: HTTP 409 DLM.0001: already exists"
    assert error_of(text, "fabric") == {
        "platform": "fabric",
        "code": "DLM.0001",
        "http_status": 409,
        "message": "already exists",
    }
    assert error_of("health gate did not answer", "fabric")["code"] is None


def saved_plan(tmp: Path) -> tuple[Path, str]:
    """A saved plan and what `plan --out` showed of it."""
    stack = quickstart(tmp)
    code, out, err = run(["plan", str(stack), "--out", str(tmp / "p.plan")])
    assert code == 0, err
    shown = "".join(t for t in out.splitlines(keepends=True) if not t.startswith("Saved the plan"))
    return tmp / "p.plan", shown


def test_show_prints_a_saved_plan_as_text_json_and_a_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    plan, shown = saved_plan(tmp_path)
    code, out, err = run(["show", str(plan)])
    assert code == 0, err
    # the same lines (a saved plan keeps its attributes sorted by name)
    assert sorted(out.splitlines()) == sorted(shown.splitlines())
    assert "+ deployments.chat (fabric service_instance)" in out
    code, out, err = run(["show", str(plan), "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["summary"]["create"] == 4 and doc["stack"] == "quickstart"
    code, out, err = run(["show", str(plan), "--json"])
    assert code == 0, err
    assert types(lines(out)) == ["plan_summary"] + ["resource_change"] * 4 + ["result"]
    assert TOKEN not in out


def test_show_refuses_a_corrupted_plan_as_apply_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plan, _ = saved_plan(tmp_path)
    plan.write_text(plan.read_text().replace('"ml-dev"', '"ml-prod"'))
    code, out, err = run(["show", str(plan)])
    assert code == 1 and out == ""
    assert "checksum mismatch" in err
    _, _, apply_err = run(["apply", str(plan)])
    assert err == apply_err
    code, out, err = run(["show", str(plan), "--json"])
    assert code == 1
    (result,) = lines(out)
    assert result["ok"] is False and "checksum mismatch" in result["error"]
    (tmp_path / "empty.plan").write_text("")
    code, _, err = run(["show", str(tmp_path / "empty.plan")])
    assert code == 1 and "is empty" in err
