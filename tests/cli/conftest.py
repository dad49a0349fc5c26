"""A real `reconciler emulator serve` subprocess on 127.0.0.1 and a free port, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    token: str
    process: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Auth-Token": self.token}, timeout=10)


def start_emulator(tmp: Path, *extra: str) -> Served:
    port = free_port()
    token = "e2e-token-7f3a"
    with open(tmp / "emulator.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "emulator",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--provision-seconds",
                "0",
                "--fabric-token",
                token,
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/v1/workspaces", headers={"X-Auth-Token": token}, timeout=5)
            return Served(url, token, proc)
        except httpx.TransportError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"emulator did not start: {(tmp / 'emulator.log').read_text()}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = start_emulator(tmp_path)
    try:
        yield s
    finally:
        s.process.terminate()
        try:
            s.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            s.process.kill()


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=full_env,
        input=stdin.encode(),
        capture_output=True,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
