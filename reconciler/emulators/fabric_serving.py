"""Fabric service-instance handlers (the ``fabric-ep`` host): deploy, read, update, delete, invoke.

Service instances run a model version on an endpoint's reserved ``mu``
resource. They are asynchronous like endpoints (CREATING / UPDATING /
DELETING, settled from the clock), and the deploy page's rules hold: the
source model and version and the endpoint exist, the endpoint is RUNNING,
``max`` fits under the endpoint's reserved maximum, and all instances on an
endpoint together fit under it too. ``duration`` is whole seconds since the
instance first became RUNNING.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response, StreamingResponse

from reconciler.emulators import fabric_validation as rules
from reconciler.emulators.envelope import fabric_response
from reconciler.emulators.fabric_cloud import (
    RUNNING,
    USER,
    VISIBILITY,
    Call,
    FabricCloud,
    busy,
    capacity_exceeded,
    field_equals,
    listing,
    not_updatable,
    ordered,
    reference_missing,
)
from reconciler.emulators.fabric_errors import bad_request, state_conflict
from reconciler.emulators.store import JsonObject


def _resource(instance: JsonObject) -> JsonObject:
    resource: JsonObject = instance["config"]["model_instance_config"]["resource"]
    return resource


def instance_view(
    cloud: FabricCloud, call: Call, *, brief: bool = False
) -> Callable[[JsonObject], JsonObject]:
    """Instances as shown, with ``duration`` and the invocation ``url`` on the host that asked.

    ``brief`` is the list item, the SDK's ``ServiceInstanceBriefInfo``: no ``update_user``,
    ``url``, ``config``, ``error_code`` or ``error_msg``.
    """
    now = cloud.now()

    def view(instance: JsonObject) -> JsonObject:
        path = f"/v1/workspaces/{instance['_workspace_id']}/services/instances/{instance['id']}/invocations"
        info: JsonObject = {  # ServiceInstanceBriefInfo
            "visibility": instance["visibility"],
            "source": dict(instance["source"]),
            "id": instance["id"],
            "name": instance["name"],
            "description": instance["description"],
            "endpoint_id": instance["endpoint_id"],
            "status": instance["status"],
            "create_time": instance["create_time"],
            "update_time": instance["update_time"],
            "duration": _running_for(instance, now),
            "create_user": dict(instance["create_user"]),
            "type": instance["type"],
        }
        if brief:
            return info
        return {  # ShowServiceInstanceDetailResponse: the brief info and the detail's own fields
            **info,
            "update_user": dict(instance["update_user"]),
            "url": {"name": "invocation", "address": f"{call.base_url}{path}", "type": "PUBLIC"},
            "config": instance["config"],
            "error_code": instance["error_code"],
            "error_msg": instance["error_msg"],
        }

    return view


def _running_for(instance: JsonObject, now: float) -> int:
    """Whole seconds since the instance first became RUNNING (0 while CREATING, or FAILED)."""
    if instance["status"] in ("CREATING", "FAILED"):  # a FAILED instance never ran
        return 0
    return max(0, int(now - float(instance["_ready_at"])))


def _check_capacity(cloud: FabricCloud, endpoint: JsonObject, wanted: int, instance_id: str | None) -> None:
    mu = endpoint["reserved_resource"].get("mu")
    if mu is None:
        raise capacity_exceeded(f"endpoint {endpoint['name']} reserves no mu resource")
    limit = int(mu["max"])
    if wanted > limit:
        raise capacity_exceeded(
            f"max {wanted} is above the reserved mu maximum {limit} of endpoint {endpoint['name']}"
        )
    others = [
        i for i in cloud.instances.values() if i["endpoint_id"] == endpoint["id"] and i["id"] != instance_id
    ]
    used = sum(int(_resource(i)["max"]) for i in others)
    if used + wanted > limit:
        raise capacity_exceeded(
            f"the service instances on endpoint {endpoint['name']} would scale to {used + wanted} mu "
            f"({used} held by {len(others)} other instance(s) + {wanted} requested), above its "
            f"reserved mu maximum {limit}"
        )


def _default_config(endpoint: JsonObject) -> JsonObject:
    """``config`` is optional on the deploy page; without it the emulator runs one unit of the
    endpoint's reserved ``mu`` spec (an emulator assumption: the page does not say)."""
    mu = endpoint["reserved_resource"].get("mu") or {}
    return {"model_instance_config": {"resource": {"spec_code": mu.get("spec_code", ""), "min": 1, "max": 1}}}


def deploy_instance(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    fields = rules.instance_deploy(call.body)
    endpoint = cloud.endpoints.get(fields["endpoint_id"])
    if endpoint is None or endpoint["_workspace_id"] != workspace["id"]:
        raise reference_missing("endpoint", fields["endpoint_id"])
    source = fields["source"]
    model = cloud.models.get(source["id"])
    if model is None or model["_workspace_id"] != workspace["id"]:
        raise reference_missing("model", source["id"])
    if source["version_id"] is None:  # optional on the deploy page: the model's current version
        source["version_id"] = model["_current_version_id"]
    elif all(version["id"] != source["version_id"] for version in model["_versions"]):
        raise reference_missing("model version", source["version_id"])
    if endpoint["status"] != RUNNING:
        raise state_conflict(
            f"endpoint is not running, status: {endpoint['status']}",
            f"Wait until endpoint {endpoint['name']} is RUNNING, then deploy again.",
        )
    siblings = cloud.within(cloud.instances, workspace["id"])
    cloud.require_unique_name(siblings, "service instance", fields["name"])
    if fields["config"] is None:
        fields["config"] = _default_config(endpoint)
    _check_capacity(cloud, endpoint, int(_resource(fields)["max"]), None)
    now = cloud.timestamp()
    instance: JsonObject = {
        "visibility": VISIBILITY,
        "source": source,
        "id": cloud.store.new_id(),
        "name": fields["name"],
        "description": fields["description"],
        "endpoint_id": endpoint["id"],
        "status": "CREATING",
        "create_time": now,
        "update_time": now,
        "create_user": dict(USER),
        "type": "LLM_MODEL",
        "update_user": dict(USER),
        "config": fields["config"],
        "error_code": None,
        "error_msg": None,
        "_workspace_id": workspace["id"],
        "_ready_at": cloud.now() + cloud.config.provision_seconds,
    }
    cloud.begin(instance, "CREATING", RUNNING, failed="FAILED")
    cloud.instances[instance["id"]] = instance
    return fabric_response({"id": instance["id"]})  # the deploy page's status table: 200


def list_instances(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    filters = {
        "id": field_equals("id"),
        "name": field_equals("name"),
        "endpoint_id": field_equals("endpoint_id"),
        "type": field_equals("type"),
        "visibility": field_equals("visibility"),
        "source_id": lambda instance, wanted: bool(instance["source"]["id"] == wanted),
        "version_id": lambda instance, wanted: bool(instance["source"]["version_id"] == wanted),
    }
    instances = cloud.within(cloud.instances, workspace["id"])
    now = cloud.now()
    orders: dict[str, Callable[[JsonObject], Any]] = {
        "CREATE_TIME": lambda instance: str(instance["create_time"]),
        "DURATION": lambda instance: _running_for(instance, now),
    }
    instances = ordered(call, instances, orders, default_sort=None, default_order="ASC")
    return listing(call, instances, "service_instances", filters, instance_view(cloud, call, brief=True))


def show_instance(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    instance = cloud.owned(cloud.instances, workspace["id"], call.param("instance_id"))
    return fabric_response(instance_view(cloud, call)(instance))


def update_instance(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    instance = cloud.owned(cloud.instances, workspace["id"], call.param("instance_id"))
    changes = rules.instance_update(call.body)
    resource = _resource(instance)
    fixed = {
        "source_id": ("source.id", instance["source"]["id"]),
        "version_id": ("source.version_id", instance["source"]["version_id"]),
        "spec_code": ("config.model_instance_config.resource.spec_code", resource["spec_code"]),
        "min": ("config.model_instance_config.resource.min", resource["min"]),
    }
    for key, (field, current) in fixed.items():
        if key in changes and changes[key] != current:
            raise not_updatable(field)
    if instance["status"] != RUNNING:
        raise busy("service instance", instance["status"])
    siblings = cloud.within(cloud.instances, workspace["id"])
    cloud.require_unique_name(siblings, "service instance", changes.get("name"), instance["id"])
    wanted = int(changes["max"] if "max" in changes else resource["max"])
    if wanted < resource["min"]:
        raise bad_request(
            f"config.model_instance_config.resource.max ({wanted}) must be greater than or equal to "
            f"config.model_instance_config.resource.min ({resource['min']})."
        )
    _check_capacity(cloud, cloud.endpoints[instance["endpoint_id"]], wanted, instance["id"])
    for key in ("name", "description"):
        if key in changes:
            instance[key] = changes[key]
    resource["max"] = wanted
    instance["update_time"] = cloud.timestamp()
    instance["update_user"] = dict(USER)
    cloud.begin(instance, "UPDATING", RUNNING)
    return fabric_response({"id": instance["id"]})


def delete_instance(cloud: FabricCloud, call: Call) -> Response:
    workspace = cloud.workspace(call)
    instance = cloud.owned(cloud.instances, workspace["id"], call.param("instance_id"))
    if instance["status"] == "DELETING":
        raise busy("service instance", instance["status"])
    instance["update_time"] = cloud.timestamp()
    cloud.begin(instance, "DELETING", None)
    return fabric_response(None, status_code=204)


def invoke_instance(cloud: FabricCloud, call: Call) -> Response:
    """A deterministic streamed echo of the last user message, as ``chat.completion.chunk`` events."""
    workspace = cloud.workspace(call)
    instance = cloud.owned(cloud.instances, workspace["id"], call.param("instance_id"))
    messages = rules.invocation_messages(call.body)
    if instance["status"] != RUNNING:
        raise state_conflict(
            f"service instance is not running, status: {instance['status']}",
            "Wait until the service instance is RUNNING, then invoke it again.",
        )
    model = cloud.models.get(instance["source"]["id"])
    model_name = model["name"] if model is not None else instance["source"]["id"]
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), messages[-1]["content"])
    words = f"{instance['name']} heard: {prompt}".split(" ")
    pieces = [word + " " for word in words[:-1]] + words[-1:]
    base = {
        "id": f"chatcmpl-{instance['id']}",
        "object": "chat.completion.chunk",
        "created": int(cloud.now()),
        "model": model_name,
    }

    def chunk(content: str, finish_reason: str | None) -> str:
        choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish_reason}
        return "data: " + json.dumps({**base, "choices": [choice]}) + "\n\n"

    events = [chunk(piece, None) for piece in pieces] + [chunk("", "stop"), "data: [DONE]\n\n"]
    return StreamingResponse(_stream(events), media_type="text/event-stream")


async def _stream(events: list[str]) -> AsyncIterator[str]:
    for event in events:
        yield event
