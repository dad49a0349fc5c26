"""How an emulator server is set up: credentials it accepts, its pace, where it keeps its cloud."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class EmulatorConfig:
    """Settings shared by every platform emulator in one app.

    ``fabric_token``: the only ``X-Auth-Token`` the Fabric emulator accepts.
    ``provision_seconds``: how long an asynchronous transition (CREATING,
    UPDATING, DELETING) lasts before it settles. ``0`` settles on the very next
    request, which is what tests want: ``EmulatorConfig(provision_seconds=0, clock=fake)``.
    ``data_file``: when set, the emulated cloud is loaded from and saved to this
    JSON file, so it outlives the process (an embedded emulator between CLI runs).
    ``clock``: seconds since the epoch; inject a fake one to move time by hand.
    """

    fabric_token: str = "emulator-token"
    provision_seconds: float = 1.0
    data_file: Path | None = None
    clock: Callable[[], float] = time.time
