"""ZStack's documented answer shapes: the public Go SDK's generated views, and seed 003.

We cannot import Go, so the views are written down here as data: for each view
the JSON names of its fields (the ``json:"..."`` tags, ``omitempty`` dropped) and
their Go types, transcribed from ``zstackio/zstack-sdk-go-v2`` (the file of each is
named in a comment). A Go type becomes a shape as ``tests/documented/shapes.py``
wants it: ``[]X`` is ``[shape of X]``, a map, a builtin or a time is ``None``, another
view is its own fields (embedded views, such as ``BaseInfoView``, add theirs).

Seed 003 (UpdateModelService, ``../shared/seeds/003_*.txt``) is ground truth too;
where it and the Go SDK disagree the page is followed (:data:`PAGE_OVER_SDK`):

* the page's ``ModelServiceInventory`` lists ``hasNewVersion`` and ``version``,
  which the Go ``ModelServiceInventoryView`` lacks: both are allowed;
* the page's UpdateModelService answer is ``{success, error, inventory}``; the Go
  ``UpdateModelServiceEventView`` is ``{inventory}`` only: the page's shape is used;
* the page documents the error code's fields (``code``, ``description``,
  ``details``, ``elaboration``, ``opaque``, ``cause``): used for every error answer.

Asynchronous APIs answer 202 ``{"location"}``; their job (``GET /api-jobs/{uuid}``)
answers what the API's event view documents, so :class:`ZStackRouter` remembers,
for each job it sees started, which API started it (:class:`JobNoting` wraps the
inner transport to tell it).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.documented.shapes import Shape

API = "/zstack/v1"

# view name -> (embedded views, {json field: Go type}), transcribed from the Go SDK.
GO_VIEWS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    # pkg/view/base_views.go
    "BaseInfoView": ((), {"uuid": "string", "name": "string"}),
    "BaseTimeView": ((), {"createDate": "time.Time", "lastOpDate": "time.Time"}),
    "SuccessView": ((), {"success": "bool"}),
    # pkg/view/session_views.go
    "SessionInventoryView": (
        (),
        {
            "uuid": "string",
            "accountUuid": "string",
            "userUuid": "string",
            "userType": "string",
            "expiredDate": "ZStackTime",
            "createDate": "ZStackTime",
        },
    ),
    # pkg/view/zone_views.go
    "ZoneInventoryView": (
        (),
        {
            "uuid": "string",
            "name": "string",
            "description": "string",
            "state": "string",
            "type": "string",
            "isDefault": "bool",
            "createDate": "time.Time",
            "lastOpDate": "time.Time",
        },
    ),
    # pkg/view/model_center_views.go
    "ModelCenterInventoryView": (
        (),
        {
            "uuid": "string",
            "name": "string",
            "description": "string",
            "url": "string",
            "status": "string",
            "parameters": "string",
            "managementIp": "string",
            "managementPort": "int",
            "storageNetworkUuid": "string",
            "serviceNetworkUuid": "string",
            "containerRegistry": "string",
            "containerStorageNetwork": "string",
            "containerNetwork": "string",
            "capacity": "ModelCenterCapacityInventoryView",
            "zdfs": "ZdfsInventoryView",
            "createDate": "time.Time",
            "lastOpDate": "time.Time",
        },
    ),
    # pkg/view/model_views.go
    "ModelInventoryView": (
        (),
        {
            "uuid": "string",
            "name": "string",
            "description": "string",
            "installPath": "string",
            "parameters": "string",
            "modelCenterUuid": "string",
            "logo": "string",
            "vendor": "string",
            "modelId": "string",
            "introduction": "string",
            "size": "int64",
            "version": "string",
            "type": "string",
            "minGpuMemory": "int64",
            "recommendedGpuMemory": "int64",
            "recommendedGpuNum": "[]int",
            "gpuConstraintDescription": "string",
            "versionSemver": "string",
            "isLatestVersion": "bool",
            "artifactChecksum": "string",
            "artifactSizeBytes": "int64",
            "architectureType": "string",
            "frameworkVersion": "string",
            "requiredAccelerator": "string",
            "modelServiceRefs": "[]ModelServiceRefInventoryView",
            "createDate": "time.Time",
            "lastOpDate": "time.Time",
        },
    ),
    # pkg/view/model_service_views.go
    "ModelServiceInventoryView": (
        (),
        {
            "uuid": "string",
            "name": "string",
            "description": "string",
            "readme": "string",
            "yaml": "string",
            "requestCpu": "int",
            "requestMemory": "int64",
            "modelCenterUuid": "string",
            "type": "string",
            "framework": "string",
            "source": "string",
            "size": "int64",
            "system": "bool",
            "gpuComputeCapability": "string",
            "installPath": "string",
            "pythonVersion": "string",
            "condaVersion": "string",
            "startCommand": "string",
            "containerCommand": "string",
            "containerArgs": "string",
            "supportDistributed": "bool",
            "cpuArchitectures": "[]string",
            "vendorToSpecUuidsMap": "map[string]interface{}",
            "modelServiceRefs": "[]ModelServiceRefInventoryView",
            "modelServiceImages": "[]ModelServiceTemplateInventoryView",
            "createDate": "ZStackTime",
            "lastOpDate": "ZStackTime",
        },
    ),
    "AddModelServiceEventView": ((), {"inventory": "ModelServiceInventoryView"}),
    "UpdateModelServiceEventView": ((), {"inventory": "ModelServiceInventoryView"}),
    "DeleteModelServiceEventView": ((), {"success": "bool"}),
    "QueryModelServiceView": ((), {"inventories": "[]ModelServiceInventoryView"}),
    # pkg/view/model_service_ref_views.go
    "ModelServiceRefInventoryView": (
        ("BaseInfoView", "BaseTimeView"),
        {"modelUuid": "string", "modelServiceUuid": "string"},
    ),
    # pkg/view/model_service_template_views.go
    "ModelServiceTemplateInventoryView": (
        ("BaseInfoView", "BaseTimeView"),
        {
            "modelServiceUuid": "string",
            "cpuArchitecture": "string",
            "vmImageUuid": "string",
            "dockerImage": "string",
        },
    ),
    # pkg/view/model_service_instance_group_views.go
    "ModelServiceInstanceGroupInventoryView": (
        ("BaseInfoView", "BaseTimeView"),
        {
            "modelServiceUuid": "string",
            "modelUuid": "string",
            "instances": "[]ModelServiceInstanceInventoryView",
            "datasetRefInventories": "[]ModelServiceGroupDatasetRefInventoryView",
            "status": "string",
            "modelServiceType": "string",
            "type": "string",
            "description": "string",
            "yaml": "string",
            "supportMetrics": "[]string",
            "exportPath": "string",
        },
    ),
    "QueryModelServiceInstanceGroupView": (
        (),
        {"inventories": "[]ModelServiceInstanceGroupInventoryView"},
    ),
    "UpdateModelServiceInstanceGroupEventView": (
        (),
        {"inventory": "ModelServiceInstanceGroupInventoryView"},
    ),
    "DeleteModelServiceInstanceGroupEventView": ((), {"success": "bool"}),
    # pkg/view/ (the generated event views): DeployModelServiceEventView
    "DeployModelServiceEventView": ((), {"inventory": "ModelServiceInstanceGroupInventoryView"}),
    # pkg/view/model_service_instance_views.go
    "ModelServiceInstanceInventoryView": (
        (),
        {
            "uuid": "string",
            "name": "string",
            "modelServiceGroupUuid": "string",
            "yaml": "string",
            "k8sResourceYaml": "string",
            "status": "string",
            "url": "string",
            "urlMaps": "map[string]string",
            "internalUrl": "string",
            "jupyterUrl": "string",
            "vmInstanceUuid": "string",
            "nodeRank": "int",
            "accountUuid": "string",
            "architecture": "string",
            "gpuVendor": "string",
            "vm": "VmInstanceInventoryView",
            "createDate": "time.Time",
            "lastOpDate": "time.Time",
        },
    ),
    # pkg/view/model_service_group_dataset_ref_views.go
    "ModelServiceGroupDatasetRefInventoryView": (
        (),
        {"uuid": "string", "datasetUuid": "string", "modelServiceInstanceGroupUuid": "string"},
    ),
}
# Views a field names that are not written down field by field: the emulator never answers
# them (a VM's whole inventory, a model center's capacity and ZDFS), so they stay opaque.
OPAQUE_VIEWS = frozenset({"VmInstanceInventoryView", "ModelCenterCapacityInventoryView", "ZdfsInventoryView"})
GO_SCALARS = frozenset({"string", "bool", "int", "int64", "float64", "interface{}"})
GO_TIMES = frozenset({"time.Time", "ZStackTime"})

# Seed 003's ModelServiceInventory (the UpdateModelService answer's inventory), as the page lists it.
SEED_003_INVENTORY = tuple(
    [
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
    ]
)
# Seed 003's ErrorCode: code, description, details, elaboration, opaque (a map) and cause (an ErrorCode).
SEED_003_ERROR = ("code", "description", "details", "elaboration", "opaque", "cause")
# Where the page and the Go SDK disagree, the page is followed (see the module docstring).
PAGE_OVER_SDK = {
    "ModelServiceInventoryView": "seed 003 adds hasNewVersion and version",
    "UpdateModelServiceEventView": "seed 003 answers {success, error, inventory}",
}


def go_type_shape(go_type: str) -> Shape:
    """The shape of one Go field type."""
    go_type = go_type.lstrip("*")
    if go_type.startswith("[]"):
        return [go_type_shape(go_type[2:])]
    if go_type.startswith("map[") or go_type in GO_SCALARS | GO_TIMES | OPAQUE_VIEWS:
        return None
    return view_shape(go_type)


def go_view_shape(name: str) -> dict[str, Any]:
    """The shape of one Go view exactly as the SDK declares it (embedded views included)."""
    if name not in GO_VIEWS:
        raise LookupError(f"no Go view named {name} is written down here")
    embedded, fields = GO_VIEWS[name]
    out: dict[str, Any] = {}
    for inner in embedded:
        out.update(go_view_shape(inner))
    out.update({field: go_type_shape(kind) for field, kind in fields.items()})
    return out


def view_shape(name: str) -> dict[str, Any]:
    """The documented shape of a view: the Go SDK's, with seed 003's additions where it disagrees."""
    shape = go_view_shape(name)
    if name == "ModelServiceInventoryView":
        shape.update({field: None for field in SEED_003_INVENTORY if field not in shape})
    return shape


def error_shape() -> dict[str, Any]:
    """Seed 003's ErrorCode; its ``cause`` is an ErrorCode again (one level written out)."""
    flat: dict[str, Any] = dict.fromkeys(SEED_003_ERROR)
    return {**flat, "cause": dict(flat)}


ERROR: Shape = {"error": error_shape()}
LOCATION: Shape = {"location": None}  # an asynchronous API's 202


def query(view: str) -> Shape:
    """A query's answer: the Go ``Query...View`` (``inventories``) and the reply's ``total``.

    ``total`` is ZStack's query reply count (``replyWithCount=true``, or alone with
    ``count=true``), which the Go SDK's ``Page...`` helpers return beside the items.
    """
    return {"inventories": [view_shape(view)], "total": None}


def update_model_service() -> Shape:
    """Seed 003's UpdateModelService answer ``{success, error, inventory}`` (Go's event view: inventory)."""
    return {"success": None, "error": error_shape(), "inventory": view_shape("ModelServiceInventoryView")}


SERVICES = API + r"/ai/model-services"
SERVICE = SERVICES + r"/[0-9a-fA-F]{32}"
GROUPS = SERVICES + r"/instances/groups"
GROUP = GROUPS + r"/[0-9a-fA-F]{32}"


def _inventory(view: str) -> Shape:
    return {"inventory": view_shape(view)}


# (method, path pattern, synchronous answer's shape or None when the API is a job, job result's shape)
ROUTES: tuple[tuple[str, str, Shape, Shape], ...] = (
    ("PUT", API + r"/accounts/login", _inventory("SessionInventoryView"), None),
    ("GET", API + r"/zones(/[^/]+)?", query("ZoneInventoryView"), None),
    ("GET", API + r"/ai/model-centers(/[^/]+)?", query("ModelCenterInventoryView"), None),
    ("GET", API + r"/ai/models(/[^/]+)?", query("ModelInventoryView"), None),
    ("GET", GROUPS + r"(/[^/]+)?", query("ModelServiceInstanceGroupInventoryView"), None),
    ("DELETE", GROUP, None, go_view_shape("DeleteModelServiceInstanceGroupEventView")),
    ("PUT", GROUP + r"/actions", None, go_view_shape("UpdateModelServiceInstanceGroupEventView")),
    (
        "PUT",
        API + r"/model-service-instance-groups/[^/]+",
        None,
        go_view_shape("UpdateModelServiceInstanceGroupEventView"),
    ),
    ("POST", SERVICES, None, _inventory("ModelServiceInventoryView")),  # AddModelServiceEventView
    ("GET", SERVICES + r"(/[^/]+)?", query("ModelServiceInventoryView"), None),
    # UpdateModelService: synchronous per seed 003; its job, should it be one, answers the same
    ("PUT", SERVICE, update_model_service(), update_model_service()),
    ("DELETE", SERVICE, None, go_view_shape("DeleteModelServiceEventView")),
    # /actions: updateModelService (synchronous) or DeployModelService (a job)
    ("PUT", SERVICE + r"/actions", update_model_service(), go_view_shape("DeployModelServiceEventView")),
)
JOB = re.compile(API + r"/api-jobs/([^/]+)")


def route(method: str, path: str) -> tuple[Shape, Shape] | None:
    """(synchronous answer, job result) documented for a route; None for a route not documented here."""
    for wanted, pattern, answer, job in ROUTES:
        if wanted == method and re.fullmatch(pattern, path):
            return answer, job
    return None


class ZStackRouter:
    """A :data:`~tests.documented.shapes.Router` for ZStack that knows which API each job belongs to."""

    def __init__(self) -> None:
        self.jobs: dict[str, Shape] = {}

    def started(self, method: str, path: str, location: str) -> None:
        """Note that the API at ``method path`` answered 202 with the job ``location``."""
        found = route(method, path)
        if found is not None:
            self.jobs[location.rstrip("/").rsplit("/", 1)[-1]] = found[1]

    def __call__(self, method: str, path: str, status: int) -> Shape | bool:
        if status == 202:
            return LOCATION
        found = route(method, path)
        if status >= 400:  # UpdateModelService refuses in its own answer: {success: false, error}
            synchronous = found[0] if found is not None else None
            return synchronous if isinstance(synchronous, dict) and "success" in synchronous else ERROR
        job = JOB.fullmatch(path)
        if job is not None:
            if job.group(1) not in self.jobs:
                raise LookupError(f"job {job.group(1)} was not seen started: which API's answer is it?")
            return self.jobs[job.group(1)]
        if found is None:
            return None
        return found[0]


class JobNoting(httpx.AsyncBaseTransport):
    """Forwards to ``inner`` and tells ``router`` of every job an API starts (its 202's location)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, router: ZStackRouter) -> None:
        self.inner = inner
        self.router = router

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if response.status_code == 202:
            body = await response.aread()
            location = json.loads(body).get("location") if body else None
            if isinstance(location, str):
                self.router.started(request.method, request.url.path, location)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
