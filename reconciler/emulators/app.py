"""One ASGI app serving every platform emulator, and a way to run it.

The platforms' paths do not collide (Fabric ``/v1/...``, Model Studio
``/api/v1/...`` and ZStack ``/zstack/v1/...``), so their routes share one
router and one store. Errors are answered in one place: a handler's
:class:`~reconciler.emulators.envelope.ApiError` becomes its platform's
envelope; unknown paths and methods get Fabric's 404/405 envelope.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from reconciler.emulators.config import EmulatorConfig
from reconciler.emulators.envelope import ApiError, FabricError
from reconciler.emulators.fabric import fabric_routes
from reconciler.emulators.faults import FaultInjector, quiet_dropped_connections
from reconciler.emulators.metrics import RequestCounts, RequestMetrics
from reconciler.emulators.modelstudio import (
    ModelStudioSettings,
    answer_http_exception,
    answer_internal_error,
    modelstudio_routes,
)
from reconciler.emulators.openapi import openapi_routes
from reconciler.emulators.store import Store
from reconciler.emulators.zstack import ZStackSettings, zstack_routes
from reconciler.errors import UsageError


def build_app(config: EmulatorConfig) -> Starlette:
    """The emulators' app; loads ``config.data_file`` now if it is set (``app.state.store``).

    Requests are counted per route (``app.state.request_counts``, also served at
    ``/_emulator/metrics``, which is no platform's API: see :mod:`.metrics`).
    """
    store = Store(config.data_file, clock=config.clock)
    counts = RequestCounts()
    app = Starlette(
        routes=[
            *fabric_routes(config, store),
            *modelstudio_routes(
                store,
                ModelStudioSettings(
                    api_key=config.modelstudio_api_key,
                    provision_seconds=config.provision_seconds,
                    clock=config.clock,
                    fail_provisioning=config.faults.fail_provisioning,
                ),
            ),
            *zstack_routes(
                store,
                ZStackSettings(
                    account=config.zstack_account,
                    password=config.zstack_password,
                    provision_seconds=config.provision_seconds,
                    session_ttl_seconds=config.zstack_session_ttl_seconds,
                    clock=config.clock,
                    fail_provisioning=config.faults.fail_provisioning,
                ),
            ),
            *openapi_routes(),  # GET /_emulator/openapi/<platform>.json
        ],
        exception_handlers={
            ApiError: _answer_api_error,
            HTTPException: _answer_http_exception,
            500: _answer_internal_error,
        },
        middleware=[
            Middleware(RequestMetrics, counts=counts),  # outermost: faulted requests count too
            Middleware(FaultInjector, settings=config.faults),  # passes through when inactive
        ],
    )
    app.state.store = store
    app.state.request_counts = counts
    app.state.config = config
    return app


def serve(
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    announce: Callable[[str], None] = lambda url: None,
) -> None:
    """Run the emulators until interrupted; ``announce`` gets the URL once the port is bound.

    The socket is bound here, before the server starts, so that a port in use is a
    UsageError (exit 1, "port N is in use") rather than a server log line and exit 3.
    """
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} is in use on {host}; stop what listens there or choose another with --port"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    quiet_dropped_connections()
    server = uvicorn.Server(uvicorn.Config(build_app(config), log_level="warning"))
    announce(f"http://{host}:{bound}")
    server.run(sockets=[sock])


async def _answer_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _answer_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/v1/"):
        return await answer_http_exception(request, exc)
    status = exc.status_code
    response = FabricError(status, "common.01000001", f"response status exception, code: {status}").response()
    response.headers.update(exc.headers or {})
    return response


async def _answer_internal_error(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/v1/"):
        return await answer_internal_error(request, exc)
    return FabricError(500, "common.00000500", "internal error").response()
