"""`plan --refresh-only` and `apply --refresh-only`: accept out-of-band changes into state, change nothing."""

from __future__ import annotations

import json
from typing import Any

from reconciler.schemas import PlanFile
from tests.review.conftest import FABRIC, MODELSTUDIO, Cloud


def state_of(cloud: Cloud, stack: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cloud.cli("state", "show", stack).out)
    return doc


def test_refresh_only_records_live_values_and_forgets_deleted_resources(cloud: Cloud) -> None:
    stack = cloud.write("ms.yaml", MODELSTUDIO)
    assert cloud.cli("apply", stack, "--auto-approve").code == 0
    before = state_of(cloud, stack)
    qwen = before["resources"]["deployments.qwen8b"]["id"]
    flash = before["resources"]["deployments.flash"]["id"]
    with cloud.modelstudio() as api:
        assert api.put(f"/deployments/{qwen}/scale", json={"deployed_model": qwen, "capacity": 8}).is_success
        assert api.delete(f"/deployments/{flash}").is_success

    planned = cloud.cli("plan", stack, "--refresh-only", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    assert "Objects changed outside of reconciler:" in planned.out
    assert (
        "~ deployments.qwen8b (modelstudio deployment)  # changed out of band; live values recorded"
        in planned.out
    )
    assert "~ capacity: 4 -> 8" in planned.out
    assert (
        "- deployments.flash (modelstudio deployment)  # deleted out of band; will be forgotten"
        in planned.out
    )
    assert "Refresh: 1 to record, 1 to forget." in planned.out
    as_json = json.loads(cloud.cli("plan", stack, "--refresh-only", "--format", "json").out)
    PlanFile.model_validate(as_json)
    assert as_json["refresh_only"] is True
    assert [(c["address"], c["action"]) for c in as_json["changes"] if c["action"] != "no-op"] == [
        ("deployments.flash", "delete"),
        ("deployments.qwen8b", "update"),
    ]

    applied = cloud.cli("apply", stack, "--refresh-only", "--auto-approve")
    assert applied.code == 0, applied.err
    assert (
        "Apply complete! Recorded the live values of 1 resource; forgot 1 resource deleted out of band. "
        "Nothing on the platforms changed." in applied.out
    )
    after = state_of(cloud, stack)
    assert after["serial"] == before["serial"] + 1
    assert sorted(after["resources"]) == ["deployments.qwen8b"]
    assert after["resources"]["deployments.qwen8b"]["attributes"]["capacity"] == 8
    with cloud.modelstudio() as api:  # nothing was put back
        assert api.get(f"/deployments/{qwen}").json()["output"]["capacity"] == 8
        assert api.get("/deployments").json()["output"]["total"] == 1

    assert cloud.cli("drift", stack).code == 0
    assert cloud.cli("plan", stack, "--refresh-only", "--detailed-exitcode").code == 0
    normal = cloud.cli("plan", stack)  # the stack still says capacity 4 and wants flash
    assert "~ capacity: 8 -> 4" in normal.out and "+ deployments.flash" in normal.out


def test_a_saved_refresh_only_plan_is_applied_and_a_stale_one_refused(cloud: Cloud) -> None:
    stack = cloud.write("fab.yaml", FABRIC)
    assert cloud.cli("apply", stack, "--auto-approve").code == 0
    ws = state_of(cloud, stack)["resources"]["workspaces.main"]["id"]
    with cloud.fabric() as api:
        assert api.put(f"/v1/workspaces/{ws}", json={"description": "console edit"}).status_code == 200

    saved = cloud.cli("plan", stack, "--refresh-only", "--out", "refresh.json")
    assert saved.code == 0 and "Saved the plan to refresh.json" in saved.out
    accepted = cloud.cli("apply", "refresh.json", "--refresh-only", "--auto-approve")
    assert accepted.code == 0, accepted.err  # --refresh-only with a refresh-only plan file is fine
    assert (
        state_of(cloud, stack)["resources"]["workspaces.main"]["attributes"]["description"] == "console edit"
    )
    stale = cloud.cli("apply", "refresh.json")
    assert stale.code == 1 and "plan is stale" in stale.err

    normal = cloud.cli("plan", stack, "--out", "normal.json")
    assert normal.code == 0
    refused = cloud.cli("apply", "normal.json", "--refresh-only")
    assert refused.code == 1
    assert "normal.json is not a refresh-only plan; plan with --refresh-only" in refused.err
    assert cloud.cli("plan", stack, "--refresh-only", "--destroy").code == 1
