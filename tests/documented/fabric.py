"""DataArts Fabric's documented answer shapes, built from the official SDKs' response models.

Every shape comes from a model class's ``openapi_types`` in ``huaweicloudsdkdataartsfabric``
(control plane) or ``huaweicloudsdkdataartsfabricep`` (service instances), followed
recursively: ``list[X]`` is ``[shape of X]``, ``dict(...)`` and builtins are ``None``
(scalars or free-form values), another model class is its own fields. ``x_request_id``
is a response header in the SDK, never a body field, so it is left out.
"""

from __future__ import annotations

import re
from typing import Any

from huaweicloudsdkdataartsfabric.v1 import model as control
from huaweicloudsdkdataartsfabricep.v1 import model as serving

from tests.documented.shapes import Shape

BUILTINS = {"str", "int", "float", "bool", "object", "datetime", "date"}
HEADERS = {"x_request_id"}


def _model_class(name: str) -> Any:
    for module in (serving, control):
        found = getattr(module, name, None)
        if found is not None:
            return found
    raise LookupError(f"no SDK model named {name}")


def type_shape(type_name: str, module: Any = None) -> Shape:
    """The shape of one ``openapi_types`` value."""
    listed = re.fullmatch(r"list\[(.+)\]", type_name)
    if listed:
        return [type_shape(listed.group(1), module)]
    if type_name in BUILTINS or type_name.startswith("dict("):
        return None
    cls = getattr(module, type_name, None) if module is not None else None
    return model_shape(cls if cls is not None else _model_class(type_name), module)


def model_shape(cls: Any, module: Any = None) -> Shape:
    """The shape of one SDK model class; an enum-like class with no fields is a scalar."""
    types: dict[str, str] = dict(getattr(cls, "openapi_types", {}))
    if not types:
        return None
    home = module if module is not None else _home(cls)
    return {field: type_shape(kind, home) for field, kind in types.items() if field not in HEADERS}


def _home(cls: Any) -> Any:
    return serving if cls.__module__.startswith("huaweicloudsdkdataartsfabricep") else control


def shape_of(name: str) -> Shape:
    """The documented shape of the SDK model ``name`` (searched in the ep SDK, then the control SDK)."""
    return model_shape(_model_class(name))


WS = r"/v1/workspaces/[^/]+"
# (method, path pattern, SDK model of the answer); the first match wins.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", r"/v1/workspaces", "CreateWorkspaceResponse"),
    ("GET", r"/v1/workspaces", "ListWorkspacesResponse"),
    ("PUT", WS, "UpdateWorkspaceResponse"),
    ("DELETE", WS, "DeleteWorkspaceResponse"),
    ("POST", WS + r"/endpoints", "CreateEndpointResponse"),
    ("GET", WS + r"/endpoints", "ListEndpointsResponse"),
    ("GET", WS + r"/endpoints/[^/]+", "ShowEndpointResponse"),
    ("PUT", WS + r"/endpoints/[^/]+", "UpdateEndpointResponse"),
    ("DELETE", WS + r"/endpoints/[^/]+", "DeleteEndpointResponse"),
    ("POST", WS + r"/models", "CreateModelDefinitionResponse"),
    ("GET", WS + r"/models", "ListModelsResponse"),
    ("PUT", WS + r"/models/[^/]+", "UpdateModelDefinitionResponse"),
    ("GET", WS + r"/models/[^/]+/versions", "ListModelVersionsResponse"),
    ("POST", WS + r"/services/instances", "DeployServiceInstanceResponse"),
    ("GET", WS + r"/services/instances", "ListServicesInstancesResponse"),
    ("GET", WS + r"/services/instances/[^/]+", "ShowServiceInstanceDetailResponse"),
    ("PUT", WS + r"/services/instances/[^/]+", "UpdateServiceInstanceResponse"),
)

ERROR: Shape = {"error_code": None, "error_msg": None, "solution_msg": None}


def route_model(method: str, path: str) -> str | None:
    for wanted, pattern, name in ROUTES:
        if wanted == method and re.fullmatch(pattern, path):
            return name
    return None


def router(method: str, path: str, status: int) -> Shape | bool:
    """A :data:`~tests.documented.shapes.Router` for Fabric: errors are the error envelope."""
    if status >= 400:
        return ERROR
    if path.endswith("/invocations"):
        return True  # a stream of chat.completion.chunk events, not one JSON object
    name = route_model(method, path)
    return None if name is None else shape_of(name)
