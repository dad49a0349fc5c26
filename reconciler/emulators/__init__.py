"""Faithful local emulators of the platforms' HTTP APIs, as one ASGI app.

What it does: answers the same paths, bodies, status codes, error envelopes,
validation rules and asynchronous lifecycles as DataArts Fabric (Model Studio
and ZStack join later), from an in-memory store that can be persisted to a
JSON file so the emulated cloud outlives a process. Time comes from an
injectable clock and transitions settle lazily, so tests are deterministic.

What it must not do: import anything from the reconciler's core (stack,
planner, state, providers); talk to any real platform; run background tasks;
answer anything a real platform would refuse. It is a server, and the rest of
the product reaches it only over HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.emulators.app import build_app, serve
    from reconciler.emulators.config import EmulatorConfig

__all__ = ["EmulatorConfig", "build_app", "serve"]


def __getattr__(name: str) -> Any:
    """Import the app on first use: the CLI reads the Model Studio catalogue (cost estimates)
    from this package on every run, and must not pay for building the emulators then."""
    if name in ("build_app", "serve"):
        from reconciler.emulators import app

        return getattr(app, name)
    if name == "EmulatorConfig":
        from reconciler.emulators.config import EmulatorConfig

        return EmulatorConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
