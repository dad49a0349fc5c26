"""Documented response shapes, and a transport that cuts answers down to them.

A *shape* is what a platform documents for one JSON value: ``None`` for a
scalar (or a value whose inside is not documented field by field, such as a
free-form map), a ``dict`` from field name to the shape of its value for an
object, and a one-element ``list`` holding the item shape for an array.

* :func:`extras` lists every field path in an answer that its shape does not
  name: the emulator tests fail on any.
* :func:`prune` keeps only the documented fields: what a real platform,
  answering exactly as documented and no more, would send.
* :class:`DocumentedTransport` wraps another httpx transport (the in-process
  emulator) and prunes every JSON answer by the shape its route documents, so
  provider tests can run against "the platform as documented".

Each platform's shapes are built in ``tests/documented/<platform>.py`` from its
ground truth (the official SDK's response models, the seed pages' response
tables, the Go SDK's views), never copied from the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

Shape = dict[str, Any] | list[Any] | None
Router = Callable[[str, str, int], Shape | bool]
"""(method, path, status) -> the documented shape of the answer; True: pass it as is (not JSON)."""


def extras(value: Any, shape: Shape, where: str = "") -> list[str]:
    """Dotted paths in ``value`` that ``shape`` does not document."""
    if shape is None:
        return []
    if isinstance(shape, list):
        if not isinstance(value, list):
            return []
        return [p for i, item in enumerate(value) for p in extras(item, shape[0], f"{where}[{i}]")]
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    for key, inner in value.items():
        path = f"{where}.{key}" if where else key
        if key not in shape:
            out.append(path)
        else:
            out.extend(extras(inner, shape[key], path))
    return out


def prune(value: Any, shape: Shape) -> Any:
    """``value`` with only the fields ``shape`` documents (nulls kept: the platform may send them)."""
    if shape is None:
        return value
    if isinstance(shape, list):
        return [prune(v, shape[0]) for v in value] if isinstance(value, list) else value
    if not isinstance(value, dict):
        return value
    return {k: prune(v, shape[k]) for k, v in value.items() if k in shape}


class DocumentedTransport(httpx.AsyncBaseTransport):
    """Forwards to ``inner``; every JSON answer is pruned to the shape ``router`` gives its route."""

    def __init__(self, inner: httpx.AsyncBaseTransport, router: Router) -> None:
        self.inner = inner
        self.router = router
        self.pruned: list[str] = []  # "METHOD path: field" of everything cut, for tests to look at

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        shape = self.router(request.method, request.url.path, response.status_code)
        if shape is True or "json" not in response.headers.get("content-type", ""):
            return response
        body = await response.aread()
        if not body:
            return response
        value = json.loads(body)
        cut = extras(value, shape)  # type: ignore[arg-type]
        self.pruned.extend(f"{request.method} {request.url.path}: {p}" for p in cut)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=json.dumps(prune(value, shape)).encode(),  # type: ignore[arg-type]
            request=request,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
