"""The DataArts Fabric emulator's routes: control plane and service-instance host on one app.

The real platform answers on two hosts (``fabric`` for workspaces, endpoints,
models and specs; ``fabric-ep`` for service instances and invocations); their
paths do not overlap, so one server answers both and a provider may point both
base URLs at it.

Every route goes through :func:`_route`, the one place that authenticates
(an IAM token or an AK/SK signature, see ``fabric_auth``),
parses the body, takes the store's lock, settles due transitions, runs the
handler and saves (unless it raised, or it only read and nothing settled).
Handlers live in ``fabric_control`` and ``fabric_serving``.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.emulators import fabric_control as control
from reconciler.emulators import fabric_serving as serving
from reconciler.emulators.config import EmulatorConfig
from reconciler.emulators.envelope import read_json_object
from reconciler.emulators.fabric_auth import authenticate
from reconciler.emulators.fabric_cloud import Call, FabricCloud
from reconciler.emulators.store import Store

Handler = Callable[[FabricCloud, Call], Response]

WORKSPACE = "/v1/workspaces/{workspace_id}"
ENDPOINT = WORKSPACE + "/endpoints/{endpoint_id}"
MODEL = WORKSPACE + "/models/{model_id}"
INSTANCES = WORKSPACE + "/services/instances"
INSTANCE = INSTANCES + "/{instance_id}"

ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("/v1/workspaces", "POST", control.create_workspace),
    ("/v1/workspaces", "GET", control.list_workspaces),
    (WORKSPACE, "PUT", control.update_workspace),
    (WORKSPACE, "DELETE", control.delete_workspace),
    (WORKSPACE + "/endpoints", "POST", control.create_endpoint),
    (WORKSPACE + "/endpoints", "GET", control.list_endpoints),
    (ENDPOINT, "GET", control.show_endpoint),
    (ENDPOINT, "PUT", control.update_endpoint),
    (ENDPOINT, "DELETE", control.delete_endpoint),
    (WORKSPACE + "/models", "POST", control.create_model),
    (WORKSPACE + "/models", "GET", control.list_models),
    (MODEL, "PUT", control.update_model),
    (MODEL, "DELETE", control.delete_model),
    (MODEL + "/versions", "GET", control.list_model_versions),
    (MODEL + "/versions/{version_id}", "DELETE", control.delete_model_version),
    ("/v1/specs", "GET", control.list_specs),
    (INSTANCES, "POST", serving.deploy_instance),
    (INSTANCES, "GET", serving.list_instances),
    (INSTANCE, "GET", serving.show_instance),
    (INSTANCE, "PUT", serving.update_instance),
    (INSTANCE, "DELETE", serving.delete_instance),
    (INSTANCE + "/invocations", "POST", serving.invoke_instance),
)


def fabric_routes(config: EmulatorConfig, store: Store) -> list[Route]:
    """Every Fabric route, answering from the ``fabric.*`` collections of ``store``."""
    cloud = FabricCloud(config, store)
    return [_route(cloud, path, method, handler) for path, method, handler in ROUTES]


def _route(cloud: FabricCloud, path: str, method: str, handler: Handler) -> Route:
    async def endpoint(request: Request) -> Response:
        await authenticate(request, cloud.config)
        body = await read_json_object(request) if method in ("POST", "PUT") else {}
        with cloud.store.locked():
            settled = cloud.settle()
            response = handler(cloud, Call(request, body))
            if settled or method != "GET":
                cloud.store.save()
            return response

    return Route(path, endpoint, methods=[method], name=f"fabric.{handler.__name__}")
