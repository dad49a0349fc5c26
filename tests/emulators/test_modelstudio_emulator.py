"""The Model Studio deployments emulator against what a user of the real API would check.

Time never comes from the wall clock: every app gets a :class:`FakeClock`, and
transitions are driven by advancing it.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

from reconciler.emulators.envelope import ApiError
from reconciler.emulators.modelstudio import (
    DEFAULT_WORKSPACE,
    DEPLOYMENTS,
    ModelStudioSettings,
    build_modelstudio_app,
    modelstudio_routes,
)
from reconciler.emulators.modelstudio_catalogue import CatalogueError, load_catalogue, parse_catalogue
from reconciler.emulators.store import Store

with warnings.catch_warnings():
    # starlette 1.x prefers the httpx2 package for its test client; plain httpx works the same.
    warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)
    from starlette.testclient import TestClient

KEY = "sk-test"
BASE = "/api/v1/deployments"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
MU1 = {
    "model_name": "qwen3-8b",
    "plan": "mu",
    "deploy_spec": "MU1",
    "billing_method": "POST_PAY",
    "capacity": 4,
}
PTU = {"model_name": "qwen-flash-2025-07-28", "plan": "ptu", "name": "flash"}


class FakeClock:
    def __init__(self, now: float = 1_750_158_038.0) -> None:  # 2025-06-17T11:00:38 UTC
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(clock: FakeClock, provision_seconds: float = 0, data_file: Path | None = None) -> TestClient:
    settings = ModelStudioSettings(api_key=KEY, provision_seconds=provision_seconds, clock=clock)
    return TestClient(build_modelstudio_app(settings, data_file), headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture
def client(clock: FakeClock) -> Iterator[TestClient]:
    with make_client(clock) as test_client:
        yield test_client


@pytest.fixture
def slow(clock: FakeClock) -> Iterator[TestClient]:
    """Transitions take 10 seconds of fake time."""
    with make_client(clock, provision_seconds=10) as test_client:
        yield test_client


def assert_error(response: httpx.Response, status: int, code: str, *fragments: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"request_id", "code", "message"}
    assert body["code"] == code
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    return str(body["message"])


def output(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"request_id", "output"}
    assert isinstance(body["request_id"], str) and body["request_id"]
    return dict(body["output"])


def create(client: TestClient, **changes: Any) -> dict[str, Any]:
    body = {**MU1, **changes}
    return output(client.post(BASE, json={k: v for k, v in body.items() if v is not None}))


def status(client: TestClient, deployed_model: str) -> str:
    return str(output(client.get(f"{BASE}/{deployed_model}"))["status"])


# ---------------------------------------------------------------- auth and routing


@pytest.mark.parametrize("header", [None, "", "Bearer wrong", "Basic sk-test", f"Token {KEY}"])
@pytest.mark.parametrize("path", [BASE, f"{BASE}/models", f"{BASE}/x"])
def test_requests_without_the_right_key_are_refused(clock: FakeClock, header: str | None, path: str) -> None:
    with make_client(clock) as anonymous:
        anonymous.headers.pop("Authorization")
        headers = {} if header is None else {"Authorization": header}
        response = anonymous.get(path, headers=headers)
    assert assert_error(response, 401, "InvalidApiKey") == "Invalid API-key provided."


def test_the_bearer_scheme_is_case_insensitive(client: TestClient) -> None:
    output(client.get(BASE, headers={"Authorization": f"bearer {KEY}"}))


def test_unknown_paths_and_methods_answer_the_model_studio_envelope(client: TestClient) -> None:
    assert_error(client.get("/api/v1/nothing"), 404, "NotFound", "/api/v1/nothing")
    # neither seed 002 nor the SDK names a code for a wrong method: NotFound, naming the pair
    assert_error(client.patch(BASE), 404, "NotFound", f"PATCH {BASE}")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"capacity": NaN}', "not valid JSON"),
        (b"", "body is required"),
        (b"[1, 2]", "must be a JSON object"),
    ],
)
def test_unreadable_bodies_answer_400_not_500(client: TestClient, content: bytes, fragment: str) -> None:
    assert_error(client.post(BASE, content=content), 400, "InvalidParameter", fragment)
    dm = create(client)["deployed_model"]
    assert_error(client.put(f"{BASE}/{dm}/scale", content=content), 400, "InvalidParameter", fragment)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 2000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from([*MU1, "ptu_capacity", "suffix", "name", "enable_thinking", "rpm_limit", "tpm_limit"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(KEYS, JSON, max_size=4))
def test_wrong_types_never_crash_any_writing_route(clock: FakeClock, changes: dict[str, Any]) -> None:
    with make_client(clock) as client:
        answer = client.post(BASE, json={**MU1, **changes})
        assert answer.status_code in (200, 400, 404, 409), answer.text
        dm = create(client, suffix="fuzz")["deployed_model"]
        for path in (f"{BASE}/{dm}/scale", f"{BASE}/{dm}/update"):
            assert client.put(path, json=changes).status_code in (200, 400, 409)


# ---------------------------------------------------------------- create


def test_create_answers_a_pending_deployment_in_the_documented_shape(client: TestClient) -> None:
    created = create(client, name="chat", suffix="sample01", rpm_limit=60)
    assert re.fullmatch(r"qwen3-8b-[0-9a-f]{8}-sample01", created["deployed_model"])
    assert TIME.fullmatch(created["gmt_create"]) and created["gmt_create"] == "2025-06-17T11:00:38"
    assert created["gmt_modified"] == created["gmt_create"]
    expected = {
        "status": "PENDING",
        "model_name": "qwen3-8b",
        "base_model": "qwen3-8b",
        "base_capacity": 2,  # the page: Beijing qwen3-8b MU1 x 2
        "capacity": 4,
        "ready_capacity": 0,
        "workspace_id": DEFAULT_WORKSPACE,
        "charge_type": "post_paid",
        "plan": "mu",
        "model_unit_spec": "MU1",
        "enable_thinking": False,
        "max_context_length": 131072,
        "rpm_limit": "60",  # seed 002's response table types rpm_limit as String
    }
    assert {k: created[k] for k in expected} == expected
    assert created["creator"] == created["modifier"]
    # name is a request parameter only; an unset tpm_limit is left out, never null
    assert set(created) == {*expected, "deployed_model", "gmt_create", "gmt_modified", "creator", "modifier"}


def test_pending_becomes_running_after_provision_seconds(slow: TestClient, clock: FakeClock) -> None:
    dm = create(slow)["deployed_model"]
    clock.advance(9.9)
    assert status(slow, dm) == "PENDING"
    clock.advance(0.1)
    shown = output(slow.get(f"{BASE}/{dm}"))
    assert (shown["status"], shown["ready_capacity"]) == ("RUNNING", 4)


def test_zero_provision_seconds_settles_on_the_next_request(client: TestClient) -> None:
    dm = create(client)["deployed_model"]
    assert status(client, dm) == "RUNNING"


def test_a_capacity_of_zero_ends_stopped(client: TestClient) -> None:
    dm = create(client, capacity=0)["deployed_model"]
    assert status(client, dm) == "STOPPED"


def test_name_is_taken_but_never_answered(client: TestClient) -> None:
    """Seed 002 lists name among the request parameters only. Its request table says "Required:
    Yes", but the official SDK's create cannot send a name: here the SDK is followed, and a
    create without one is taken (see modelstudio_rules.create_fields)."""
    named = create(client, name="console name", suffix="n1")
    unnamed = create(client, name=None, suffix="n2")  # the official SDK's create sends no name
    assert re.fullmatch(r"qwen3-8b-[0-9a-f]{8}-n2", unnamed["deployed_model"])
    listed = output(client.get(BASE))["deployments"]
    for shown in (named, unnamed, *listed, output(client.get(f"{BASE}/{named['deployed_model']}"))):
        assert "name" not in shown and "console name" not in json.dumps(shown)


def test_the_model_unit_example_needs_no_billing_method(client: TestClient) -> None:
    """Seed 002's model unit example sends no billing_method, though its request table calls it
    required for plan mu and the SDK says MU creates are refused without it: the page's example
    stands, and POST_PAY (the only value allowed) is what the deployment is billed by."""
    body = {k: v for k, v in MU1.items() if k != "billing_method"}
    created = output(client.post(BASE, json=body))
    assert (created["plan"], created["charge_type"]) == ("mu", "post_paid")


@pytest.mark.parametrize(
    ("changes", "status_code", "code", "fragment"),
    [
        ({"model_name": None}, 400, "InvalidParameter", "model_name is required"),
        ({"model_name": 7}, 400, "InvalidParameter", "model_name must be a string"),
        ({"model_name": "qwen-nope"}, 404, "NotFound", "Model: qwen-nope not found!"),
        ({"plan": "spot"}, 400, "InvalidParameter", "Invalid plan (spot)"),
        ({"plan": "ptu"}, 400, "InvalidParameter", "does not support plan ptu"),
        ({"plan": None}, 400, "InvalidParameter", "plan is required for model qwen3-8b"),
        ({"deploy_spec": None}, 400, "InvalidParameter", "deploy_spec is required"),
        (
            {"deploy_spec": "MU9"},
            400,
            "InvalidParameter",
            "Invalid deploy_spec (MU9), model qwen3-8b supports: MU1, MU2, MU5",
        ),
        ({"billing_method": "PRE_PAY"}, 400, "InvalidParameter", "billing_method must be POST_PAY"),
        ({"capacity": None}, 400, "InvalidParameter", "capacity is required"),
        (
            {"ptu_capacity": {"input_tpm": 10000}},
            400,
            "InvalidParameter",
            "ptu_capacity is not supported for plan mu",
        ),
        ({"enable_thinking": "yes"}, 400, "InvalidParameter", "enable_thinking must be a boolean"),
        ({"max_context_length": 200000}, 400, "InvalidParameter", "between 1 and 131072"),
        ({"rpm_limit": 0}, 400, "InvalidParameter", "Invalid rpm_limit (0)"),
        ({"tpm_limit": 1.5}, 400, "InvalidParameter", "Invalid tpm_limit (1.5)"),
        ({"suffix": "toolong99"}, 400, "InvalidParameter", "Invalid suffix"),
        ({"suffix": "a-b"}, 400, "InvalidParameter", "Invalid suffix (a-b)"),
        ({"name": ""}, 400, "InvalidParameter", "Invalid name"),
    ],
)
def test_create_validation(
    client: TestClient, changes: dict[str, Any], status_code: int, code: str, fragment: str
) -> None:
    body = {k: v for k, v in {**MU1, **changes}.items() if v is not None}
    assert_error(client.post(BASE, json=body), status_code, code, fragment)
    assert output(client.get(BASE))["total"] == 0  # a refused create leaves nothing behind


@pytest.mark.parametrize(("value", "base"), [(5, 2), (1000, 2), (-4, 2), ("4", 2), (True, 2), (4.0, 2)])
def test_capacity_answers_the_documented_message(client: TestClient, value: Any, base: int) -> None:
    message = assert_error(client.post(BASE, json={**MU1, "capacity": value}), 400, "InvalidParameter")
    assert message == (
        f"Invalid capacity ({value}), capacity must be larger than or equal to 0 "
        f"and multiples of {base} and less than 1000!"
    )


def test_template_id_may_name_the_spec(client: TestClient) -> None:
    body = {**MU1, "template_id": "MU5", "capacity": 3, "model_version": "v1"}
    del body["deploy_spec"]
    created = output(client.post(BASE, json=body))
    assert (created["model_unit_spec"], created["base_capacity"]) == ("MU5", 1)


def test_without_a_plan_the_legacy_capacity_unit_plan_is_used(client: TestClient) -> None:
    created = output(client.post(BASE, json={"model_name": "emo", "capacity": 1, "suffix": "sample01"}))
    assert re.fullmatch(r"emo-[0-9a-f]{8}-sample01", created["deployed_model"])
    assert (created["plan"], created["capacity"], created["base_capacity"]) == ("cu", 1, 1)
    assert "model_unit_spec" not in created and "ptu_capacity" not in created
    assert_error(
        client.post(BASE, json={"model_name": "emo"}), 400, "InvalidParameter", "capacity is required"
    )
    assert_error(
        client.post(BASE, json={"model_name": "emo", "capacity": 1, "suffix": "b", "deploy_spec": "MU1"}),
        400,
        "InvalidParameter",
        "deploy_spec is not supported for plan cu",
    )


def test_a_fine_tuned_model_of_the_account_deploys_with_its_base_models_plans(client: TestClient) -> None:
    body = {"model_name": "qwen3-8b-ft-202511132025-0260", "plan": "lora", "capacity": 1, "name": "ft"}
    created = output(client.post(BASE, json=body))
    assert (created["model_name"], created["base_model"], created["plan"]) == (
        body["model_name"],
        "qwen3-8b",
        "lora",
    )
    assert re.fullmatch(r"qwen3-8b-ft-202511132025-0260-[0-9a-f]{8}", created["deployed_model"])
    other = {**body, "model_name": "qwen3-8b-ft-202511132025-9999"}  # not among the account's models
    assert_error(
        client.post(BASE, json=other), 404, "NotFound", "Model: qwen3-8b-ft-202511132025-9999 not found!"
    )


def test_the_accounts_fine_tuned_models_are_settings(clock: FakeClock) -> None:
    settings = ModelStudioSettings(api_key=KEY, clock=clock, custom_models=("qwen3-32b-ft-abc",))
    with TestClient(build_modelstudio_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as mine:
        custom = output(mine.get(f"{BASE}/models", params={"model_source": "custom"}))["models"]
        assert [m["model_name"] for m in custom] == ["qwen-plus-ft-20230703-cx7f", "qwen3-32b-ft-abc"]
    with pytest.raises(CatalogueError, match="not <catalogue model>-ft-<id>"):
        load_catalogue().with_custom(["my-own-model"])


def test_lora_capacity_defaults_to_one_step(client: TestClient) -> None:
    created = output(client.post(BASE, json={"model_name": "qwen3-8b", "plan": "lora"}))
    assert (created["plan"], created["capacity"]) == ("lora", 1)


def test_ptu_defaults_and_steps(client: TestClient) -> None:
    created = output(
        client.post(BASE, json={**PTU, "capacity": 1})
    )  # the official client always sends capacity
    assert created["ptu_capacity"] == {"input_tpm": 10000, "output_tpm": 1000, "thinking_output_tpm": 0}
    assert "model_unit_spec" not in created and "rpm_limit" not in created
    bigger = {"input_tpm": 30000, "output_tpm": 2000, "thinking_output_tpm": 1000}
    assert (
        output(client.post(BASE, json={**PTU, "suffix": "b", "ptu_capacity": bigger}))["ptu_capacity"]
        == bigger
    )


@pytest.mark.parametrize(
    ("ptu", "fragment"),
    [
        ({"input_tpm": 15000}, "ptu_capacity.input_tpm (15000)"),
        ({"input_tpm": 0}, "ptu_capacity.input_tpm (0)"),
        ({"output_tpm": 1500}, "ptu_capacity.output_tpm (1500)"),
        ({"speed": 1}, "unknown field(s) speed"),
        ([10000], "ptu_capacity must be an object"),
    ],
)
def test_ptu_capacity_validation(client: TestClient, ptu: Any, fragment: str) -> None:
    assert_error(client.post(BASE, json={**PTU, "ptu_capacity": ptu}), 400, "InvalidParameter", fragment)


def test_mu_only_fields_are_refused_on_ptu(client: TestClient) -> None:
    body = {**PTU, "rpm_limit": 10}
    assert_error(
        client.post(BASE, json=body), 400, "InvalidParameter", "rpm_limit is not supported for plan ptu"
    )


def test_deploying_a_model_again_needs_a_new_suffix(client: TestClient) -> None:
    first = create(client)["deployed_model"]
    message = assert_error(client.post(BASE, json=MU1), 409, "Conflict")
    assert message == f"Deployed model {first} already exists, please specify a suffix."
    second = create(client, suffix="two")["deployed_model"]
    assert_error(client.post(BASE, json={**MU1, "suffix": "two"}), 409, "Conflict", second)
    # a suffix is unique across models too
    assert_error(client.post(BASE, json={**PTU, "suffix": "two"}), 409, "Conflict", second)


def test_a_deleted_deployment_frees_its_model_and_suffix(slow: TestClient, clock: FakeClock) -> None:
    dm = create(slow, suffix="x1")["deployed_model"]
    output(slow.delete(f"{BASE}/{dm}"))
    assert_error(slow.post(BASE, json={**MU1, "suffix": "x1"}), 409, "Conflict")  # still DELETING
    clock.advance(10)
    assert_error(slow.get(f"{BASE}/{dm}"), 404, "NotFound")
    create(slow, suffix="x1")


# ---------------------------------------------------------------- list, get, workspaces


def test_list_pages_in_creation_order(client: TestClient) -> None:
    made = [create(client, suffix=f"s{i}")["deployed_model"] for i in range(5)]
    first = output(client.get(BASE, params={"page_no": 1, "page_size": 2}))
    assert (first["page_no"], first["page_size"], first["total"]) == (1, 2, 5)
    pages = [
        output(client.get(BASE, params={"page_no": n, "page_size": 2}))["deployments"] for n in (1, 2, 3, 4)
    ]
    assert [d["deployed_model"] for page in pages for d in page] == made
    assert output(client.get(BASE))["page_size"] == 50


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"page_no": 0}, "Invalid page_no (0)"), ({"page_size": 201}, "Invalid page_size (201)"),
     ({"page_size": 0}, "Invalid page_size (0)"), ({"page_no": "x"}, "Invalid page_no (x)")],
)  # fmt: skip
def test_list_paging_validation(client: TestClient, params: dict[str, Any], fragment: str) -> None:
    assert_error(client.get(BASE, params=params), 400, "InvalidParameter", fragment)


def test_get_of_an_unknown_deployment_is_not_found(client: TestClient) -> None:
    message = assert_error(client.get(f"{BASE}/qwen3-8b-00000000"), 404, "NotFound")
    assert message == "Model: qwen3-8b-00000000 not found!"
    assert_error(client.delete(f"{BASE}/nope"), 404, "NotFound", "Model: nope not found!")


def test_workspaces_see_only_their_own_deployments(client: TestClient) -> None:
    other = {"X-DashScope-WorkSpace": "llm-other"}
    mine = create(client)["deployed_model"]
    theirs = output(client.post(BASE, json=MU1, headers=other))  # the same model, another workspace
    assert theirs["workspace_id"] == "llm-other"
    assert [d["deployed_model"] for d in output(client.get(BASE, headers=other))["deployments"]] == [
        theirs["deployed_model"]
    ]
    assert_error(client.get(f"{BASE}/{mine}", headers=other), 404, "NotFound")


# ---------------------------------------------------------------- scale and update


def test_scale_moves_through_updating(slow: TestClient, clock: FakeClock) -> None:
    dm = create(slow, capacity=8)["deployed_model"]
    assert_error(slow.put(f"{BASE}/{dm}/scale", json={"capacity": 4}), 409, "Conflict", "is PENDING")
    clock.advance(10)
    scaled = output(slow.put(f"{BASE}/{dm}/scale", json={"deployed_model": dm, "capacity": 4}))
    assert (scaled["status"], scaled["capacity"], scaled["ready_capacity"]) == ("UPDATING", 4, 4)
    clock.advance(1)
    scaled = output(slow.get(f"{BASE}/{dm}"))
    assert scaled["gmt_modified"] > scaled["gmt_create"]
    clock.advance(10)
    assert output(slow.get(f"{BASE}/{dm}"))["status"] == "RUNNING"
    output(slow.put(f"{BASE}/{dm}/scale", json={"capacity": 12}))
    assert output(slow.get(f"{BASE}/{dm}"))["ready_capacity"] == 4  # the old units serve while new ones come
    clock.advance(10)
    assert output(slow.get(f"{BASE}/{dm}"))["ready_capacity"] == 12


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"capacity": 5}, "Invalid capacity (5)"),
        ({}, "capacity is required"),
        ({"deployed_model": "other", "capacity": 4}, "must match the path"),
        ({"ptu_capacity": {"input_tpm": 10000}}, "ptu_capacity is not supported for plan mu"),
    ],
)
def test_scale_validation(client: TestClient, body: dict[str, Any], fragment: str) -> None:
    dm = create(client)["deployed_model"]
    assert_error(client.put(f"{BASE}/{dm}/scale", json=body), 400, "InvalidParameter", fragment)


def test_scaling_to_zero_stops_and_back_runs(client: TestClient) -> None:
    dm = create(client)["deployed_model"]
    output(client.put(f"{BASE}/{dm}/scale", json={"capacity": 0}))
    assert output(client.get(f"{BASE}/{dm}"))["status"] == "STOPPED"
    output(client.put(f"{BASE}/{dm}/scale", json={"capacity": 8}))
    assert output(client.get(f"{BASE}/{dm}"))["status"] == "RUNNING"


def test_ptu_scales_by_ptu_capacity_keeping_unsent_keys(client: TestClient) -> None:
    dm = output(client.post(BASE, json=PTU))["deployed_model"]
    scaled = output(client.put(f"{BASE}/{dm}/scale", json={"ptu_capacity": {"output_tpm": 3000}}))
    assert scaled["ptu_capacity"] == {"input_tpm": 10000, "output_tpm": 3000, "thinking_output_tpm": 0}
    assert_error(
        client.put(f"{BASE}/{dm}/scale", json={"capacity": 2}), 400, "InvalidParameter", "ptu_capacity"
    )


def test_update_changes_limits_on_mu_only(client: TestClient) -> None:
    dm = create(client)["deployed_model"]
    assert_error(client.put(f"{BASE}/{dm}/update", json={}), 400, "InvalidParameter", "At least one")
    assert_error(
        client.put(f"{BASE}/{dm}/update", json={"rpm_limit": -1}), 400, "InvalidParameter", "rpm_limit"
    )
    updated = output(client.put(f"{BASE}/{dm}/update", json={"tpm_limit": 50000}))
    assert (updated["status"], updated["tpm_limit"]) == ("UPDATING", 50000)
    assert "rpm_limit" not in updated  # never set: left out
    updated = output(client.put(f"{BASE}/{dm}/update", json={"rpm_limit": 120}))
    assert (updated["rpm_limit"], updated["tpm_limit"]) == ("120", 50000)  # String, as documented
    assert status(client, dm) == "RUNNING"
    ptu = output(client.post(BASE, json=PTU))["deployed_model"]
    assert_error(
        client.put(f"{BASE}/{ptu}/update", json={"rpm_limit": 5}), 400, "InvalidParameter", "plan mu"
    )


# ---------------------------------------------------------------- delete, stream, models


def test_delete_answers_deleting_then_the_deployment_is_gone(slow: TestClient, clock: FakeClock) -> None:
    dm = create(slow)["deployed_model"]
    # the SDK reads a delete's output as {status} (CancelDeleteStatus); deleting while PENDING is allowed
    assert output(slow.delete(f"{BASE}/{dm}")) == {"status": "DELETING"}
    assert output(slow.delete(f"{BASE}/{dm}")) == {"status": "DELETING"}  # twice: the same answer
    assert status(slow, dm) == "DELETING"
    assert_error(slow.put(f"{BASE}/{dm}/scale", json={"capacity": 4}), 409, "Conflict", "is DELETING")
    clock.advance(10)
    assert_error(slow.get(f"{BASE}/{dm}"), 404, "NotFound")
    assert output(slow.get(BASE))["total"] == 0


def test_stream_sends_the_deployment_as_a_server_sent_event(client: TestClient) -> None:
    dm = create(client)["deployed_model"]
    response = client.get(f"{BASE}/{dm}/stream")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [line[len("data:") :] for line in response.text.splitlines() if line.startswith("data:")]
    assert json.loads(data[0])["output"]["deployed_model"] == dm
    assert_error(client.get(f"{BASE}/nope/stream"), 404, "NotFound")


def test_deployable_models_list_the_catalogue(client: TestClient) -> None:
    listed = output(client.get(f"{BASE}/models", params={"page_size": 100}))
    names = [m["model_name"] for m in listed["models"]]
    assert "qwen3-8b" in names and "qwen-plus-ft-20230703-cx7f" not in names
    assert listed["models"][0] == {"model_name": "qwen3-8b", "base_capacity": 1}
    detailed = output(client.get(f"{BASE}/models", params={"version": "v1.0"}))["models"][0]
    templates = detailed["plans"][0]["templates"]
    assert {t["template_id"]: t["roles"]["unified"]["capacity_unit_per_instance"] for t in templates} == {
        "MU1": 2,
        "MU2": 2,
        "MU5": 1,
    }
    custom = output(client.get(f"{BASE}/models", params={"model_source": "custom"}))
    assert [m["model_name"] for m in custom["models"]] == [
        "qwen-plus-ft-20230703-cx7f",
        "qwen3-8b-ft-202511132025-0260",  # the account's own fine-tuned model (seed 002's LoRA example)
    ]
    assert_error(
        client.get(f"{BASE}/models", params={"page_size": 101}), 400, "InvalidParameter", "page_size"
    )
    assert_error(
        client.get(f"{BASE}/models", params={"model_source": "x"}), 400, "InvalidParameter", "model_source"
    )


# ---------------------------------------------------------------- persistence and mounting


def test_the_cloud_outlives_the_app_through_its_data_file(tmp_path: Path, clock: FakeClock) -> None:
    data = tmp_path / "modelstudio.json"
    with make_client(clock, provision_seconds=10, data_file=data) as first:
        dm = create(first)["deployed_model"]
    with make_client(clock, provision_seconds=10, data_file=data) as second:
        assert status(second, dm) == "PENDING"
        clock.advance(10)
        assert status(second, dm) == "RUNNING"
    stored = json.loads(data.read_text())["collections"][DEPLOYMENTS]
    assert stored[dm]["status"] == "RUNNING"


def test_routes_mount_on_a_shared_store(clock: FakeClock) -> None:
    store = Store(clock=clock)
    settings = ModelStudioSettings(api_key=KEY, provision_seconds=0, clock=clock)

    async def api_error(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, ApiError)
        return exc.response()

    app = Starlette(routes=modelstudio_routes(store, settings), exception_handlers={ApiError: api_error})
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as shared:
        dm = create(shared)["deployed_model"]
        assert_error(shared.post(BASE, json=MU1), 409, "Conflict")
    assert dm in store.collection(DEPLOYMENTS)


def test_the_catalogue_carries_the_seed_prices() -> None:
    catalogue = load_catalogue()
    qwen = catalogue.models["qwen3-8b"]
    assert qwen.specs["MU5"].hourly_price["cn-beijing"] == 2.888
    assert (qwen.specs["MU1"].base_capacity, qwen.specs["MU1"].hourly_price["cn-beijing"]) == (2, 14.852)
    assert (qwen.specs["MU2"].base_capacity, qwen.specs["MU2"].hourly_price["cn-beijing"]) == (2, 17.328)
    qwen32 = catalogue.models["qwen3-32b"].specs["MU1"]
    assert (qwen32.base_capacity, qwen32.hourly_price["ap-southeast-1"]) == (4, 44.0)  # the bundle MU1 x 4
    flash = catalogue.models["qwen-flash-2025-07-28"].ptu_price
    assert flash is not None and flash.input_per_10k_tpm_hour["cn-beijing"] == 0.06
    plus = catalogue.models["qwen3.6-plus-2026-04-02"].ptu_price
    assert plus is not None and plus.output_per_1k_tpm_hour["ap-southeast-1"] == 0.72
    assert qwen.specs["MU5"].hourly_price["ap-southeast-1"] is None  # unknown, never zero


@pytest.mark.parametrize(
    "breakage",
    [
        {"format_version": 2},
        {"models": [{"model_name": "m", "plans": ["spot"], "regions": [], "specs": {}}]},
        {"models": [{"model_name": "m", "plans": ["mu"], "regions": [], "specs": {}}]},
        {"ptu_defaults": {"input_tpm": -1}},
    ],
)
def test_a_malformed_catalogue_is_refused(breakage: dict[str, Any]) -> None:
    document = {"format_version": 1, "regions": ["cn-beijing"], "ptu_defaults": {}, "models": [], **breakage}
    with pytest.raises(CatalogueError):
        parse_catalogue(document)
