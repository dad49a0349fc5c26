"""A served emulator per test, stacks pointing at it, the CLI in-process, and each platform's own API.

The platforms are changed out of band through their HTTP APIs, as a console
user or another tool would. Every test gets its own emulator (provision 0s),
so that unmanaged-object scans never see another test's objects.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from tests.cli.conftest import Result, Served, start_emulator

MS_KEY = "ms-key-review-5b1"
ZS_PASSWORD = "zs-pass-review-8c3"
ZONE = "8f3c1a2b4d5e4f60a7b8c9d0e1f2a3b4"
MODEL_CENTER = "5e2d9c0f7a8b4c3d9e1f0a2b3c4d5e6f"
MODEL_UUID = "1b7e4f9a2c3d4e5f8a9b0c1d2e3f4a5b"

FABRIC = """\
stack: fab
providers:
  fabric: {{url: "{url}", token: "{{{{ env.FABRIC_TOKEN }}}}"}}
backend: {{local: {{path: state/fab.json}}}}
workspaces:
  main: {workspace}
endpoints:
  infer:
    workspace: main
    name: infer
    type: inference
    reserved_resource: {{mu: {{spec_code: mu.llama3.8b, min: 0, max: 4}}}}
models:
  llama:
    workspace: main
    name: llama3-8b
    type: LLM_MODEL
    version: {{name: v1, config: {{llm_model_config: {{base_model_type: llama3-8b, model_path: obs://m/llama}}}}}}
deployments:
  chat:
    platform: fabric
    workspace: main
    endpoint: infer
    model: llama
    name: chat
    description: chat service
    config: {{model_instance_config: {{resource: {{spec_code: mu.llama3.8b, min: 1, max: 2}}}}}}
{extra}"""

MODELSTUDIO = """\
stack: ms
providers:
  modelstudio: {{url: "{url}/api/v1", api_key: "{{{{ env.DASHSCOPE_API_KEY }}}}", region: cn-beijing}}
backend: {{local: {{path: state/ms.json}}}}
deployments:
  qwen8b:
    platform: modelstudio
    model_name: qwen3-8b
    name: qwen8b-chat
    plan: mu
    deploy_spec: {spec}
    capacity: {capacity}
    billing_method: POST_PAY
    suffix: chat01
  flash:
    platform: modelstudio
    model_name: qwen-flash-2025-07-28
    name: flash-ptu
    plan: ptu
    ptu_capacity: {{input_tpm: 10000, output_tpm: 1000}}
{extra}"""

ZSTACK = """\
stack: zs
providers:
  zstack: {{url: "{url}", account: admin, password: "{{{{ env.ZSTACK_PASSWORD }}}}", zone_uuid: {zone}}}
backend: {{local: {{path: state/zs.json}}}}
models:
  qwen-svc:
    platform: zstack
    name: qwen-service
    description: qwen chat template
    yaml: "image: registry.local/vllm:latest"
    requestCpu: 4
    requestMemory: 17179869184
    installPath: /models/qwen
    startCommand: python -m vllm.entrypoints.openai.api_server
    modelCenterUuid: {center}
deployments:
  qwen:
    platform: zstack
    model_service: qwen-svc
    name: qwen-group
    type: Container
    modelUuid: {model}
    cpuNum: 4
    memorySize: 17179869184
{extra}"""


@dataclass
class Cloud:
    """A served emulator and a directory to run the CLI in."""

    served: Served
    cwd: Path

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def env(self) -> dict[str, str]:
        return {
            "FABRIC_TOKEN": self.served.token,
            "DASHSCOPE_API_KEY": MS_KEY,
            "ZSTACK_PASSWORD": ZS_PASSWORD,
        }

    def write(self, name: str, template: str, extra: str = "", **values: Any) -> str:
        defaults = {
            "spec": "MU1",
            "capacity": 4,
            "zone": ZONE,
            "center": MODEL_CENTER,
            "model": MODEL_UUID,
            "workspace": "{name: ml-review, description: inference workspace}",
        }
        text = template.format(url=self.url, extra=extra, **{**defaults, **values})
        (self.cwd / name).write_text(text)
        return name

    def cli(self, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
        """Run the CLI in-process (click's CliRunner) with this directory as the working directory."""
        import os

        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            result = CliRunner().invoke(cli, list(args), input=stdin, env={**self.env, **(env or {})})
        finally:
            os.chdir(old)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result.exit_code, result.stdout, result.stderr)

    # -- each platform's own API, as a console user would use it ----------------------

    def fabric(self) -> httpx.Client:
        return self.served.client()

    def modelstudio(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1", headers={"Authorization": f"Bearer {MS_KEY}"}, timeout=10
        )

    def zstack(self) -> httpx.Client:
        digest = hashlib.sha512(ZS_PASSWORD.encode()).hexdigest()
        body = {"logInByAccount": {"accountName": "admin", "password": digest}}
        session = httpx.put(f"{self.url}/zstack/v1/accounts/login", json=body, timeout=10).json()
        headers = {"Authorization": f"OAuth {session['inventory']['uuid']}"}
        return httpx.Client(base_url=self.url + "/zstack/v1", headers=headers, timeout=10)


def zstack_job(client: httpx.Client, answer: httpx.Response) -> dict[str, Any]:
    """Follow an asynchronous ZStack call to its result."""
    assert answer.status_code == 202, answer.text
    location = answer.json()["location"]
    path = location.split("/zstack/v1", 1)[1]
    for _ in range(200):
        polled = client.get(path)
        if polled.status_code != 202:
            assert polled.status_code == 200, polled.text
            result: dict[str, Any] = polled.json() if polled.content else {}
            return result
        time.sleep(0.02)
    raise AssertionError("ZStack job did not finish")


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    served = start_emulator(tmp_path, "--modelstudio-key", MS_KEY, "--zstack-password", ZS_PASSWORD)
    try:
        yield Cloud(served, tmp_path)
    finally:
        served.process.terminate()
        served.process.wait(timeout=10)
