"""`reconciler drift`: changed, deleted and unmanaged resources on each platform, through the CLI.

Each test applies a stack to a served emulator, changes the platform out of
band through its own API (one change of each kind), and checks the report in
every format and the exit codes (0 none, 2 drift).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.schemas import DriftFile
from tests.review.conftest import FABRIC, MODEL_UUID, MODELSTUDIO, ZONE, ZSTACK, Cloud, zstack_job


def report(cloud: Cloud, stack: str) -> dict[str, Any]:
    result = cloud.cli("drift", stack, "--format", "json")
    assert result.code in (0, 2), result.err
    doc: dict[str, Any] = json.loads(result.out)
    DriftFile.model_validate(doc)
    assert (result.code == 2) == doc["drift"]
    return doc


def by_status(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"changed": [], "deleted": [], "unmanaged": []}
    for r in doc["resources"]:
        out[r["status"]].append(r)
    return out


def applied(cloud: Cloud, stack: str) -> dict[str, Any]:
    result = cloud.cli("apply", stack, "--auto-approve")
    assert result.code == 0, result.out + result.err
    clean = cloud.cli("drift", stack)
    assert clean.code == 0, clean.out + clean.err
    assert "No drift." in clean.out
    state: dict[str, Any] = json.loads(cloud.cli("state", "show", stack).out)
    return state["resources"]


def test_fabric_drift_of_each_kind(cloud: Cloud) -> None:
    stack = cloud.write("fab.yaml", FABRIC)
    resources = applied(cloud, stack)
    ws = resources["workspaces.main"]["id"]
    with cloud.fabric() as api:
        assert api.put(f"/v1/workspaces/{ws}", json={"description": "console edit"}).status_code == 200
        chat = resources["deployments.chat"]["id"]
        assert api.delete(f"/v1/workspaces/{ws}/services/instances/{chat}").status_code in (200, 204)
        stray = {
            "name": "stray",
            "type": "inference",
            "reserved_resource": {"mu": {"spec_code": "mu.llama3.8b", "min": 0, "max": 1}},
        }
        made = api.post(f"/v1/workspaces/{ws}/endpoints", json=stray)
        assert made.is_success, made.text

    found = by_status(report(cloud, stack))
    assert [(r["address"], r["attributes"]) for r in found["changed"]] == [
        (
            "workspaces.main",
            [{"path": "description", "recorded": "inference workspace", "live": "console edit"}],
        )
    ]
    assert [r["address"] for r in found["deleted"]] == ["deployments.chat"]
    assert [(r["kind"], r["name"], r["id"], r["address"]) for r in found["unmanaged"]] == [
        ("endpoint", "stray", made.json()["id"], None)
    ]
    assert found["unmanaged"][0]["where"] == f"fabric workspace ml-review ({ws})"

    text = cloud.cli("drift", stack)
    assert text.code == 2
    assert '~ description: recorded "inference workspace", live "console edit"' in text.out
    assert "- deployments.chat (fabric service_instance" in text.out
    assert "? fabric endpoint stray" in text.out
    assert "Drift: 1 changed, 1 deleted, 1 unmanaged." in text.out
    assert "reconciler apply fab.yaml" in text.out and "reconciler apply --refresh-only fab.yaml" in text.out

    # apply puts the managed resources back; the unmanaged endpoint stays and is still reported
    assert cloud.cli("apply", stack, "--auto-approve").code == 0
    after = by_status(report(cloud, stack))
    assert (len(after["changed"]), len(after["deleted"]), len(after["unmanaged"])) == (0, 0, 1)


def test_modelstudio_drift_of_each_kind(cloud: Cloud) -> None:
    stack = cloud.write("ms.yaml", MODELSTUDIO)
    resources = applied(cloud, stack)
    qwen, flash = resources["deployments.qwen8b"]["id"], resources["deployments.flash"]["id"]
    with cloud.modelstudio() as api:
        scaled = api.put(f"/deployments/{qwen}/scale", json={"deployed_model": qwen, "capacity": 8})
        assert scaled.status_code == 200, scaled.text
        assert api.delete(f"/deployments/{flash}").status_code == 200
        body = {"model_name": "qwen3-8b", "name": "by-hand", "plan": "mu", "capacity": 4,
                "deploy_spec": "MU1", "suffix": "hand1", "billing_method": "POST_PAY"}  # fmt: skip
        made = api.post("/deployments", json=body)
        assert made.is_success, made.text

    found = by_status(report(cloud, stack))
    assert [(r["address"], r["attributes"]) for r in found["changed"]] == [
        ("deployments.qwen8b", [{"path": "capacity", "recorded": 4, "live": 8}])
    ]
    assert [r["address"] for r in found["deleted"]] == ["deployments.flash"]
    # the platform never returns the display name: an unmanaged deployment is named by model/suffix
    assert [(r["name"], r["id"]) for r in found["unmanaged"]] == [
        ("qwen3-8b/hand1", made.json()["output"]["deployed_model"])
    ]
    assert found["unmanaged"][0]["where"] == "modelstudio default workspace"


def test_zstack_drift_of_each_kind(cloud: Cloud) -> None:
    stack = cloud.write("zs.yaml", ZSTACK)
    resources = applied(cloud, stack)
    service, group = resources["models.qwen-svc"]["id"], resources["deployments.qwen"]["id"]
    with cloud.zstack() as api:
        updated = api.put(f"/ai/model-services/{service}", json={"updateModelService": {"requestCpu": 8}})
        assert updated.status_code == 200, updated.text
        zstack_job(api, api.delete(f"/ai/model-services/instances/groups/{group}"))
        deploy = {"deployModelService": {"name": "by-hand", "type": "Container", "zoneUuid": ZONE,
                                         "modelUuid": MODEL_UUID}}  # fmt: skip
        made = zstack_job(api, api.put(f"/ai/model-services/{service}/actions", json=deploy))

    found = by_status(report(cloud, stack))
    assert [(r["address"], r["attributes"]) for r in found["changed"]] == [
        ("models.qwen-svc", [{"path": "requestCpu", "recorded": 4, "live": 8}])
    ]
    assert [r["address"] for r in found["deleted"]] == ["deployments.qwen"]
    assert [(r["kind"], r["name"], r["id"]) for r in found["unmanaged"]] == [
        ("model_service_instance_group", "by-hand", made["inventory"]["uuid"])
    ]
    # the documented group view has no zoneUuid: unmanaged groups are looked for beside the stack's services
    assert found["unmanaged"][0]["where"] == f"zstack model service {service}"


def test_drift_markdown_report_goes_to_a_file_and_ignore_changes_is_honoured(cloud: Cloud) -> None:
    workspace = (
        "{name: ml-review, description: inference workspace, lifecycle: {ignore_changes: [description]}}"
    )
    stack = cloud.write("fab.yaml", FABRIC, workspace=workspace)
    resources = applied(cloud, stack)
    ws = resources["workspaces.main"]["id"]
    with cloud.fabric() as api:
        assert api.put(f"/v1/workspaces/{ws}", json={"description": "console edit"}).status_code == 200
    quiet = cloud.cli("drift", stack, "--format", "markdown", "--out", "drift.md")
    assert quiet.code == 0, quiet.out + quiet.err
    assert quiet.out == "No drift. Report written to drift.md.\n"
    assert "No drift." in (cloud.cwd / "drift.md").read_text()

    with cloud.fabric() as api:
        assert api.put(f"/v1/workspaces/{ws}", json={"name": "ml-renamed"}).status_code == 200
    loud = cloud.cli("drift", stack, "--format", "markdown", "--out", "reports/drift.md")
    assert loud.code == 2
    assert loud.out == "Drift: 1 changed, 0 deleted, 0 unmanaged. Report written to reports/drift.md.\n"
    md = (cloud.cwd / "reports" / "drift.md").read_text()
    assert md.startswith("<!-- reconciler-drift: fab -->\n")
    assert '| `name` | `"ml-review"` | `"ml-renamed"` |' in md
    assert "description" not in md.split("#### Changed out of band")[1]


def test_drift_errors_exit_1(cloud: Cloud) -> None:
    stack = cloud.write("fab.yaml", FABRIC)
    assert cloud.cli("apply", stack, "--auto-approve").code == 0
    wrong = cloud.cli("drift", stack, env={"FABRIC_TOKEN": "not-the-token"})
    assert wrong.code == 1
    assert "fabric" in wrong.err and wrong.out == ""


# -- the pure parts ----------------------------------------------------------------------------------


def test_drifted_attributes_compare_managed_keys_only_and_honour_read_only_and_ignore() -> None:
    from reconciler.drift import drifted_attributes
    from reconciler.providers.base import KindSpec

    spec = KindSpec("thing", read_only=frozenset({"status"}))
    recorded = {"name": "a", "config": {"min": 1, "max": 2}, "status": "RUNNING", "extra": 1, "note": "x"}
    live = {"name": "a", "config": {"min": 1, "max": 3}, "status": "UPDATING", "extra": 2, "note": "y"}
    managed = {"name": "a", "config": {"min": 1, "max": 2}, "status": "x", "note": "x"}
    found = drifted_attributes(recorded, live, spec, managed, ignore=("note",))
    assert [(d.path, d.before, d.after) for d in found] == [("config.max", 2, 3)]  # before: recorded
    everything = drifted_attributes(recorded, live, spec, None)
    assert [d.path for d in everything] == ["config.max", "extra", "note"]


def test_managed_scopes_follow_what_the_stack_records_and_declares() -> None:
    from reconciler.scopes import managed_scopes
    from reconciler.stack.spec import ResourceSpec, Stack
    from reconciler.state.document import ResourceState, StateDoc

    state = StateDoc.new("s")
    for rs in (
        ResourceState(address="workspaces.w", platform="fabric", kind="workspace", id="ws-1", name="ml"),
        ResourceState(address="deployments.g", platform="zstack", kind="model_service_instance_group",
                      id="g-1", attributes={"modelServiceUuid": "svc-a"}),
    ):  # fmt: skip
        state = state.with_resource(rs)
    ms = ResourceSpec("deployments.q", "deployments", "q", "modelstudio", "deployment", {})
    stack = Stack("s", "s.yaml", {"fabric": {}, "zstack": {}, "modelstudio": {"workspace": "team-a"}}, {}, {},
                  {"deployments.q": ms}, {}, "d")  # fmt: skip
    scopes = managed_scopes(stack, state, None)
    assert [(s.platform, s.kind, dict(s.scope), s.attribute, sorted(s.values)) for s in scopes] == [
        ("fabric", "endpoint", {"workspace_id": "ws-1"}, None, []),
        ("fabric", "model", {"workspace_id": "ws-1"}, None, []),
        ("fabric", "service_instance", {"workspace_id": "ws-1"}, None, []),
        ("modelstudio", "deployment", {}, None, []),
        ("zstack", "model_service_instance_group", {}, "modelServiceUuid", ["svc-a"]),
    ]
    assert scopes[3].where == "modelstudio workspace team-a"
    assert managed_scopes(Stack("s", "s.yaml", {}, {}, {}, {}, {}, "d"), state, None) == ()
