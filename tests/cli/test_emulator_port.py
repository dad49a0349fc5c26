"""`reconciler emulator serve` on a port already in use exits 1 naming the port, no server log."""

from __future__ import annotations

import socket
import subprocess
import sys


def test_a_busy_port_is_refused_with_its_number() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "reconciler", "emulator", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 1, run.stderr
    assert (
        f"Error: port {port} is in use on 127.0.0.1; stop what listens there or choose another with --port"
        in (run.stderr)
    )
    assert "Traceback" not in run.stderr and "ERROR:" not in run.stderr
