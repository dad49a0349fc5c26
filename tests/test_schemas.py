"""schemas/ is generated from the models and kept current; real files validate against it."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.plan import Plan, plan_to_dict
from reconciler.planner import build_plan
from reconciler.render import json_stream, plan_json
from reconciler.schemas import PlanFile, StreamLine, render, schemas
from tests.fakes import FakeProvider, res, stack_of

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def test_schema_files_are_current() -> None:
    for name, schema in schemas().items():
        path = SCHEMAS / name
        assert path.exists(), f"{path} missing: run python -m reconciler.schemas schemas"
        assert path.read_text() == render(schema), (
            f"{name} is stale: run python -m reconciler.schemas schemas"
        )
    assert {"plan.schema.json", "state.schema.json", "stack.schema.json", "ui-stream.schema.json"} <= set(
        schemas()
    )


def a_plan() -> Plan:
    stack = stack_of(
        res("workspaces.w", {"name": "w"}),
        res("endpoints.e", {"name": "e"}, refs={"workspace": "workspaces.w"}),
    )
    return build_plan(stack, None, {}, {"fake": FakeProvider()})  # type: ignore[dict-item]


def test_plan_file_and_json_output_match_the_plan_schema() -> None:
    plan = a_plan()
    PlanFile.model_validate(plan_to_dict(plan))
    doc = json.loads(plan_json(plan))
    PlanFile.model_validate(doc)
    assert doc["summary"] == {"create": 2, "update": 0, "replace": 0, "delete": 0}
    assert doc["changes"][1]["after"]["workspace_id"] == {"__unknown__": True}


def test_plan_stream_lines_match_the_ui_stream_schema() -> None:
    plan = a_plan()
    objs = json_stream.plan_stream(plan, "plan", messages=["a warning"])
    objs.append(json_stream.result("plan", ok=True, exit_code=0, counts=plan.counts()))
    for obj in objs:
        StreamLine.model_validate(json.loads(json_stream.line(obj)))
    assert [o["type"] for o in objs] == [
        "plan_summary",
        "resource_change",
        "resource_change",
        "diagnostic",
        "result",
    ]
    schema = json.loads((SCHEMAS / "ui-stream.schema.json").read_text())
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == {
        "plan_summary",
        "resource_change",
        "diagnostic",
        "step_start",
        "step_progress",
        "step_finish",
        "step_skipped",
        "result",
    }
