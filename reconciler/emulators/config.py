"""How an emulator server is set up: credentials it accepts, its pace, where it keeps its cloud."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.emulators.faults import FaultSettings


@dataclass
class EmulatorConfig:
    """Settings shared by every platform emulator in one app.

    ``fabric_token``: the only ``X-Auth-Token`` the Fabric emulator accepts.
    ``modelstudio_api_key``: the only ``Bearer`` key the Model Studio emulator accepts.
    ``zstack_account`` / ``zstack_password``: the ZStack login the emulator accepts
    (sessions expire after ``zstack_session_ttl_seconds``).
    ``provision_seconds``: how long an asynchronous transition (CREATING,
    UPDATING, DELETING) lasts before it settles. ``0`` settles on the very next
    request, which is what tests want: ``EmulatorConfig(provision_seconds=0, clock=fake)``.
    ``data_file``: when set, the emulated cloud is loaded from and saved to this
    JSON file, so it outlives the process (an embedded emulator between CLI runs).
    ``clock``: seconds since the epoch; inject a fake one to move time by hand.
    ``fabric_ak`` / ``fabric_sk``: an access key pair the Fabric emulator also
    accepts, as SDK-HMAC-SHA256 signed requests (both must be set; ``X-Sdk-Date``
    must lie within 15 minutes of ``clock``).
    ``faults``: injected failures (errors, throttling, dropped and lost answers,
    latency, failed provisioning); see :mod:`reconciler.emulators.faults`.
    """

    fabric_token: str = "emulator-token"
    modelstudio_api_key: str = field(default="emulator-key", repr=False)
    zstack_account: str = "admin"
    zstack_password: str = field(default="password", repr=False)
    zstack_session_ttl_seconds: float = 7200
    provision_seconds: float = 1.0
    data_file: Path | None = None
    clock: Callable[[], float] = time.time
    fabric_ak: str | None = None
    fabric_sk: str | None = field(default=None, repr=False)
    faults: FaultSettings = field(default_factory=FaultSettings)
