"""The Model Studio emulator answers only what seed 002's response tables document, typed as they
type it; the SDK's response models agree where the page is silent; and the provider converges
(apply, then a no-op plan) on answers cut down to those shapes."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashscope.finetune import customize_types as sdk
from starlette.exceptions import StarletteDeprecationWarning

from reconciler.applier import Applier
from reconciler.emulators.modelstudio import ModelStudioSettings, build_modelstudio_app
from reconciler.planner import build_plan
from reconciler.providers.http import ApiClient
from reconciler.providers.modelstudio import ModelStudioProvider, modelstudio_error
from reconciler.refresh import refresh
from reconciler.stack.spec import Lifecycle, ResourceSpec, Stack
from reconciler.state.document import StateDoc
from tests.documented.modelstudio import (
    CHARGE_TYPES,
    COMMON,
    MU_ONLY,
    PAGE_ERRORS,
    PTU_ONLY,
    SDK_ERRORS,
    STATUSES,
    deployment_shape,
    page_message,
    router,
    wrong_types,
)
from tests.documented.shapes import DocumentedTransport, extras
from tests.fakes import MemoryBackend

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)
    from starlette.testclient import TestClient

KEY = "sk-shapes"
BASE = "/api/v1/deployments"
MU = {
    "name": "chat",
    "model_name": "qwen-plus-2025-12-01",
    "plan": "mu",
    "deploy_spec": "MU1",
    "enable_thinking": True,
    "capacity": 4,
    "max_context_length": 10000,
    "rpm_limit": 500,
    "tpm_limit": 1000,
}
PTU = {"name": "flash", "model_name": "qwen-flash-2025-07-28", "plan": "ptu"}
LORA = {"name": "ft", "model_name": "qwen3-8b-ft-202511132025-0260", "plan": "lora", "capacity": 1}


class Checked:
    """A client that checks every answer against the route's documented shape and types."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.found: list[str] = []
        self.codes: list[tuple[str, str]] = []

    def call(self, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        response = self.client.request(method, path, json=body)
        assert response.status_code == status, (method, path, response.text)
        shape = router(method, response.url.path, response.status_code)
        if shape is True:
            return response.text
        value = response.json()
        assert isinstance(shape, dict), (method, path)
        self.found.extend(f"{method} {path}: {p}" for p in extras(value, shape))
        self.found.extend(f"{method} {path}: missing {p}" for p in sorted(set(shape) - set(value)))
        if status >= 400:
            self.codes.append((value["code"], value["message"]))
            return value
        output = value["output"]
        for item in output.get("deployments", [output] if "deployed_model" in output else []):
            self.found.extend(f"{method} {path}: {p}" for p in wrong_types(item))
        return output


@pytest.fixture
def checked() -> Iterator[Checked]:
    settings = ModelStudioSettings(api_key=KEY, provision_seconds=0, clock=lambda: 1_750_158_038.0)
    app = build_modelstudio_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield Checked(client)


def test_the_sdk_response_models_name_no_field_the_page_lacks() -> None:
    """1.x DeploymentOutput is the page's common rows minus ``plan``; the list and delete outputs
    are the SDK's (the page documents neither), and the SDK types no MU or PTU field at all."""
    output_fields = set(sdk.DeploymentOutput.__annotations__)
    assert output_fields <= set(COMMON)
    assert set(COMMON) - output_fields == {"plan"}
    assert "rpm_limit" not in output_fields  # only the page types it (String): the page stands
    listed = {*sdk.DeploymentListOutput.__annotations__, *sdk.DashScopeBaseList.__annotations__}
    assert listed == {"page_no", "page_size", "total", "deployments"}
    assert set(sdk.CancelDeleteStatus.__annotations__) == {"status"}


def test_every_route_answers_only_documented_fields_with_documented_types(checked: Checked) -> None:
    mu = checked.call("POST", BASE, MU)
    ptu = checked.call("POST", BASE, PTU)
    lora = checked.call("POST", BASE, LORA)
    for created in (mu, ptu, lora):
        assert "name" not in created  # a request-only parameter
        assert created["status"] in STATUSES and created["charge_type"] in CHARGE_TYPES
    assert mu["rpm_limit"] == "500" and mu["tpm_limit"] == 1000  # String and Number, as the page types them
    assert extras(ptu, deployment_shape("ptu")) == [] and not set(MU_ONLY) & set(ptu)
    assert extras(mu, deployment_shape("mu")) == [] and not set(PTU_ONLY) & set(mu)
    assert extras(lora, deployment_shape("lora")) == []
    listed = checked.call("GET", BASE)
    assert [d["deployed_model"] for d in listed["deployments"]] == [
        d["deployed_model"] for d in (mu, ptu, lora)
    ]
    dm = mu["deployed_model"]
    assert checked.call("GET", f"{BASE}/{dm}")["status"] == "RUNNING"
    checked.call("PUT", f"{BASE}/{dm}/update", {"rpm_limit": 600})
    checked.call("PUT", f"{BASE}/{dm}/scale", {"deployed_model": dm, "capacity": 8})
    checked.call("PUT", f"{BASE}/{ptu['deployed_model']}/scale", {"ptu_capacity": {"input_tpm": 20000}})
    assert "data:" in checked.call("GET", f"{BASE}/{dm}/stream")
    checked.call("GET", f"{BASE}/models", None)
    checked.call("GET", f"{BASE}/models?version=v1.0&model_source=custom")
    assert checked.call("DELETE", f"{BASE}/{lora['deployed_model']}") == {"status": "DELETING"}
    assert checked.found == [], "\n".join(checked.found)


def test_errors_are_the_page_listed_codes_and_messages(checked: Checked) -> None:
    checked.call("POST", BASE, {**MU, "model_name": "qwen-none"}, status=404)
    checked.call("GET", f"{BASE}/qwen-none-00000000", status=404)
    checked.call("POST", BASE, {**MU, "capacity": 5}, status=400)
    first = checked.call("POST", BASE, MU)
    checked.call("POST", BASE, MU, status=409)
    checked.call("POST", BASE, {**MU, "suffix": "s1"})
    checked.call("POST", BASE, {**PTU, "suffix": "s1"}, status=409)
    checked.call("PUT", f"{BASE}/{first['deployed_model']}/scale", {"capacity": 6}, status=400)
    assert checked.found == [], "\n".join(checked.found)
    assert [code for code, _ in checked.codes] == [
        "NotFound", "NotFound", "InvalidParameter", "Conflict", "Conflict", "InvalidParameter",
    ]  # fmt: skip
    for code, message in checked.codes:
        assert page_message(code).fullmatch(message), (code, message)


def test_errors_the_page_does_not_list_use_only_its_codes_or_the_sdk_wire_codes(checked: Checked) -> None:
    checked.client.headers["Authorization"] = "Bearer wrong"
    checked.call("GET", BASE, status=401)
    checked.client.headers["Authorization"] = f"Bearer {KEY}"
    checked.call("PATCH", BASE, status=404)  # no code for a wrong method anywhere: NotFound
    checked.call("GET", "/api/v1/deployments/x/nothing", status=404)
    checked.call("POST", BASE, {**MU, "plan": "spot"}, status=400)
    assert checked.found == [], "\n".join(checked.found)
    assert {code for code, _ in checked.codes} <= set(PAGE_ERRORS) | SDK_ERRORS
    assert [code for code, _ in checked.codes] == [
        "InvalidApiKey",
        "NotFound",
        "NotFound",
        "InvalidParameter",
    ]


def test_a_failed_deployment_answers_no_message_and_no_name() -> None:
    settings = ModelStudioSettings(api_key=KEY, provision_seconds=0, fail_provisioning=("doomed*",))
    with TestClient(build_modelstudio_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as client:
        dm = client.post(BASE, json={**PTU, "name": "doomed-1"}).json()["output"]["deployed_model"]
        failed = client.get(f"{BASE}/{dm}").json()["output"]
    assert failed["status"] == "FAILED"
    assert extras(failed, deployment_shape("ptu")) == [] and "message" not in failed


# ---------------------------------------------------------------- the provider, as documented


def _stack(*bodies: dict[str, Any]) -> Stack:
    resources = {
        f"deployments.d{i}": ResourceSpec(
            address=f"deployments.d{i}",
            section="deployments",
            key=f"d{i}",
            platform="modelstudio",
            kind="deployment",
            attrs=dict(body),
            refs={},
            depends_on=(),
            lifecycle=Lifecycle(),
        )
        for i, body in enumerate(bodies)
    }
    return Stack(
        name="documented", file="documented.yaml", providers={"modelstudio": {}}, backend={},
        variables={}, resources=resources, outputs={}, digest="documented",
    )  # fmt: skip


def test_apply_then_plan_is_a_noop_through_the_documented_shapes() -> None:
    """All three of seed 002's plans, applied through answers cut to the page, then planned again."""
    settings = ModelStudioSettings(api_key=KEY, provision_seconds=0)
    transport = DocumentedTransport(httpx.ASGITransport(app=build_modelstudio_app(settings)), router)

    async def no_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    http = httpx.AsyncClient(
        base_url="http://modelstudio.test/api/v1",
        transport=transport,
        headers={"Authorization": f"Bearer {KEY}"},
    )
    client = ApiClient(http, platform="modelstudio", error_parser=modelstudio_error, secrets=(KEY,))
    provider = ModelStudioProvider(client, sleep=no_sleep)
    providers: dict[str, Any] = {"modelstudio": provider}
    stack = _stack({**MU, "billing_method": "POST_PAY"}, PTU, LORA)
    backend = MemoryBackend()

    async def go() -> None:
        live = await refresh(None, providers)
        plan = build_plan(stack, None, live, providers)
        report = await Applier(plan, stack, providers, backend, StateDoc.new("documented")).run()
        assert report.ok, report
        state = backend.read()
        again = build_plan(stack, state, await refresh(state, providers), providers)
        assert not again.has_changes, [(c.address, c.action, c.diff) for c in again.changes]
        await provider.aclose()

    asyncio.run(go())
    recorded = backend.read().resources
    assert recorded["deployments.d0"].attributes["rpm_limit"] == 500  # "500" on the wire
    assert transport.pruned == []  # the emulator sent nothing the page does not document
