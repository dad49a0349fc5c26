"""Providers: one module per platform; the only code that talks HTTP.

Each provider implements :class:`reconciler.providers.base.Provider`: a pure
schema half (kinds, desired attributes) the planner uses without I/O, and an
asynchronous I/O half the planner (refresh) and applier call. HTTP failures
become :class:`~reconciler.errors.ProviderError` in one place,
:mod:`reconciler.providers.http`. Nothing here reads files other than what an
embedded emulator keeps under the state directory, prints, or exits.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.errors import UsageError
from reconciler.providers.base import Provider

PLATFORMS: tuple[str, ...] = ("fabric", "modelstudio", "zstack")


def build_provider(platform: str, block: Mapping[str, Any], *, state_dir: Path) -> Provider:
    """The provider for ``platform``, configured from the stack's ``providers.<platform>`` block.

    ``state_dir`` is where an embedded emulator keeps its store. Raises
    :class:`UsageError` for an unknown platform or a bad block.
    """
    if platform == "fabric":
        from reconciler.providers.fabric import FabricProvider

        return FabricProvider.from_block(block, state_dir=state_dir)
    if platform == "modelstudio":
        from reconciler.providers.modelstudio import ModelStudioProvider

        return ModelStudioProvider.from_block(block, state_dir=state_dir)
    if platform == "zstack":
        from reconciler.providers.zstack import ZStackProvider

        return ZStackProvider.from_block(block, state_dir=state_dir)
    raise UsageError(f"unknown platform {platform!r}; known platforms: {', '.join(PLATFORMS)}")


__all__ = ["PLATFORMS", "build_provider"]
