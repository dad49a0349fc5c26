"""The ZStack emulator's routes: session login, asynchronous jobs, the AI model-service APIs.

Paths (all under ``/zstack/v1``; ``A`` = asynchronous: 202 ``{"location"}`` then the job):

=======  =================================================  ===========================================
method   path                                               API
=======  =================================================  ===========================================
PUT      /accounts/login                                    LogInByAccount (no Authorization needed)
GET      /api-jobs/{uuid}                                   a job: 202 running, 200 result, 503 failed,
                                                            404 expired (no Authorization needed)
GET      /zones[/{uuid}]                                    QueryZone
GET      /ai/model-centers[/{uuid}]                         QueryModelCenter
GET      /ai/models[/{uuid}]                                QueryModel
POST     /ai/model-services  ``{"params"}``                 AddModelService (A)
GET      /ai/model-services[/{uuid}]                        QueryModelService
PUT      /ai/model-services/{uuid}                          UpdateModelService (``{"updateModelService"}``,
                                                            ``{"params"}`` or the fields flat)
PUT      /ai/model-services/{uuid}/actions                  ``{"updateModelService"}`` (sync) or
                                                            DeployModelService (A): ``{"params"}`` as
                                                            the Go SDK sends it, or ``{"deployModelService"}``
DELETE   /ai/model-services/{uuid}?deleteMode=              DeleteModelService (A)
GET      /ai/model-services/instances/groups[/{uuid}]       QueryModelServiceInstanceGroup
PUT      /model-service-instance-groups/{uuid}              UpdateModelServiceInstanceGroup (A), Go SDK
                                                            path, ``{"updateModelServiceInstanceGroup"}``
                                                            or ``{"params"}``
PUT      /ai/model-services/instances/groups/{uuid}/actions the same, as an action
DELETE   /ai/model-services/instances/groups/{uuid}         DeleteModelServiceInstanceGroup (A)
=======  =================================================  ===========================================

As ZStack's REST server does: a missing ``Authorization`` header, or one not
of the form ``OAuth <session uuid>``, is a plain-text 400; an unknown path a
plain-text 404 (a known path with another method, 405). An unknown or
expired session answers ``ID.1001``: with 503 on a synchronous API, and on an
asynchronous one through its job (the API runs after the 202, so the refusal
is the job's result). Malformed JSON is a 400 with the ``{"error"}``
envelope (``SYS.1007``); a field of the wrong type is ``SYS.1007`` from the
API (503, or the failed job). Job polls need no session, as in ZStack.

Answers carry only the fields the Go SDK's generated views document
(``zstack-sdk-go-v2``, ``pkg/view``) and seed 003 (UpdateModelService), nulls
omitted (Go ``omitempty``); internal data lives under ``_``-keys and never
leaves (see ``zstack_cloud.public``).

Every route goes through :func:`_route`, the one place that authenticates,
parses the body, takes the store's lock, settles due lifecycle steps, runs the
handler and saves. Handlers live in ``zstack_ai``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from reconciler.emulators import envelope
from reconciler.emulators import zstack_ai as ai
from reconciler.emulators.envelope import ApiError
from reconciler.emulators.store import JsonObject, Store
from reconciler.emulators.zstack_cloud import (
    BROKEN_MODEL_UUID,
    MODEL_CENTER_UUID,
    ZONE_1_UUID,
    ZONE_2_UUID,
    Call,
    ZStackCloud,
    ZStackSettings,
)
from reconciler.emulators.zstack_errors import PlainTextError, ZStackError

__all__ = [
    "BROKEN_MODEL_UUID",
    "MODEL_CENTER_UUID",
    "ZONE_1_UUID",
    "ZONE_2_UUID",
    "ZStackSettings",
    "build_zstack_app",
    "zstack_routes",
]

PREFIX = "/zstack/v1"
SERVICE = "/ai/model-services/{uuid}"
GROUPS = "/ai/model-services/instances/groups"
GROUP = GROUPS + "/{uuid}"
ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

Mode = Literal["open", "sync", "async"]
Api = tuple[Mode, Callable[[ZStackCloud, Call], Any]]

# path -> method -> the API, or for an action path: action key -> the API
ROUTES: tuple[tuple[str, str, Api | Mapping[str, Api]], ...] = (
    ("/accounts/login", "PUT", ("open", ai.login)),
    ("/zones", "GET", ("sync", ai.query_zones)),
    ("/zones/{uuid}", "GET", ("sync", ai.query_zones)),
    ("/ai/model-centers", "GET", ("sync", ai.query_model_centers)),
    ("/ai/model-centers/{uuid}", "GET", ("sync", ai.query_model_centers)),
    ("/ai/models", "GET", ("sync", ai.query_models)),
    ("/ai/models/{uuid}", "GET", ("sync", ai.query_models)),
    (GROUPS, "GET", ("sync", ai.query_groups)),
    (GROUP, "GET", ("sync", ai.query_groups)),
    (GROUP, "DELETE", ("async", ai.delete_group)),
    (
        GROUP + "/actions",
        "PUT",
        {"updateModelServiceInstanceGroup": ("async", ai.update_group), "params": ("async", ai.update_group)},
    ),
    ("/model-service-instance-groups/{uuid}", "PUT", ("async", ai.update_group)),
    ("/ai/model-services", "POST", ("async", ai.add_model_service)),
    ("/ai/model-services", "GET", ("sync", ai.query_model_services)),
    (SERVICE, "GET", ("sync", ai.query_model_services)),
    (SERVICE, "PUT", ("sync", ai.update_model_service)),
    (SERVICE, "DELETE", ("async", ai.delete_model_service)),
    (
        SERVICE + "/actions",
        "PUT",
        {
            "updateModelService": ("sync", ai.update_model_service),
            "deployModelService": ("async", ai.deploy_model_service),
            # the Go SDK's DeployModelServiceParam: PUT .../{uuid}/actions with {"params": {...}}
            "params": ("async", ai.deploy_model_service),
        },
    ),
)


def zstack_routes(store: Store, settings: ZStackSettings) -> list[BaseRoute]:
    """Every ZStack route, answering from the ``zstack.*`` collections of ``store``.

    The last route answers everything else under ``/zstack`` with ZStack's
    plain-text 404 (or 405), so the app's own not-found envelope never shows here.
    """
    cloud = ZStackCloud(settings, store)
    routes: list[BaseRoute] = [
        Route(PREFIX + "/api-jobs/{uuid}", _job_endpoint(cloud), methods=ALL_METHODS, name="zstack.job")
    ]
    routes += [_route(cloud, PREFIX + path, method, api) for path, method, api in ROUTES]
    routes.append(
        Route("/zstack/{rest:path}", _fallback(list(routes)), methods=ALL_METHODS, name="zstack.none")
    )
    return routes


def build_zstack_app(settings: ZStackSettings, store: Store) -> Starlette:
    """An app serving only ZStack (the embedded provider's in-process cloud)."""
    app = Starlette(routes=zstack_routes(store, settings), exception_handlers={ApiError: _answer_api_error})
    app.state.store = store
    return app


# -- the one gate ----------------------------------------------------------------------


def session_of(request: Request) -> str:
    """The session uuid of ``Authorization: OAuth <uuid>``, or the REST layer's plain-text 400."""
    auth = request.headers.get("Authorization")
    if auth is None:
        raise PlainTextError(400, "missing header 'Authorization'")
    auth = auth.strip()
    if not auth.startswith("OAuth"):
        raise PlainTextError(400, "Authorization type must be 'OAuth'")
    return auth.removeprefix("OAuth").strip()


async def read_body(request: Request) -> JsonObject:
    """The body as a JSON object; empty is ``{}`` (ZStack treats it as no fields)."""
    try:
        envelope.check_json_type(request)
        raw = await envelope.read_body(request)
    except envelope.BodyRefused as exc:
        raise ZStackError("SYS.1007", f"the request body is refused: {exc.reason}", status_code=400) from None
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ZStackError("SYS.1007", f"the request body is not valid JSON: {exc}", status_code=400) from exc
    except RecursionError:
        raise ZStackError("SYS.1007", "the request body is nested too deeply", status_code=400) from None
    if not isinstance(body, dict):
        raise ZStackError("SYS.1007", "the request body must be a JSON object", status_code=400)
    return body


def _route(cloud: ZStackCloud, path: str, method: str, api: Api | Mapping[str, Api]) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            chosen = api if isinstance(api, tuple) else None
            session = None if chosen is not None and chosen[0] == "open" else session_of(request)
            body = await read_body(request) if method in ("POST", "PUT") else {}
            if chosen is None:
                assert isinstance(api, Mapping)
                chosen = next((api[key] for key in api if key in body), None)
                if chosen is None:
                    url = request.url.path
                    raise PlainTextError(400, f"the body doesn't contain action mapping to the URL[{url}]")
            with cloud.store.transaction():
                cloud.settle()
                return _run(cloud, chosen, Call(request, body, session))
        except ApiError as exc:
            return exc.response()

    name = api[1].__name__ if isinstance(api, tuple) else "action"
    return Route(path, endpoint, methods=[method], name=f"zstack.{name}.{method.lower()}")


def _run(cloud: ZStackCloud, api: Api, call: Call) -> Response:
    mode, handler = api
    if mode == "open":
        response: Response = handler(cloud, call)
        return response
    if mode == "sync":
        cloud.require_session(call.session_uuid)
        response = handler(cloud, call)
        return response
    try:
        cloud.require_session(call.session_uuid)
        job: JsonObject = handler(cloud, call)
    except ZStackError as exc:  # the API ran after the 202 and failed: the job says so at once
        job = cloud.add_job(error=exc.error, done_at=cloud.now())
    location = f"{call.base_url}{PREFIX}/api-jobs/{job['uuid']}"
    return JSONResponse({"location": location}, status_code=202)


def _job_endpoint(cloud: ZStackCloud) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        if request.method != "GET":
            return PlainTextError(405, "only GET method is allowed for querying job status").response()
        with cloud.store.transaction():
            cloud.settle()
            job = cloud.jobs.get(str(request.path_params["uuid"]))
            if job is None:
                return PlainTextError(404, "the job has been expired").response()
            if cloud.now() < float(job["_done_at"]):
                return Response(status_code=202)
            if job["_error"] is not None:
                return JSONResponse({"error": job["_error"]}, status_code=503)
            if job["_result"] is None:
                return Response(status_code=200)
            inventory = cloud.view_of(job["_result"], job["_target"]) or job["_snapshot"]
            return JSONResponse({"inventory": inventory})

    return endpoint


def _fallback(routes: list[BaseRoute]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        path = request.url.path
        if any(route.matches(request.scope)[0] is Match.PARTIAL for route in routes):
            return PlainTextError(
                405, f"The method[{request.method}] is not allowed for the path[{path}]"
            ).response()
        return PlainTextError(404, f"no api mapping to {path}").response()

    return endpoint


async def _answer_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()
