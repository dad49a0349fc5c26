"""The Model Studio (DashScope) deployments emulator: ``/api/v1/deployments...``.

Faithful to the platform's deployment API as its official ``dashscope`` client
(1.x ``dashscope.Deployments`` and the 2.x ``Client().deployments``) speaks it:
success is HTTP 200 with ``{"request_id", "output"}``; an error is
``{"request_id", "code", "message"}``. Lifecycles are lazy (see
:mod:`~reconciler.emulators.lifecycle`): create is PENDING then RUNNING,
scale and update are UPDATING then RUNNING (STOPPED when capacity is 0),
delete is DELETING then gone, each lasting ``provision_seconds``. A
deployment whose ``name`` matches a ``fail_provisioning`` glob ends its
creation FAILED instead, with a ``message`` saying the region ran out of
capacity (as a real deployment does); it can only be deleted.

What an answer carries is seed 002's response parameter tables and nothing
else (:data:`DEPLOYMENT_FIELDS`): a deployment never shows the request-only
``name`` (kept internally as ``_name``, for ``fail_provisioning``), unset
optional fields are left out rather than null, and ``rpm_limit`` is a String
as the response table types it (a Number in the request table; the SDK's
response models do not carry it). Where the page is silent, the ``dashscope``
SDK's response models decide: the list is ``{page_no, page_size, total,
deployments}`` and a delete answers ``{status}`` only (``CancelDeleteStatus``).
A FAILED deployment carries no message: neither the page nor the SDK returns one.

Error answers: ``{"request_id", "code", "message"}`` with the page's codes, and
its messages where it gives them. The page gives no HTTP statuses; those below
follow the SDK's error catalogue (InvalidParameter 400, InvalidApiKey 401,
NotFound 404, InternalError 500), except Conflict, which the SDK does not name
(409 is our choice; the 2.x client retries a 409 unless told not to):

======  ================  ======================================================
status  code              when
======  ================  ======================================================
400     InvalidParameter  a wrong capacity (the page's message); malformed JSON,
                          a wrong type, a value out of range (our wording: the
                          page publishes only the capacity message)
401     InvalidApiKey     missing or wrong ``Authorization: Bearer <api key>``
                          (the SDK's code; the page lists no auth error)
404     NotFound          unknown ``model_name`` or ``deployed_model`` ("Model:
                          xxx not found!"); an unknown path or method
409     Conflict          same model again without a new suffix, suffix taken
                          (the page's message); scale/update while the
                          deployment is not RUNNING/STOPPED (our wording)
500     InternalError     a bug in the emulator (the SDK's code)
======  ================  ======================================================

``deployed_model`` is ``<model_name>-<8 hex>`` plus ``-<suffix>`` when a suffix
is given (the documents' ``emo-35b3f106-sample01``). Deployments belong to the
workspace named by ``X-DashScope-WorkSpace`` (else the API key's default one);
times are UTC without a zone (``2025-06-17T11:00:38``).
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.emulators import lifecycle
from reconciler.emulators import modelstudio_rules as rules
from reconciler.emulators.envelope import ApiError
from reconciler.emulators.faults import FaultInjector, FaultSettings
from reconciler.emulators.modelstudio_catalogue import Catalogue, load_catalogue
from reconciler.emulators.modelstudio_rules import ModelStudioError, conflict, not_found, unauthorized
from reconciler.emulators.store import Collection, JsonObject, Store

DEPLOYMENTS = "modelstudio.deployments"
BASE = "/api/v1/deployments"
DEFAULT_WORKSPACE = "llm-emulator-workspace"
CREATOR = "emulator-user"
RUNNING, STOPPED, PENDING, UPDATING, DELETING = "RUNNING", "STOPPED", "PENDING", "UPDATING", "DELETING"
FAILED = "FAILED"
SETTLED = frozenset({RUNNING, STOPPED})
WORKSPACE_HEADER = "X-DashScope-WorkSpace"
# seed 002, "Response parameters" (output): every deployment; then "Returned only for Model Unit
# deployments"; then "Returned only for provisioned throughput (PTU) deployments"
COMMON_FIELDS = (
    "deployed_model", "gmt_create", "gmt_modified", "status", "model_name", "base_model",
    "base_capacity", "capacity", "ready_capacity", "workspace_id", "charge_type", "creator",
    "modifier", "plan",
)  # fmt: skip
MU_FIELDS = ("model_unit_spec", "enable_thinking", "max_context_length", "rpm_limit", "tpm_limit")
PTU_FIELDS = ("ptu_capacity",)
DEPLOYMENT_FIELDS = (*COMMON_FIELDS, *MU_FIELDS, *PTU_FIELDS)
# the response table types rpm_limit as String (the request table: Number); tpm_limit stays a Number
STRING_FIELDS = frozenset({"rpm_limit"})
# the account's "My Models": fine-tuned models deployable here (seed 002's LoRA example deploys this one)
CUSTOM_MODELS = ("qwen3-8b-ft-202511132025-0260",)


@dataclass(frozen=True)
class ModelStudioSettings:
    """``api_key``: the only key accepted. ``provision_seconds``: how long PENDING,
    UPDATING and DELETING last (0: the next request sees the end state).
    ``workspace_id``: the workspace of calls without ``X-DashScope-WorkSpace``.
    ``fail_provisioning``: name globs (``FaultSettings.fail_provisioning``);
    deployments so named end their creation FAILED. ``custom_models``: the
    fine-tuned models of the account ("My Models"), each ``<catalogue model>-ft-<id>``,
    deployable with the plans of the model it was tuned from."""

    api_key: str = "emulator-key"
    provision_seconds: float = 1.0
    clock: Callable[[], float] = time.time
    workspace_id: str = DEFAULT_WORKSPACE
    fail_provisioning: tuple[str, ...] = ()
    custom_models: tuple[str, ...] = CUSTOM_MODELS


def answer(output: Any) -> Response:
    return JSONResponse({"request_id": str(uuid.uuid4()), "output": output})


def public(obj: Mapping[str, Any]) -> JsonObject:
    """A deployment as the platform answers it: the documented fields only, unset ones left out."""
    out: JsonObject = {}
    for key in DEPLOYMENT_FIELDS:
        value = obj.get(key)
        if value is not None:
            out[key] = str(value) if key in STRING_FIELDS else value
    return out


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------- the account


@dataclass(frozen=True)
class Call:
    request: Request
    body: dict[str, Any]
    workspace: str

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])


class ModelStudioAccount:
    """The ``modelstudio.*`` collections of one store, with lookups and lifecycle steps."""

    def __init__(self, settings: ModelStudioSettings, store: Store, catalogue: Catalogue) -> None:
        self.settings = settings
        self.store = store
        self.catalogue = catalogue

    @property
    def deployments(self) -> Collection:
        return self.store.collection(DEPLOYMENTS)

    def now(self) -> float:
        return self.settings.clock()

    def settle(self) -> None:
        """Finish due transitions; a settled deployment's ready capacity catches up."""
        lifecycle.settle(self.deployments, self.now())
        for obj in self.deployments.values():
            if obj["status"] == RUNNING:
                obj["ready_capacity"] = obj["capacity"]
            elif obj["status"] == STOPPED:
                obj["ready_capacity"] = 0

    def begin(
        self, obj: JsonObject, status: str, then: str | None, fail: Mapping[str, Any] | None = None
    ) -> None:
        seconds = self.settings.provision_seconds
        lifecycle.begin(obj, status, then, now=self.now(), seconds=seconds, fail=fail)

    def provisioning_failure(self, obj: JsonObject) -> JsonObject | None:
        """The fields a new deployment ends with when provisioning it is set to fail, else None."""
        if not lifecycle.provisioning_fails(self.settings.fail_provisioning, obj.get("_name")):
            return None
        # kept internal: neither seed 002 nor the SDK's DeploymentOutput answers a failure message
        reason = f"Deployment of {obj['deployed_model']} failed: insufficient resources in the region."
        return {"status": FAILED, "_failure": reason}

    def touch(self, obj: JsonObject) -> None:
        obj["gmt_modified"] = timestamp(self.now())
        obj["modifier"] = CREATOR

    def visible(self, workspace: str) -> list[JsonObject]:
        return [obj for obj in self.deployments.values() if obj["_workspace"] == workspace]

    def deployment(self, call: Call) -> JsonObject:
        name = call.param("deployed_model")
        found = self.deployments.get(name)
        if found is None or found["_workspace"] != call.workspace:
            raise not_found(name)
        return found

    def settled(self, obj: JsonObject) -> JsonObject:
        """``obj`` when it may change now; else the platform's Conflict."""
        if obj["status"] not in SETTLED:
            name, status = obj["deployed_model"], obj["status"]
            raise conflict(f"Deployed model {name} is {status}, please retry when it is RUNNING.")
        return obj


# ---------------------------------------------------------------- handlers


def create_deployment(account: ModelStudioAccount, call: Call) -> Response:
    fields = rules.create_fields(call.body, account.catalogue)
    model_name, suffix = fields["model_name"], fields["suffix"]
    for other in account.deployments.values():
        if (suffix is not None and other["_suffix"] == suffix) or (
            suffix is None
            and other["_suffix"] is None
            and other["model_name"] == model_name
            and other["_workspace"] == call.workspace
        ):
            raise conflict(
                f"Deployed model {other['deployed_model']} already exists, please specify a suffix."
            )
    deployed_model = f"{model_name}-{uuid.uuid4().hex[:8]}" + (f"-{suffix}" if suffix else "")
    now = timestamp(account.now())
    obj: JsonObject = {
        "deployed_model": deployed_model,
        "gmt_create": now,
        "gmt_modified": now,
        "status": PENDING,
        "model_name": model_name,
        "base_model": fields["base_model"],
        "base_capacity": fields["base_capacity"],
        "capacity": fields["capacity"],
        "ready_capacity": 0,
        "workspace_id": call.workspace,
        "charge_type": "post_paid",
        "creator": CREATOR,
        "modifier": CREATOR,
        "plan": fields["plan"],
        **fields["plan_fields"],
        "_workspace": call.workspace,
        "_suffix": suffix,
        # a request-only parameter ("the display name in the console"): never answered
        "_name": fields["name"] or deployed_model,
    }
    then = STOPPED if obj["capacity"] == 0 else RUNNING
    account.begin(obj, PENDING, then, fail=account.provisioning_failure(obj))
    account.deployments[deployed_model] = obj
    return answer(public(obj))


def list_deployments(account: ModelStudioAccount, call: Call) -> Response:
    page_no, page_size = rules.page(call.request.query_params, max_size=200)
    items = account.visible(call.workspace)
    start = (page_no - 1) * page_size
    shown = [public(obj) for obj in items[start : start + page_size]]
    return answer({"page_no": page_no, "page_size": page_size, "total": len(items), "deployments": shown})


def get_deployment(account: ModelStudioAccount, call: Call) -> Response:
    return answer(public(account.deployment(call)))


def scale_deployment(account: ModelStudioAccount, call: Call) -> Response:
    obj = account.deployment(call)
    model = account.catalogue.model(obj["model_name"])
    if model is None:  # the catalogue shrank under a stored deployment
        raise not_found(obj["model_name"])
    changes = rules.scale_fields(call.body, obj, model, account.catalogue.ptu_defaults)
    account.settled(obj)
    obj.update(changes)
    if "capacity" in changes:
        obj["ready_capacity"] = min(obj["ready_capacity"], obj["capacity"])
    account.touch(obj)
    account.begin(obj, UPDATING, STOPPED if obj["capacity"] == 0 else RUNNING)
    return answer(public(obj))


def update_deployment(account: ModelStudioAccount, call: Call) -> Response:
    obj = account.deployment(call)
    changes = rules.limit_fields(call.body, obj)
    account.settled(obj)
    obj.update(changes)
    account.touch(obj)
    account.begin(obj, UPDATING, STOPPED if obj["capacity"] == 0 else RUNNING)
    return answer(public(obj))


def delete_deployment(account: ModelStudioAccount, call: Call) -> Response:
    obj = account.deployment(call)
    if obj["status"] != DELETING:  # deleting twice answers DELETING again
        account.touch(obj)
        account.begin(obj, DELETING, None)
    # the page is silent; the SDK reads a delete's output as CancelDeleteStatus / JobStatus: {status}
    return answer({"status": obj["status"]})


def stream_events(account: ModelStudioAccount, call: Call) -> Response:
    """A minimal event stream: one ``result`` event carrying the deployment as it is now."""
    obj = account.deployment(call)
    data = json.dumps({"request_id": str(uuid.uuid4()), "output": public(obj)}, separators=(",", ":"))
    return Response(f"id:1\nevent:result\ndata:{data}\n\n", media_type="text/event-stream")


def list_models(account: ModelStudioAccount, call: Call) -> Response:
    query = call.request.query_params
    page_no, page_size = rules.page(query, max_size=100)
    source = query.get("model_source", "base")
    if source not in ("base", "custom"):
        raise rules.invalid(f"Invalid model_source ({source}), model_source must be base or custom!")
    detailed = query.get("version") == "v1.0"
    models = account.catalogue.of_source(source)
    start = (page_no - 1) * page_size
    shown = [m.view(detailed=detailed) for m in models[start : start + page_size]]
    return answer({"page_no": page_no, "page_size": page_size, "total": len(models), "models": shown})


# ---------------------------------------------------------------- routing

Handler = Callable[[ModelStudioAccount, Call], Response]
ONE = BASE + "/{deployed_model}"
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    (BASE, "POST", create_deployment),
    (BASE, "GET", list_deployments),
    (BASE + "/models", "GET", list_models),  # before ONE, which would take "models" as a name
    (ONE, "GET", get_deployment),
    (ONE, "DELETE", delete_deployment),
    (ONE + "/scale", "PUT", scale_deployment),
    (ONE + "/update", "PUT", update_deployment),
    (ONE + "/stream", "GET", stream_events),
)


def authenticate(request: Request, settings: ModelStudioSettings) -> None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    expected = settings.api_key.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), expected):
        raise unauthorized()


def modelstudio_routes(store: Store, config: ModelStudioSettings) -> list[Route]:
    """Every deployments route, answering from the ``modelstudio.*`` collections of ``store``."""
    account = ModelStudioAccount(config, store, load_catalogue().with_custom(config.custom_models))
    return [_route(account, path, method, handler) for path, method, handler in ROUTES]


def _route(account: ModelStudioAccount, path: str, method: str, handler: Handler) -> Route:
    async def endpoint(request: Request) -> Response:
        authenticate(request, account.settings)
        body = await rules.read_body(request) if method in ("POST", "PUT") else {}
        workspace = request.headers.get(WORKSPACE_HEADER, "").strip() or account.settings.workspace_id
        with account.store.transaction():
            account.settle()
            return handler(account, Call(request, body, workspace))

    return Route(path, endpoint, methods=[method], name=f"modelstudio.{handler.__name__}")


def build_modelstudio_app(
    settings: ModelStudioSettings, data_file: Path | None = None, *, faults: FaultSettings | None = None
) -> Starlette:
    """A Model Studio-only app (its own store, kept in ``data_file`` if given): ``app.state.store``.

    Unknown paths and methods, and emulator bugs, answer in Model Studio's envelope.
    ``faults`` injects request faults (its ``fail_provisioning`` is ``settings``' business).
    """
    store = Store(data_file, clock=settings.clock)
    app = Starlette(
        routes=modelstudio_routes(store, settings),
        exception_handlers={
            ApiError: _answer_api_error,
            HTTPException: answer_http_exception,
            500: answer_internal_error,
        },
        middleware=[Middleware(FaultInjector, settings=faults or FaultSettings())],
    )
    app.state.store = store
    return app


async def _answer_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def answer_http_exception(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods: 404 NotFound in Model Studio's envelope.

    Neither the page nor the SDK names a code for a wrong method, so it is NotFound too
    (the path and method pair does not exist).
    """
    assert isinstance(exc, HTTPException)
    path = f"{request.method} {request.url.path}"
    return ModelStudioError(404, "NotFound", f"Path: {path} not found!").response()


async def answer_internal_error(request: Request, exc: Exception) -> Response:
    """An emulator bug, answered as the platform answers its own (500 InternalError)."""
    return ModelStudioError(
        500, "InternalError", "An internal error has occurred, please try again later."
    ).response()
