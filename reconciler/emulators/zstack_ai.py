"""ZStack AI handlers: model services (templates) and the instance groups deployed from them.

Synchronous handlers take the account and one call and return a response;
asynchronous ones (Add, Deploy, Update group, Delete) return the job they
started, and a :class:`~reconciler.emulators.zstack_errors.ZStackError` they
raise becomes a failed job (see ``zstack.py``). Every rule is checked before
anything changes, so a refused call leaves the cloud as it was.

Model service: no status (a template). Add and Delete are jobs of one
``provision_seconds``; Update is synchronous, as seed 003 says, and answers
``{"success": true, "inventory"}`` (the page's ``error`` is null on success and
nulls are omitted), or ``{"success": false, "error"}``. Fields ZStack accepts on update but never shows in
the inventory (``environmentParameters``, ``servicePorts``, ...) are kept
privately. ``modelCenterUuid``, ``installPath``, ``system``, ``condaVersion``
and ``zoneUuid`` are set only by Add; an update naming them is refused with
``SYS.1007`` rather than silently ignored.

Instance group lifecycle, one step every ``provision_seconds``::

    Deploy:  Deploying -> ServiceBootingUp -> Running   (the job ends at ServiceBootingUp)
             (Failed instead of Running for a group serving the fault-fixture model, or
             named by ``ZStackSettings.fail_provisioning``)
    Update of environmentVariables / startupParameters: ServiceBootingUp -> Running
    Delete:  Deleting -> gone                            (the job ends when it is gone)

Deleting a model service that still has instance groups fails its job with
``SYS.1006`` under ``deleteMode=Permissive`` (the default); ``Enforcing``
deletes the groups with it. Deleting what does not exist succeeds, as ZStack's
delete APIs do.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse, Response

from reconciler.emulators import lifecycle
from reconciler.emulators.store import JsonObject
from reconciler.emulators.zstack_cloud import (
    ADMIN_ACCOUNT_UUID,
    FAILING_MODELS,
    GROUPS,
    MODEL_CENTERS,
    MODEL_SERVICES,
    MODELS,
    ZONES,
    Call,
    ZStackCloud,
    new_uuid,
    public,
)
from reconciler.emulators.zstack_errors import (
    ZStackError,
    authentication_failed,
    invalid_argument,
    mandatory,
    not_found,
    operation_failed,
)
from reconciler.emulators.zstack_fields import Fields
from reconciler.emulators.zstack_query import answer, parse_query

SERVICE_TYPES = ("Endpoint", "FineTune", "ModelEval", "App")
SERVICE_SOURCES = ("Other", "Bentoml", "HuggingFace")
GROUP_TYPES = ("VirtualMachine", "Container")
DELETE_MODES = ("Permissive", "Enforcing")
BUSY_STATUSES = frozenset({"Deploying", "ServiceBootingUp", "Deleting"})
ADD_ONLY = ("modelCenterUuid", "installPath", "system", "condaVersion", "zoneUuid")
GROUP_FIXED = (
    "zoneUuid",
    "type",
    "modelUuid",
    "cpuNum",
    "memorySize",
    "modelServiceUuid",
    "modelServiceGroupUuids",
)

SERVICE_FIELDS = frozenset(
    {
        "uuid",
        "name",
        "description",
        "readme",
        "yaml",
        "requestCpu",
        "requestMemory",
        "modelCenterUuid",
        "type",
        "framework",
        "source",
        "size",
        "system",
        "hasNewVersion",
        "gpuComputeCapability",
        "installPath",
        "pythonVersion",
        "condaVersion",
        "version",
        "startCommand",
        "containerCommand",
        "containerArgs",
        "supportDistributed",
        "cpuArchitectures",
        "vendorToSpecUuidsMap",
        "modelServiceRefs",
        "modelServiceImages",
        "createDate",
        "lastOpDate",
    }
)
"""The model service's inventory: the Go SDK's ``ModelServiceInventoryView``
(``pkg/view/model_service_views.go``) plus ``hasNewVersion`` and ``version``, which seed 003
(UpdateModelService) lists in its inventory and the Go view lacks: the page is followed."""
GROUP_FIELDS = frozenset(
    {
        "uuid",
        "name",
        "description",
        "modelServiceUuid",
        "modelUuid",
        "status",
        "type",
        "modelServiceType",
        "yaml",
        "instances",
        "supportMetrics",
        "createDate",
        "lastOpDate",
    }
)
"""The instance group's inventory: the Go SDK's ``ModelServiceInstanceGroupInventoryView``
(``pkg/view/model_service_instance_group_views.go``; ``datasetRefInventories`` and
``exportPath`` are never set here). Deploy inputs the view does not carry (``zoneUuid``,
``cpuNum``, ``memorySize``, ``environmentVariables``, ``startupParameters``,
``modelServiceGroupUuids``) are kept under ``_``-keys (:data:`GROUP_PRIVATE`) and never shown."""
GROUP_PRIVATE = (
    "zoneUuid",
    "cpuNum",
    "memorySize",
    "environmentVariables",
    "startupParameters",
    "modelServiceGroupUuids",
)
CATALOGUE_FIELDS = frozenset(k for obj in (*ZONES, *MODEL_CENTERS, *MODELS) for k in obj)

Handler = Callable[[ZStackCloud, Call], Response]
AsyncHandler = Callable[[ZStackCloud, Call], JsonObject]


# ---------------------------------------------------------------- login and the catalogue


def login(cloud: ZStackCloud, call: Call) -> Response:
    """LogInByAccount: the password arrives as its SHA-512 hex digest."""
    params = call.body.get("logInByAccount")
    if not isinstance(params, dict):
        raise mandatory("logInByAccount", "APILogInByAccountMsg")
    fields = Fields(params, "APILogInByAccountMsg")
    account = fields.string("accountName", required=True)
    digest = fields.string("password", required=True)
    expected = hashlib.sha512(cloud.settings.password.encode()).hexdigest()
    account_ok = hmac.compare_digest(account.encode(), cloud.settings.account.encode())
    password_ok = hmac.compare_digest(digest.lower().encode(), expected.encode())
    if not (account_ok and password_ok):
        raise authentication_failed()
    return JSONResponse({"inventory": public(cloud.open_session())})


def query_zones(cloud: ZStackCloud, call: Call) -> Response:
    return _query(call, ZONES, CATALOGUE_FIELDS)


def query_model_centers(cloud: ZStackCloud, call: Call) -> Response:
    return _query(call, MODEL_CENTERS, CATALOGUE_FIELDS)


def query_models(cloud: ZStackCloud, call: Call) -> Response:
    return _query(call, MODELS, CATALOGUE_FIELDS)


def query_model_services(cloud: ZStackCloud, call: Call) -> Response:
    return _query(call, cloud.model_services.values(), SERVICE_FIELDS)


def query_groups(cloud: ZStackCloud, call: Call) -> Response:
    return _query(call, cloud.groups.values(), GROUP_FIELDS)


def _query(call: Call, items: Any, fields: frozenset[str]) -> Response:
    query = parse_query(call.request.query_params)
    if "uuid" in call.request.path_params:  # GET /<resources>/{uuid}: the one object, if any
        wanted = call.param("uuid")
        items = [obj for obj in items if obj["uuid"] == wanted]
    return JSONResponse(answer(query, [dict(obj) for obj in items], fields, public))


# ---------------------------------------------------------------- model services


def add_model_service(cloud: ZStackCloud, call: Call) -> JsonObject:
    fields = Fields(_params(call.body, "params"), "APIAddModelServiceMsg")
    values = _service_values(cloud, fields, adding=True)
    zone_uuid = fields.uuid("zoneUuid")
    if zone_uuid is not None and zone_uuid not in {z["uuid"] for z in ZONES}:
        raise not_found("zoneUuid", zone_uuid, "ZoneVO")
    model_uuids = fields.string_list("modelUuids") or []
    known_models = {m["uuid"] for m in MODELS}
    for model_uuid in model_uuids:
        if model_uuid not in known_models:
            raise not_found("modelUuids", model_uuid, "ModelVO")
    service_uuid = fields.uuid("resourceUuid") or new_uuid()
    if service_uuid in cloud.model_services:
        raise invalid_argument(f"resource[uuid:{service_uuid}] already exists")
    service: JsonObject = {
        "uuid": service_uuid,
        "name": values["name"],
        "description": values.get("description"),
        "readme": None,
        "yaml": values["yaml"],
        "requestCpu": values["requestCpu"],
        "requestMemory": values["requestMemory"],
        "modelCenterUuid": values["modelCenterUuid"],
        "type": values.get("type") or "Endpoint",
        "framework": values.get("framework"),
        "source": values.get("source") or "Other",
        "size": 0,
        "system": bool(values.get("system")),
        "hasNewVersion": False,
        "gpuComputeCapability": values.get("gpuComputeCapability"),
        "installPath": values["installPath"],
        "pythonVersion": values.get("pythonVersion"),
        "condaVersion": values.get("condaVersion"),
        "version": "1.0",
        "startCommand": values["startCommand"],
        "containerCommand": values.get("containerCommand"),
        "containerArgs": values.get("containerArgs"),
        "supportDistributed": bool(values.get("supportDistributed")),
        "cpuArchitectures": ["x86_64"],
        "vendorToSpecUuidsMap": values.get("vendorToSpecUuidsMap") or {},
        "modelServiceRefs": [{"modelServiceUuid": service_uuid, "modelUuid": m} for m in model_uuids],
        "modelServiceImages": [],
        "_settings": values.get("_settings", {}),
        "_zoneUuid": zone_uuid,
    }
    cloud.stamp(service, created=True)
    cloud.model_services[service_uuid] = service
    return cloud.add_job(result=MODEL_SERVICES, target=service_uuid)


def update_model_service(cloud: ZStackCloud, call: Call) -> Response:
    """UpdateModelService, synchronous; the body in any of its three accepted forms."""
    try:
        service = _service(cloud, call.param("uuid"))
        params = _update_params(call.body)
        refused = sorted(name for name in ADD_ONLY if name in params)
        if refused:
            raise invalid_argument(
                f"field[{refused[0]}] of message[APIUpdateModelServiceMsg] cannot be updated; "
                "it is set only when the model service is added"
            )
        values = _service_values(cloud, Fields(params, "APIUpdateModelServiceMsg"), adding=False)
    except ZStackError as exc:
        return JSONResponse({"success": False, "error": exc.error}, status_code=exc.status_code)
    service["_settings"] = {**service.get("_settings", {}), **values.pop("_settings", {})}
    service.update(values)
    cloud.stamp(service)
    # seed 003: {success, error, inventory}; the error is null on success, and nulls are omitted
    return JSONResponse({"success": True, "inventory": public(service)})


def delete_model_service(cloud: ZStackCloud, call: Call) -> JsonObject:
    mode = _delete_mode(call)
    service = cloud.model_services.get(call.param("uuid"))
    if service is None:
        return cloud.add_job()  # deleting what is not there succeeds
    if service.get("_delete_at") is not None:
        return cloud.add_job(done_at=float(service["_delete_at"]))
    users = [g for g in cloud.groups.values() if g["modelServiceUuid"] == service["uuid"]]
    if users and mode == "Permissive":
        listed = ", ".join(f"{g['name']}[uuid:{g['uuid']}]" for g in users)
        raise operation_failed(
            f"model service[uuid:{service['uuid']}] is still used by {len(users)} model service instance "
            f"group(s): {listed}; delete them first, or delete with deleteMode=Enforcing"
        )
    for group in users:
        if group["status"] != "Deleting":
            cloud.schedule(group, "Deleting", None)
    service["_delete_at"] = cloud.later()
    return cloud.add_job(done_at=float(service["_delete_at"]))


# ---------------------------------------------------------------- instance groups


def deploy_model_service(cloud: ZStackCloud, call: Call) -> JsonObject:
    """DeployModelService: ``{"params": {...}}`` as the Go SDK's ``DeployModelServiceParam`` sends it
    (``pkg/param/deploy_model_service_params.go``), or the REST action form ``{"deployModelService"}``."""
    key = "params" if "params" in call.body else "deployModelService"
    fields = Fields(_params(call.body, key), "APIDeployModelServiceMsg")
    service = _service(cloud, call.param("uuid"))
    if service.get("_delete_at") is not None:
        raise operation_failed(f"model service[uuid:{service['uuid']}] is being deleted")
    name = fields.string("name", required=True, max_length=255, empty=False)
    group_type = fields.choice("type", GROUP_TYPES, required=True)
    zone_uuid = fields.string("zoneUuid", required=True)
    if zone_uuid not in {z["uuid"] for z in ZONES}:
        raise not_found("zoneUuid", zone_uuid, "ZoneVO")
    model_uuid = fields.string("modelUuid")
    if model_uuid is not None and model_uuid not in {m["uuid"] for m in MODELS}:
        raise not_found("modelUuid", model_uuid, "ModelVO")
    siblings = fields.string_list("modelServiceGroupUuids") or []
    for sibling in siblings:
        if sibling not in cloud.groups:
            raise not_found("modelServiceGroupUuids", sibling, "ModelServiceInstanceGroupVO")
    # Go SDK pkg/param DeployModelServiceDetailParam carries resourceUuid, as every create call does
    group_uuid = fields.uuid("resourceUuid") or new_uuid()
    if group_uuid in cloud.groups:
        raise invalid_argument(f"resource[uuid:{group_uuid}] already exists")
    group: JsonObject = {
        "uuid": group_uuid,
        "name": name,
        "description": fields.string("description"),
        "modelServiceUuid": service["uuid"],
        "modelUuid": model_uuid,
        "status": "Deploying",
        "type": group_type,
        "modelServiceType": service["type"],
        "yaml": service["yaml"],
        "supportMetrics": [],
        "instances": [],
        # deploy inputs the Go SDK's group view does not carry: kept, never shown
        "_zoneUuid": zone_uuid,
        "_cpuNum": _or(fields.integer("cpuNum", minimum=1), service["requestCpu"]),
        "_memorySize": _or(fields.integer("memorySize", minimum=1), service["requestMemory"]),
        "_environmentVariables": fields.string_map("environmentVariables") or {},
        "_startupParameters": fields.string_map("startupParameters") or {},
        "_modelServiceGroupUuids": siblings,
    }
    cloud.stamp(group, created=True)
    group["instances"] = [_instance(group, ADMIN_ACCOUNT_UUID)]
    cloud.schedule(group, "Deploying", "ServiceBootingUp", _final_status(cloud, group))
    cloud.groups[group_uuid] = group
    return cloud.add_job(result=GROUPS, target=group_uuid)


def update_group(cloud: ZStackCloud, call: Call) -> JsonObject:
    # the REST action form, or the Go SDK's UpdateModelServiceInstanceGroupParam ``{"params"}``
    key = "params" if "params" in call.body else "updateModelServiceInstanceGroup"
    params = _params(call.body, key)
    fields = Fields(params, "APIUpdateModelServiceInstanceGroupMsg")
    group = cloud.groups.get(call.param("uuid"))
    if group is None:
        raise not_found("uuid", call.param("uuid"), "ModelServiceInstanceGroupVO")
    fixed = sorted(name for name in GROUP_FIXED if name in params)
    if fixed:
        raise invalid_argument(
            f"field[{fixed[0]}] of message[APIUpdateModelServiceInstanceGroupMsg] cannot be updated; "
            "deploy a new instance group instead"
        )
    changes: JsonObject = {}
    if fields.has("name"):
        changes["name"] = fields.string("name", max_length=255, empty=False)
    if "description" in params:
        changes["description"] = fields.string("description")
    for key in ("environmentVariables", "startupParameters"):
        if fields.has(key):
            changes[f"_{key}"] = fields.string_map(key)
    for key in ("serviceLivez", "serviceReadyz"):
        fields.string(key)
    fields.integer("serviceBootupTime")
    if group["status"] in BUSY_STATUSES:
        raise operation_failed(
            f"model service instance group[uuid:{group['uuid']}] is {group['status']}; "
            "wait until it is Running, then try again"
        )
    restart = any(
        key in changes and changes[key] != group.get(key)
        for key in ("_environmentVariables", "_startupParameters")
    )
    group.update(changes)
    cloud.stamp(group)
    if restart:
        cloud.schedule(group, "ServiceBootingUp", _final_status(cloud, group))
    return cloud.add_job(result=GROUPS, target=group["uuid"])


def delete_group(cloud: ZStackCloud, call: Call) -> JsonObject:
    _delete_mode(call)
    group = cloud.groups.get(call.param("uuid"))
    if group is None:
        return cloud.add_job()
    if group["status"] != "Deleting":
        cloud.schedule(group, "Deleting", None)
    return cloud.add_job(done_at=float(group["_steps"][-1][0]))


# ---------------------------------------------------------------- helpers


def _params(body: JsonObject, key: str) -> JsonObject:
    params = body.get(key)
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise invalid_argument(f"{key} must be a JSON object")
    return params


def _update_params(body: JsonObject) -> JsonObject:
    """``{"updateModelService": {...}}``, the SDK's ``{"params": {...}}``, or the fields flat."""
    for key in ("updateModelService", "params"):
        if key in body:
            return _params(body, key)
    return {k: v for k, v in body.items() if k not in ("systemTags", "userTags", "uuid")}


def _service(cloud: ZStackCloud, service_uuid: str) -> JsonObject:
    service = cloud.model_services.get(service_uuid)
    if service is None:
        raise not_found("uuid", service_uuid, "ModelServiceVO")
    return service


def _service_values(cloud: ZStackCloud, fields: Fields, *, adding: bool) -> JsonObject:
    """The model service fields present in ``fields``, checked; write-only ones under ``_settings``.

    ``adding``: AddModelService (mandatory fields enforced, add-only fields read).
    """
    values: JsonObject = {}
    texts = {"name": 255, "yaml": 65535, "startCommand": 2048, **({"installPath": 1024} if adding else {})}
    for name, length in texts.items():
        value = fields.string(name, required=adding, max_length=length, empty=name != "name")
        if value is not None:
            values[name] = value
    for name, minimum in (("requestCpu", 1), ("requestMemory", 0)):
        value = fields.integer(name, required=adding, minimum=minimum)
        if value is not None:
            values[name] = value
    optional = ["description", "gpuComputeCapability", "containerCommand", "containerArgs", "pythonVersion"]
    optional += ["framework", *(["condaVersion"] if adding else [])]
    for name in optional:
        if fields.has(name):
            values[name] = fields.string(name)
    for name, choices in (("type", SERVICE_TYPES), ("source", SERVICE_SOURCES)):
        if fields.has(name):
            values[name] = fields.choice(name, choices)
    for name in ("supportDistributed", *(["system"] if adding else [])):
        if fields.has(name):
            values[name] = fields.boolean(name)
    if fields.has("vendorToSpecUuidsMap"):
        values["vendorToSpecUuidsMap"] = fields.mapping("vendorToSpecUuidsMap")
    if adding:
        center = fields.uuid("modelCenterUuid", required=True)
        if center not in {c["uuid"] for c in MODEL_CENTERS}:
            raise not_found("modelCenterUuid", center, "ModelCenterVO")
        values["modelCenterUuid"] = center
    settings = _write_only(fields)
    if settings:
        values["_settings"] = settings
    return values


def _write_only(fields: Fields) -> JsonObject:
    """Fields ZStack takes but never shows in the inventory, checked and kept as sent."""
    readers: dict[str, Callable[[str], Any]] = {
        "environmentParameters": fields.string_map,
        "startupParameters": fields.string_map,
        "inferenceParams": fields.string_map,
        # Go SDK: servicePorts []int, architectureImages []interface{}; seed 003's example sends
        # both as lists of strings (["<servicePorts>"]): the page is followed, both are taken
        "servicePorts": fields.port_list,
        "serviceBootupTime": fields.integer,
        "architectureImages": fields.any_list,
        **dict.fromkeys(
            ("serviceName", "serviceLivez", "serviceReadyz", "serviceInstallPath", "serviceStartCommand"),
            fields.string,
        ),
    }
    return {name: reader(name) for name, reader in readers.items() if fields.has(name)}


def _delete_mode(call: Call) -> str:
    mode = call.request.query_params.get("deleteMode") or "Permissive"
    if mode not in DELETE_MODES:
        raise invalid_argument(
            f"valid value for field[deleteMode] are {list(DELETE_MODES)}, but {mode} found"
        )
    return mode


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _final_status(cloud: ZStackCloud, group: JsonObject) -> str:
    """``Failed`` for the fault-fixture model and for names matching ``fail_provisioning``."""
    doomed = lifecycle.provisioning_fails(cloud.settings.fail_provisioning, group.get("name"))
    return "Failed" if doomed or group.get("modelUuid") in FAILING_MODELS else "Running"


def _instance(group: JsonObject, account_uuid: str) -> JsonObject:
    instance_uuid = new_uuid()
    octets = bytes.fromhex(instance_uuid[:4])
    address = f"172.20.{octets[0]}.{max(octets[1], 2)}"
    instance: JsonObject = {
        "uuid": instance_uuid,
        "name": f"{group['name']}-0",
        "modelServiceGroupUuid": group["uuid"],
        "status": group["status"],
        "url": f"http://{address}:8000/v1",
        "internalUrl": f"http://{address}:8000",
        "nodeRank": 0,
        "accountUuid": account_uuid,
        "createDate": group["createDate"],
        "lastOpDate": group["lastOpDate"],
    }
    if group["type"] == "VirtualMachine":
        instance["vmInstanceUuid"] = new_uuid()
    return instance
