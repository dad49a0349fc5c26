"""Request counting: how many calls each route of the emulated platforms answered.

:class:`RequestMetrics` is an ASGI middleware around the whole emulator app.
It counts every HTTP request by *route*: the method and the route template
the router matched (``GET /v1/workspaces/{workspace_id}/endpoints``), so that
calls to a thousand different objects add up on one line. A request no route
matched (an injected fault answered it before the router, or the path is
unknown) counts as ``"<METHOD> (not routed)"``.

Two paths belong to the emulator itself, not to any platform's API (no real
platform answers them; providers never call them), and are not counted:

===========================  ==============================================================
``GET /_emulator/metrics``   ``{"total": N, "routes": {"GET /v1/workspaces": 3, ...}}``
``DELETE /_emulator/metrics``  resets every count to zero; answers 204
===========================  ==============================================================

Benchmarks read them to report API calls by route; tests count the calls a
plan makes. Counting costs one dict update per request.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

METRICS_PATH = "/_emulator/metrics"


class RequestCounts:
    """Requests counted per ``"<METHOD> <route template>"``; shared by the middleware and its readers.

    An in-process reader (a test) finds the app's counts at ``app.state.request_counts``.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, route: str) -> None:
        self.counts[route] += 1

    def snapshot(self) -> dict[str, Any]:
        """The counts so far: ``{"total": N, "routes": {route: n}}`` (routes sorted)."""
        return {"total": sum(self.counts.values()), "routes": dict(sorted(self.counts.items()))}

    def reset(self) -> None:
        self.counts.clear()


class RequestMetrics:
    """ASGI middleware counting requests into ``counts``; see the module docstring."""

    def __init__(self, app: ASGIApp, counts: RequestCounts) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope["method"]).upper()
        if scope["path"] == METRICS_PATH:
            await self._answer(method, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            self.counts.add(f"{method} {template}" if isinstance(template, str) else f"{method} (not routed)")

    async def _answer(self, method: str, send: Send) -> None:
        if method == "GET":
            status, body = 200, json.dumps(self.counts.snapshot()).encode()
        elif method == "DELETE":
            self.counts.reset()
            status, body = 204, b""
        else:
            status, body = 405, json.dumps({"error": "GET or DELETE only"}).encode()
        headers = [(b"content-length", str(len(body)).encode())]
        if body:
            headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
