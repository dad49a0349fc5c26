"""Fabric control-plane handlers: workspaces, endpoints, models and the spec catalogue.

Each handler takes the account and one call and returns a response, or raises
a :class:`~reconciler.emulators.envelope.FabricError`. Handlers run inside one
store transaction with transitions already settled (see ``fabric.py``), and
they check every rule before changing anything, so a refused request leaves
the cloud as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import Response

from reconciler.emulators import fabric_validation as rules
from reconciler.emulators.envelope import fabric_response
from reconciler.emulators.fabric_cloud import (
    OWNER,
    RUNNING,
    VISIBILITY,
    Call,
    FabricCloud,
    busy,
    capacity_exceeded,
    field_equals,
    in_use,
    listing,
    not_updatable,
    ordered,
    public,
    reference_missing,
)
from reconciler.emulators.fabric_errors import not_found, state_conflict
from reconciler.emulators.store import JsonObject

# ---------------------------------------------------------------- workspaces


def create_workspace(cloud: FabricCloud, call: Call) -> Response:
    fields = rules.workspace_create(call.body)
    cloud.require_unique_name(cloud.workspaces.values(), "workspace", fields["name"])
    workspace_id = cloud.store.new_id()
    workspace = {
        "id": workspace_id,
        "name": fields["name"],
        "description": fields["description"],
        "create_time": cloud.timestamp(),
        "create_domain_name": OWNER["domain_name"],
        "create_user_name": OWNER["user_name"],
        "metastore_id": fields["metastore_id"],
        "access_url": f"{call.base_url}/v1/workspaces/{workspace_id}",
        "enterprise_project_id": fields["enterprise_project_id"],
    }
    cloud.workspaces[workspace_id] = workspace
    return fabric_response(public(workspace), status_code=201)


def list_workspaces(cloud: FabricCloud, call: Call) -> Response:
    filters = {name: field_equals(name) for name in ("name", "id", "enterprise_project_id")}
    return listing(call, cloud.workspaces.values(), "workspaces", filters)


def update_workspace(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    changes = rules.workspace_update(call.body)
    cloud.require_unique_name(cloud.workspaces.values(), "workspace", changes.get("name"), workspace["id"])
    workspace.update(changes)
    return fabric_response(public(workspace))


def delete_workspace(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    contents = {
        kind: len(cloud.within(collection, workspace["id"]))
        for kind, collection in (
            ("endpoints", cloud.endpoints),
            ("models", cloud.models),
            ("service instances", cloud.instances),
        )
    }
    if any(contents.values()):
        held = ", ".join(f"{count} {kind}" for kind, count in contents.items() if count)
        raise state_conflict(
            "workspace is not empty", f"The workspace still holds {held}; delete them first."
        )
    del cloud.workspaces[workspace["id"]]
    return fabric_response(None, status_code=204)


# ---------------------------------------------------------------- endpoints


def endpoint_view(call: Call, *, brief: bool = False) -> Callable[[JsonObject], JsonObject]:
    """Endpoints as shown: public fields, plus ``urls`` on the host that asked unless ``brief``.

    ``brief`` is the list item (the SDK's ``EndpointBriefInfo``: no ``urls``). ``public_access``
    is an input only: no response model carries it, so it is kept as ``_public_access``.
    """

    def view(endpoint: JsonObject) -> JsonObject:
        shown = public(endpoint)
        if brief:
            return shown
        shown["urls"] = [
            {
                "name": "inference",
                "address": f"{call.base_url}/v1/workspaces/{endpoint['_workspace_id']}"
                f"/endpoints/{endpoint['id']}",
                "type": "PUBLIC" if endpoint.get("_public_access") else "PRIVATE",
            }
        ]
        return shown

    return view


def create_endpoint(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    fields = rules.endpoint_create(call.body)
    cloud.require_unique_name(cloud.within(cloud.endpoints, workspace["id"]), "endpoint", fields["name"])
    now = cloud.timestamp()
    endpoint: JsonObject = {
        "visibility": VISIBILITY,
        "id": cloud.store.new_id(),
        "name": fields["name"],
        "type": fields["type"],
        "status": "CREATING",
        "description": fields["description"],
        "create_time": now,
        "update_time": now,
        "owner": dict(OWNER),
        "reserved_resource": fields["reserved_resource"],
        "ray_resource": None,
        "cap": None,
        "_public_access": fields["public_access"],
        "custom_image_id": fields["custom_image_id"],
        "error_code": None,
        "error_msg": None,
        "_workspace_id": workspace["id"],
    }
    cloud.begin(endpoint, "CREATING", RUNNING, failed="CREATE_FAILED")
    cloud.endpoints[endpoint["id"]] = endpoint
    return fabric_response(endpoint_view(call)(endpoint), status_code=201)


def list_endpoints(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    instances = cloud.within(cloud.instances, workspace["id"])

    def serves_model(endpoint: JsonObject, model_id: str) -> bool:
        return any(i["endpoint_id"] == endpoint["id"] and i["source"]["id"] == model_id for i in instances)

    filters = {
        "name": field_equals("name"),
        "endpoint_id": field_equals("id"),
        "type": field_equals("type"),
        "visibility": field_equals("visibility"),
        "model_id": serves_model,
    }
    endpoints = cloud.within(cloud.endpoints, workspace["id"])
    return listing(call, endpoints, "endpoints", filters, endpoint_view(call, brief=True))


def show_endpoint(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    endpoint = cloud.owned(cloud.endpoints, workspace["id"], call.param("endpoint_id"))
    return fabric_response(endpoint_view(call)(endpoint))


def update_endpoint(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    endpoint = cloud.owned(cloud.endpoints, workspace["id"], call.param("endpoint_id"))
    changes = rules.endpoint_update(call.body)
    if changes.pop("type", endpoint["type"]) != endpoint["type"]:
        raise not_updatable("type")
    if endpoint["status"] != RUNNING:
        raise busy("endpoint", endpoint["status"])
    siblings = cloud.within(cloud.endpoints, workspace["id"])
    cloud.require_unique_name(siblings, "endpoint", changes.get("name"), endpoint["id"])
    if "reserved_resource" in changes:
        reserved = {**endpoint["reserved_resource"], **changes["reserved_resource"]}
        _check_reservation_covers_instances(cloud, endpoint, reserved)
        changes["reserved_resource"] = reserved
    endpoint.update(changes)
    endpoint["update_time"] = cloud.timestamp()
    cloud.begin(endpoint, "UPDATING", RUNNING)
    return fabric_response(endpoint_view(call)(endpoint))


def _check_reservation_covers_instances(
    cloud: FabricCloud, endpoint: JsonObject, reserved: JsonObject
) -> None:
    users = [i for i in cloud.instances.values() if i["endpoint_id"] == endpoint["id"]]
    if not users:
        return
    needed = sum(i["config"]["model_instance_config"]["resource"]["max"] for i in users)
    limit = reserved.get("mu", {}).get("max", 0)
    if needed > limit:
        raise capacity_exceeded(
            f"the {len(users)} service instance(s) on endpoint {endpoint['name']} may scale to {needed} mu "
            f"in total, more than the requested reserved maximum {limit}"
        )


def delete_endpoint(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    endpoint = cloud.owned(cloud.endpoints, workspace["id"], call.param("endpoint_id"))
    if endpoint["status"] == "DELETING":
        raise busy("endpoint", endpoint["status"])
    users = [i["name"] for i in cloud.instances.values() if i["endpoint_id"] == endpoint["id"]]
    if users:
        raise in_use(f"endpoint {endpoint['name']}", users)
    endpoint["update_time"] = cloud.timestamp()
    cloud.begin(endpoint, "DELETING", None)
    return fabric_response({"id": endpoint["id"]})


# ---------------------------------------------------------------- models


MODEL_ORDER = ("visibility", "id", "name", "description", "type", "create_time", "update_time")


def model_view(model: JsonObject) -> JsonObject:
    shown = public(model)
    current = next(v for v in model["_versions"] if v["id"] == model["_current_version_id"])
    shown["current_version"] = dict(current)
    return {key: shown[key] for key in (*MODEL_ORDER, "current_version")} | shown


def _new_version(cloud: FabricCloud, fields: JsonObject) -> JsonObject:
    """A model version as the SDK's ``ModelVersionInfo`` reads it."""
    return {
        "id": cloud.store.new_id(),
        **fields,
        "create_time": cloud.timestamp(),
        "create_user": dict(OWNER),
        "cap_white_list": [],
    }


def create_model(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    fields = rules.model_create(call.body)
    cloud.require_unique_name(cloud.within(cloud.models, workspace["id"]), "model", fields["name"])
    version = _new_version(cloud, fields["version"])
    now = cloud.timestamp()
    model = {
        "visibility": VISIBILITY,
        "id": cloud.store.new_id(),
        "name": fields["name"],
        "description": fields["description"],
        "type": fields["type"],
        "create_time": now,
        "update_time": now,
        "create_user": dict(OWNER),
        "update_user": dict(OWNER),
        "_workspace_id": workspace["id"],
        "_versions": [version],
        "_current_version_id": version["id"],
    }
    cloud.models[model["id"]] = model
    return fabric_response({"id": model["id"], "version_id": version["id"]}, status_code=201)


MODEL_ORDERS: Mapping[str, Callable[[JsonObject], Any]] = {
    "CREATE_TIME": lambda model: str(model["create_time"]),
    "UPDATE_TIME": lambda model: str(model["update_time"]),
    "NAME": lambda model: str(model["name"]),
}


def list_models(cloud: FabricCloud, call: Call) -> Response:
    """Newest first unless asked otherwise: the SDK documents CREATE_TIME and DESC as the defaults."""
    workspace = cloud.workspace(call)
    models = cloud.within(cloud.models, workspace["id"])
    models = ordered(call, models, MODEL_ORDERS, default_sort="CREATE_TIME", default_order="DESC")
    filters = {name: field_equals(name) for name in ("name", "id", "type", "visibility")}
    return listing(call, models, "models", filters, model_view)


def update_model(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    model = cloud.owned(cloud.models, workspace["id"], call.param("model_id"))
    changes = rules.model_update(call.body)
    siblings = cloud.within(cloud.models, workspace["id"])
    cloud.require_unique_name(siblings, "model", changes.get("name"), model["id"])
    current = changes.pop("current_version_id", None)
    if current is not None and all(v["id"] != current for v in model["_versions"]):
        raise reference_missing("model version", current)
    version_fields = changes.pop("version", None)
    if version_fields is not None:
        version = _new_version(cloud, version_fields)
        model["_versions"].append(version)
        current = version["id"]
    if current is not None:
        model["_current_version_id"] = current
    model.update(changes)
    model["update_time"] = cloud.timestamp()
    model["update_user"] = dict(OWNER)
    return fabric_response(model_view(model))


def delete_model(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    model = cloud.owned(cloud.models, workspace["id"], call.param("model_id"))
    users = [i["name"] for i in cloud.instances.values() if i["source"]["id"] == model["id"]]
    if users:
        raise in_use(f"model {model['name']}", users)
    del cloud.models[model["id"]]
    return fabric_response(None, status_code=204)


def list_model_versions(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    model = cloud.owned(cloud.models, workspace["id"], call.param("model_id"))
    filters = {"name": field_equals("name"), "version_id": field_equals("id")}
    return listing(call, model["_versions"], "versions", filters)


def delete_model_version(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    model = cloud.owned(cloud.models, workspace["id"], call.param("model_id"))
    version_id = call.param("version_id")
    version = next((v for v in model["_versions"] if v["id"] == version_id), None)
    if version is None:
        raise not_found()
    if version_id == model["_current_version_id"]:
        raise state_conflict(
            "the current version of a model cannot be deleted",
            "Make another version current (current_version_id) first, or delete the model.",
        )
    users = [i["name"] for i in cloud.instances.values() if i["source"]["version_id"] == version_id]
    if users:
        raise in_use(f"model version {version['name']}", users)
    model["_versions"].remove(version)
    return fabric_response(None, status_code=204)


# ---------------------------------------------------------------- specs


def _spec(code: str, spec_type: str, resource_type: str) -> JsonObject:
    return {
        "spec_code": code,
        "spec_type": spec_type,
        "resource_type": resource_type,
        "stride": 1,
        "unit": spec_type,
        "min_stride_num": 1,
        "max_stride_num": rules.SCALE_LIMIT,
        "usage_measure_id": 4,
        "usage_factor": "1",
        "stride_num_whitelist": [],
    }


SPECS = (
    _spec("mu.llama3.8b", "MU", "llm_inference"),
    _spec("mu.llama3.70b", "MU", "llm_inference"),
    _spec("mu.qwen2.7b", "MU", "llm_inference"),
    _spec("apu.standard", "APU", "general_compute"),
    _spec("dpu.standard", "DPU", "data_processing"),
)


def list_specs(cloud: FabricCloud, call: Call) -> Response:
    wanted_types = {
        kind.strip().upper()
        for value in call.query.getlist("spec_types")
        for kind in value.split(",")
        if kind.strip()
    }
    specs = [spec for spec in SPECS if not wanted_types or spec["spec_type"] in wanted_types]
    return listing(call, specs, "spec_codes", {"spec_code": field_equals("spec_code")}, dict)
