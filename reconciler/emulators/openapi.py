"""OpenAPI 3.0 documents of the emulated APIs, served at ``/_emulator/openapi/<platform>.json``.

One document per platform (``fabric``, ``modelstudio``, ``zstack``), written
by hand from the platforms' references (see ``API.md``) and checked against
the emulators' own route tables: :func:`document` lists exactly the
(path, method) pairs of ``fabric.ROUTES``, ``modelstudio.ROUTES`` and
``zstack.ROUTES`` (a test keeps it so) with, per operation, its parameters,
request body, every status it answers and the body of each, error envelopes
included, and the credentials it needs. Schemathesis fuzzes each served
emulator against its document (``tests/hostile/test_emulator_fuzz.py``).

Success bodies are described loosely (the fields always present, more
allowed); error envelopes exactly. No document lists 500: an emulator answering
one has a bug. Pure: builds dictionaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.emulators import fabric, modelstudio, zstack

PLATFORMS = ("fabric", "modelstudio", "zstack")
Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}


def obj(required: Iterable[str] = (), **properties: Schema) -> Schema:
    """An object with these properties (others allowed), ``required`` among them."""
    out: Schema = {"type": "object", "properties": properties}
    if required := list(required):
        out["required"] = required
    return out


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def json_body(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _param(name: str, where: str, schema: Schema, *, required: bool = False, explode: bool = True) -> Schema:
    param: Schema = {"name": name, "in": where, "required": required or where == "path", "schema": schema}
    if schema.get("type") == "array":
        param["explode"] = explode
    return param


def _path_params(path: str) -> list[Schema]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    return [_param(name, "path", {"type": "string", "minLength": 1}) for name in names]


def _document(
    title: str, description: str, paths: Mapping[str, Mapping[str, Schema]], **extra: Any
) -> Schema:
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "paths": {path: dict(methods) for path, methods in paths.items()},
        **extra,
    }


def _add(paths: dict[str, dict[str, Schema]], path: str, method: str, operation: Schema) -> None:
    operation.setdefault("parameters", [])
    operation["parameters"] = _path_params(path) + operation["parameters"]
    paths.setdefault(path, {})[method.lower()] = operation


# -- DataArts Fabric -----------------------------------------------------------------------------------

FABRIC_ERROR: Schema = {
    "type": "object",
    "required": ["error_code", "error_msg"],
    "properties": {"error_code": STRING, "error_msg": STRING, "solution_msg": STRING},
}
_NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 64}
_DESCRIPTION: Schema = {"type": "string", "maxLength": 1024}
_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 36}
_MU = obj(["spec_code", "min", "max"], spec_code=STRING, min=INTEGER, max=INTEGER)
_POOL = obj(["spec_code", "max_num"], spec_code=STRING, warm_up_num=INTEGER, max_num=INTEGER)
_RESERVED = obj(mu=_MU, apu=_POOL, dpu=_POOL)
_VERSION = obj(
    ["name"],
    name=_NAME,
    description=_DESCRIPTION,
    config=obj(llm_model_config=obj(base_model_type=STRING, model_path=STRING)),
)
_INSTANCE_CONFIG = obj(
    ["model_instance_config"],
    model_instance_config=obj(
        ["resource"], resource=obj(["min", "max"], spec_code=STRING, min=INTEGER, max=INTEGER)
    ),
)
_SOURCE = obj(["id"], id=_ID, version_id=_ID)  # version_id optional on the deploy page
_PAGING = [_param("offset", "query", {"type": "integer", "minimum": 0}), _param("limit", "query", INTEGER)]

# (path, method) -> (summary, success status, success body or None, request body or None, query parameters)
_FABRIC_OPS: dict[tuple[str, str], tuple[str, int, Schema | None, Schema | None, list[Schema]]] = {
    ("/v1/workspaces", "POST"): (
        "CreateWorkspace",
        201,
        obj(["id", "name"], id=STRING, name=STRING),
        obj(["name"], name=_NAME, description=_DESCRIPTION, metastore_id=_ID, enterprise_project_id=_ID),
        [],
    ),
    ("/v1/workspaces", "GET"): (
        "ListWorkspaces",
        200,
        obj(["total", "workspaces"], total=INTEGER, workspaces=array(ANY_OBJECT)),
        None,
        [
            *_PAGING,
            _param("name", "query", STRING),
            _param("id", "query", STRING),
            _param("enterprise_project_id", "query", STRING),
        ],
    ),
    (fabric.WORKSPACE, "PUT"): (
        "UpdateWorkspace",
        200,
        obj(["id"], id=STRING),
        obj(name=_NAME, description=_DESCRIPTION, metastore_id=_ID),
        [],
    ),
    (fabric.WORKSPACE, "DELETE"): ("DeleteWorkspace", 204, None, None, []),
    (fabric.WORKSPACE + "/endpoints", "POST"): (
        "CreateEndpoint",
        201,
        obj(["id", "name"], id=STRING, name=STRING, status=STRING),
        obj(
            ["name", "type"],
            name=_NAME,
            description=_DESCRIPTION,
            type=STRING,
            reserved_resource=_RESERVED,
            public_access=BOOLEAN,
            custom_image_id=_ID,
        ),
        [],
    ),
    (fabric.WORKSPACE + "/endpoints", "GET"): (
        "ListEndpoints",
        200,
        obj(["total", "endpoints"], total=INTEGER, endpoints=array(ANY_OBJECT)),
        None,
        [
            *_PAGING,
            _param("name", "query", STRING),
            _param("endpoint_id", "query", STRING),
            _param("type", "query", STRING),
            _param("visibility", "query", STRING),
            _param("model_id", "query", STRING),
        ],
    ),
    (fabric.ENDPOINT, "GET"): ("ShowEndpoint", 200, obj(["id", "name"], id=STRING, name=STRING), None, []),
    (fabric.ENDPOINT, "PUT"): (
        "UpdateEndpoint",
        200,
        obj(["id"], id=STRING),
        obj(name=_NAME, description=_DESCRIPTION, reserved_resource=_RESERVED),
        [],
    ),
    (fabric.ENDPOINT, "DELETE"): ("DeleteEndpoint", 200, obj(["id"], id=STRING), None, []),
    (fabric.WORKSPACE + "/models", "POST"): (
        "CreateModel",
        201,
        obj(["id", "version_id"], id=STRING, version_id=STRING),
        obj(["name", "version"], name=_NAME, description=_DESCRIPTION, type=STRING, version=_VERSION),
        [],
    ),
    (fabric.WORKSPACE + "/models", "GET"): (
        "ListModels",
        200,
        obj(["total", "models"], total=INTEGER, models=array(ANY_OBJECT)),
        None,
        [
            *_PAGING,
            _param("name", "query", STRING),
            _param("id", "query", STRING),
            _param("type", "query", STRING),
            _param("visibility", "query", STRING),
            _param("sort_by", "query", STRING),
            _param("order_by", "query", STRING),
        ],
    ),
    (fabric.MODEL, "PUT"): (
        "UpdateModel",
        200,
        obj(["id"], id=STRING),
        obj(name=_NAME, description=_DESCRIPTION, current_version_id=_ID, version=_VERSION),
        [],
    ),
    (fabric.MODEL, "DELETE"): ("DeleteModel", 204, None, None, []),
    (fabric.MODEL + "/versions", "GET"): (
        "ListModelVersions",
        200,
        obj(["total", "versions"], total=INTEGER, versions=array(ANY_OBJECT)),
        None,
        _PAGING,
    ),
    (fabric.MODEL + "/versions/{version_id}", "DELETE"): ("DeleteModelVersion", 204, None, None, []),
    ("/v1/specs", "GET"): (
        "ListSpecs",
        200,
        obj(["total", "spec_codes"], total=INTEGER, spec_codes=array(ANY_OBJECT)),
        None,
        [*_PAGING, _param("spec_code", "query", STRING), _param("spec_types", "query", array(STRING))],
    ),
    (fabric.INSTANCES, "POST"): (
        "DeployServiceInstance",
        200,
        obj(["id"], id=STRING),
        obj(
            ["source", "name", "endpoint_id"],
            source=_SOURCE,
            name=_NAME,
            description=_DESCRIPTION,
            endpoint_id=_ID,
            config=_INSTANCE_CONFIG,
        ),
        [],
    ),
    (fabric.INSTANCES, "GET"): (
        "ListServiceInstances",
        200,
        obj(["total", "service_instances"], total=INTEGER, service_instances=array(ANY_OBJECT)),
        None,
        [
            *_PAGING,
            _param("id", "query", STRING),
            _param("name", "query", STRING),
            _param("endpoint_id", "query", STRING),
            _param("source_id", "query", STRING),
            _param("version_id", "query", STRING),
            _param("type", "query", STRING),
        ],
    ),
    (fabric.INSTANCE, "GET"): (
        "ShowServiceInstance",
        200,
        obj(["id", "name", "status"], id=STRING, name=STRING, status=STRING),
        None,
        [],
    ),
    (fabric.INSTANCE, "PUT"): (
        "UpdateServiceInstance",
        200,
        obj(["id"], id=STRING),
        obj(source=_SOURCE, name=_NAME, description=_DESCRIPTION, config=_INSTANCE_CONFIG),
        [],
    ),
    (fabric.INSTANCE, "DELETE"): ("DeleteServiceInstance", 204, None, None, []),
    (fabric.INSTANCE + "/invocations", "POST"): (
        "Invoke",
        200,
        None,
        obj(["messages"], messages=array(obj(["role", "content"], role=STRING, content=STRING))),
        [],
    ),
}


def fabric_document() -> Schema:
    errors = {
        "400": "Invalid request: malformed or oversized JSON, a wrong content type, a broken rule, or an id"
        " that names nothing (dataartsfabric.00010003/00010009)",
        "401": "No valid X-Auth-Token and no valid AK/SK signature (APIG.1002, APIG.0301)",
        "404": "Unknown id on a path that shows one object, or an unknown path",
    }
    paths: dict[str, dict[str, Schema]] = {}
    for path, method, _ in fabric.ROUTES:
        summary, status, success, body, query = _FABRIC_OPS[(path, method)]
        responses: dict[str, Schema] = {}
        if status == 204:
            responses["204"] = {"description": "Done; no body"}
        elif success is None:  # the invocation stream
            responses[str(status)] = {
                "description": "chat.completion.chunk events, then [DONE]",
                "content": {"text/event-stream": {"schema": STRING}},
            }
        else:
            responses[str(status)] = {"description": "Success", "content": json_body(success)}
        for code, text in errors.items():
            responses[code] = {"description": text, "content": json_body(FABRIC_ERROR)}
        operation: Schema = {
            "operationId": summary,
            "summary": summary,
            "parameters": query,
            "responses": responses,
        }
        if body is not None:
            operation["requestBody"] = {"required": True, "content": json_body(body)}
        _add(paths, path, method, operation)
    return _document(
        "DataArts Fabric (emulated)",
        "Workspaces, endpoints, models and service instances (both hosts on one server).",
        paths,
        components={
            "securitySchemes": {
                "iamToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "akskSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...",
                },
            }
        },
        security=[{"iamToken": []}, {"akskSignature": []}],
    )


# -- Model Studio ---------------------------------------------------------------------------------------

MODELSTUDIO_ERROR: Schema = {
    "type": "object",
    "required": ["request_id", "code", "message"],
    "properties": {"request_id": STRING, "code": STRING, "message": STRING},
}
_MS_OK = obj(["request_id", "output"], request_id=STRING, output=ANY_OBJECT)
_PTU = obj(input_tpm=INTEGER, output_tpm=INTEGER, thinking_output_tpm=INTEGER)
_MS_PAGING = [_param("page_no", "query", INTEGER), _param("page_size", "query", INTEGER)]
_MS_OPS: dict[tuple[str, str], tuple[str, Schema | None, list[Schema], tuple[int, ...]]] = {
    (modelstudio.BASE, "POST"): (
        "CreateDeployment",
        obj(
            ["model_name", "plan"],
            model_name=STRING,
            name=STRING,
            plan=STRING,
            capacity=INTEGER,
            billing_method=STRING,
            deploy_spec=STRING,
            enable_thinking=BOOLEAN,
            max_context_length=INTEGER,
            rpm_limit=INTEGER,
            tpm_limit=INTEGER,
            ptu_capacity=_PTU,
            suffix=STRING,
        ),
        [],
        (400, 404, 409),
    ),
    (modelstudio.BASE, "GET"): ("ListDeployments", None, _MS_PAGING, (400,)),
    (modelstudio.BASE + "/models", "GET"): (
        "ListDeployableModels",
        None,
        [*_MS_PAGING, _param("model_source", "query", STRING), _param("version", "query", STRING)],
        (400,),
    ),
    (modelstudio.ONE, "GET"): ("GetDeployment", None, [], (404,)),
    (modelstudio.ONE, "DELETE"): ("DeleteDeployment", None, [], (404,)),
    (modelstudio.ONE + "/scale", "PUT"): (
        "ScaleDeployment",
        obj(deployed_model=STRING, capacity=INTEGER, ptu_capacity=_PTU),
        [],
        (400, 404, 409),
    ),
    (modelstudio.ONE + "/update", "PUT"): (
        "UpdateDeploymentLimits",
        obj(rpm_limit=INTEGER, tpm_limit=INTEGER),
        [],
        (400, 404, 409),
    ),
    (modelstudio.ONE + "/stream", "GET"): ("DeploymentEvents", None, [], (404,)),
}
_MS_ERRORS = {
    400: "InvalidParameter: malformed or oversized JSON, a wrong content type, a value out of range",
    401: "InvalidApiKey: missing or wrong Authorization: Bearer <api key>",
    404: "NotFound: unknown model_name or deployed_model",
    409: "Conflict: a suffix taken, or a deployment not RUNNING/STOPPED",
}


def modelstudio_document() -> Schema:
    paths: dict[str, dict[str, Schema]] = {}
    for path, method, _ in modelstudio.ROUTES:
        summary, body, query, errors = _MS_OPS[(path, method)]
        if summary == "DeploymentEvents":
            ok: Schema = {
                "description": "One `result` event",
                "content": {"text/event-stream": {"schema": STRING}},
            }
        else:
            ok = {"description": "Success", "content": json_body(_MS_OK)}
        responses: dict[str, Schema] = {"200": ok}
        for code in sorted({*errors, 401}):
            responses[str(code)] = {"description": _MS_ERRORS[code], "content": json_body(MODELSTUDIO_ERROR)}
        operation: Schema = {
            "operationId": summary,
            "summary": summary,
            "parameters": [*query, _param(modelstudio.WORKSPACE_HEADER, "header", STRING)],
            "responses": responses,
        }
        if body is not None:
            operation["requestBody"] = {"required": True, "content": json_body(body)}
        _add(paths, path, method, operation)
    return _document(
        "Model Studio deployments (emulated)",
        "DashScope's deployment API under /api/v1/deployments.",
        paths,
        components={"securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
        security=[{"apiKey": []}],
    )


# -- ZStack -----------------------------------------------------------------------------------------------

ZSTACK_ERROR: Schema = obj(
    ["error"], error=obj(["code", "details"], code=STRING, description=STRING, details=STRING)
)
_PLAIN: dict[str, Any] = {"text/plain": {"schema": STRING}}
_QUERY = [
    _param("q", "query", array(STRING)),
    _param("limit", "query", INTEGER),
    _param("start", "query", INTEGER),
    _param("count", "query", STRING),
    _param("replyWithCount", "query", STRING),
    _param("sort", "query", STRING),
]
_SERVICE_FIELDS: dict[str, Schema] = {
    "name": STRING,
    "description": STRING,
    "yaml": STRING,
    "requestCpu": INTEGER,
    "requestMemory": INTEGER,
    "modelCenterUuid": STRING,
    "installPath": STRING,
    "startCommand": STRING,
    "type": STRING,
    "source": STRING,
    "framework": STRING,
    "pythonVersion": STRING,
    "condaVersion": STRING,
    "gpuComputeCapability": STRING,
}
_SERVICE = obj(**_SERVICE_FIELDS)
_DEPLOY = obj(
    name=STRING,
    type=STRING,
    zoneUuid=STRING,
    modelUuid=STRING,
    cpuNum=INTEGER,
    memorySize=INTEGER,
    environmentVariables=ANY_OBJECT,
    startupParameters=ANY_OBJECT,
    modelServiceGroupUuids=array(STRING),
)
_GROUP_UPDATE = obj(name=STRING, description=STRING)
_ZSTACK_BODIES: dict[tuple[str, str], Schema] = {
    ("/accounts/login", "PUT"): obj(
        ["logInByAccount"],
        logInByAccount=obj(["accountName", "password"], accountName=STRING, password=STRING),
    ),
    (zstack.GROUP + "/actions", "PUT"): obj(
        updateModelServiceInstanceGroup=_GROUP_UPDATE, params=_GROUP_UPDATE
    ),
    ("/model-service-instance-groups/{uuid}", "PUT"): obj(
        updateModelServiceInstanceGroup=_GROUP_UPDATE, params=_GROUP_UPDATE
    ),
    ("/ai/model-services", "POST"): obj(["params"], params=_SERVICE),
    (zstack.SERVICE, "PUT"): obj(updateModelService=_SERVICE, params=_SERVICE, **_SERVICE_FIELDS),
    (zstack.SERVICE + "/actions", "PUT"): obj(
        updateModelService=_SERVICE, deployModelService=_DEPLOY, params=_DEPLOY
    ),
}


def zstack_document() -> Schema:
    paths: dict[str, dict[str, Schema]] = {}
    job_path = zstack.PREFIX + "/api-jobs/{uuid}"
    _add(
        paths,
        job_path,
        "GET",
        {
            "operationId": "QueryJob",
            "summary": "Poll an asynchronous API's job (no Authorization needed)",
            "security": [],
            "responses": {
                "200": {"description": "The job's result", "content": json_body(obj(inventory=ANY_OBJECT))},
                "202": {"description": "Still running; no body"},
                "404": {"description": "The job has expired (plain text)", "content": _PLAIN},
                "503": {"description": "The job failed", "content": json_body(ZSTACK_ERROR)},
            },
        },
    )
    for path, method, api in zstack.ROUTES:
        modes = {api[0]} if isinstance(api, tuple) else {mode for mode, _ in api.values()}
        name = api[1].__name__ if isinstance(api, tuple) else "/".join(sorted(api))
        responses: dict[str, Schema] = {
            "400": {
                "description": "Missing or non-OAuth Authorization (plain text), malformed or oversized"
                " JSON or a wrong content type (SYS.1007), or no action key the path knows (plain text)",
                "content": {**_PLAIN, **json_body(ZSTACK_ERROR)},
            }
        }
        if modes & {"sync", "open"}:
            responses["200"] = {"description": "Success", "content": json_body(ANY_OBJECT)}
            responses["503"] = {
                "description": "The API failed (ID.1001 session, SYS.1007 argument, ...)",
                "content": json_body(ZSTACK_ERROR),
            }
        if "async" in modes:
            responses["202"] = {
                "description": "Accepted: poll the job at location",
                "content": json_body(obj(["location"], location=STRING)),
            }
        operation: Schema = {
            "operationId": f"{name}.{method.lower()}",
            "summary": name,
            "parameters": list(_QUERY) if method == "GET" else [],
            "responses": dict(sorted(responses.items())),
        }
        if method == "DELETE":
            operation["parameters"] = [
                _param("deleteMode", "query", {"type": "string", "enum": ["Permissive", "Enforcing"]})
            ]
        if "open" in modes:
            operation["security"] = []
        body = _ZSTACK_BODIES.get((path, method))
        if body is not None:
            operation["requestBody"] = {"required": True, "content": json_body(body)}
        _add(paths, zstack.PREFIX + path, method, operation)
    return _document(
        "ZStack AI model services (emulated)",
        "Session login, asynchronous jobs and the model service APIs under /zstack/v1.",
        paths,
        components={
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "OAuth <session uuid> from /accounts/login",
                }
            }
        },
        security=[{"session": []}],
    )


def document(platform: str, base_url: str = "") -> Schema:
    """The OpenAPI document of ``platform``'s emulated API, its server at ``base_url``."""
    builders = {"fabric": fabric_document, "modelstudio": modelstudio_document, "zstack": zstack_document}
    if platform not in builders:
        raise KeyError(platform)
    doc = builders[platform]()
    if base_url:
        doc["servers"] = [{"url": base_url.rstrip("/")}]
    return doc


OPENAPI_PATH = "/_emulator/openapi/{platform}.json"


async def _serve(request: Request) -> Response:
    platform = str(request.path_params["platform"])
    if platform not in PLATFORMS:
        known = ", ".join(f"{p}.json" for p in PLATFORMS)
        return JSONResponse({"error": f"no document {platform}.json; there are: {known}"}, status_code=404)
    return JSONResponse(document(platform, str(request.base_url)))


def openapi_routes() -> list[Route]:
    """``GET /_emulator/openapi/<platform>.json`` (no platform's API: the emulator's own, no auth)."""
    return [Route(OPENAPI_PATH, _serve, methods=["GET"], name="emulator.openapi")]
