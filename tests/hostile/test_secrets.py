"""Secrets, everywhere: recognisable credentials for all three platforms never appear anywhere.

One served emulator (a real ``reconciler emulator serve`` subprocess, keeping
its cloud in a data file and its output in a log) accepts a Fabric token and
an AK/SK pair, a Model Studio API key and a ZStack password, each a
recognisable value handed to the stacks through the environment. Every
command runs against it (validate, graph, plan as text/json/markdown and at
every verbosity, plan --out, apply of the saved plan, output, state
list/show/pull/history, drift, destroy), and so do failures (wrong
credentials, a stack error quoting a secret, a crash). Then stdout, stderr,
every file under the working directory (state, backups, history, plan and
drift files, the emulator's data file and log) are searched for each secret,
and for the SHA-512 digest ZStack's login sends.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler import operations
from reconciler.cli import cli
from tests.cli.conftest import Served, start_emulator

FABRIC_TOKEN = "fabTOKEN-5ecr3t-7731"
FABRIC_AK = "AKIDfab5ecr3t00001"
FABRIC_SK = "SKfab-5ecr3t-9d2a6b"
MS_KEY = "sk-ms-5ecr3t-4410"
ZS_PASSWORD = "zsPASS-5ecr3t-0058"
HF_TOKEN = "hf_5ecr3t_Q8ZsTbL"
SECRETS = (FABRIC_TOKEN, FABRIC_AK, FABRIC_SK, MS_KEY, ZS_PASSWORD, HF_TOKEN)
FORBIDDEN = (*SECRETS, hashlib.sha512(ZS_PASSWORD.encode()).hexdigest(), "5ecr3t")
ENV = {
    "FABRIC_TOKEN": FABRIC_TOKEN,
    "FABRIC_AK": FABRIC_AK,
    "FABRIC_SK": FABRIC_SK,
    "DASHSCOPE_API_KEY": MS_KEY,
    "ZSTACK_PASSWORD": ZS_PASSWORD,
    "HF_TOKEN": HF_TOKEN,
}

MIXED = """\
stack: secrets
providers:
  fabric: {{url: "{url}", ep_url: "{url}", ak: "{{{{ env.FABRIC_AK }}}}", sk: "{{{{ env.FABRIC_SK }}}}"}}
  modelstudio: {{url: "{url}/api/v1", api_key: "{{{{ env.DASHSCOPE_API_KEY }}}}"}}
  zstack: {{url: "{url}", account: admin, password: "{{{{ env.ZSTACK_PASSWORD }}}}"}}
backend: {{local: {{path: state/secrets.json}}}}
variables: {{env: dev}}
workspaces:
  main: {{name: "ml-{{{{ var.env }}}}", description: inference workspace}}
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
    version: {{name: v1, config: {{llm_model_config: {{base_model_type: llama3-8b, model_path: obs://m/l}}}}}}
  svc:
    platform: zstack
    name: qwen-service
    yaml: "image: registry.local/vllm:latest"
    requestCpu: 4
    requestMemory: 17179869184
    installPath: /models/qwen
    startCommand: python -m vllm.entrypoints.openai.api_server
    modelCenterUuid: 5e2d9c0f7a8b4c3d9e1f0a2b3c4d5e6f
deployments:
  chat:
    platform: fabric
    workspace: main
    endpoint: infer
    model: llama
    name: chat-{{{{ var.env }}}}
    config: {{model_instance_config: {{resource: {{spec_code: mu.llama3.8b, min: 1, max: 2}}}}}}
  qwen:
    platform: modelstudio
    model_name: qwen3-8b
    name: qwen8b-chat
    plan: mu
    deploy_spec: MU1
    capacity: 4
    suffix: "s01"
  group:
    platform: zstack
    model_service: svc
    name: qwen-group
    type: Container
    zoneUuid: 8f3c1a2b4d5e4f60a7b8c9d0e1f2a3b4
    modelUuid: 1b7e4f9a2c3d4e5f8a9b0c1d2e3f4a5b
outputs:
  chat_id: "{{{{ deployments.chat.id }}}}"
  qwen_model: "{{{{ deployments.qwen.id }}}}"
"""
TOKEN = """\
stack: token
providers:
  fabric: {{url: "{url}", token: "{{{{ env.FABRIC_TOKEN }}}}"}}
backend: {{local: {{path: state/token.json}}}}
workspaces:
  main: {{name: tokenised}}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    home = tmp_path_factory.mktemp("secrets")
    served = start_emulator(
        home,
        "--fabric-token", FABRIC_TOKEN,
        "--fabric-ak", FABRIC_AK,
        "--fabric-sk", FABRIC_SK,
        "--modelstudio-key", MS_KEY,
        "--zstack-password", ZS_PASSWORD,
        "--data", str(home / "emulator-data.json"),
    )  # fmt: skip
    try:
        yield served, home
    finally:
        served.process.terminate()
        try:
            served.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            served.process.kill()


class Session:
    """Runs commands in one working directory and keeps everything they printed."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.printed: list[str] = []

    def run(self, *args: str, env: dict[str, str] | None = None, code: int | None = 0) -> Result:
        result = CliRunner().invoke(cli, list(args), env={**ENV, **(env or {})})
        self.printed += [result.stdout, result.stderr]
        if code is not None:
            assert result.exit_code == code, (args, result.stdout, result.stderr)
        return result

    def assert_clean(self, *extra: Path, searched: int = 1) -> None:
        texts = {f"output {i}": text for i, text in enumerate(self.printed)}
        for root in (self.work, *extra):
            for path in (p for p in root.rglob("*") if p.is_file()):
                texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
        assert len(texts) >= searched
        for where, text in texts.items():
            for secret in FORBIDDEN:
                assert secret not in text, f"{secret!r} leaked into {where}"


@pytest.fixture
def session(served: tuple[Served, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    server, _ = served
    (tmp_path / "mixed.yaml").write_text(MIXED.format(url=server.url), encoding="utf-8")
    (tmp_path / "token.yaml").write_text(TOKEN.format(url=server.url), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return Session(tmp_path)


def test_every_command_on_three_platforms_keeps_every_secret(
    session: Session, served: tuple[Served, Path]
) -> None:
    run = session.run
    run("validate", "mixed.yaml")
    run("graph", "mixed.yaml")
    for verbosity in ("", "-v", "-vv", "-vvv"):
        run(*([verbosity] if verbosity else []), "plan", "mixed.yaml")
    run("-vvv", "plan", "mixed.yaml", "--format", "json")
    run("-vvv", "plan", "mixed.yaml", "--format", "markdown")
    run("-vvv", "plan", "mixed.yaml", "--out", "mixed.plan")
    applied = run("-vvv", "apply", "mixed.plan")
    assert "Apply complete! Resources: 7 created" in applied.stdout
    run("-vvv", "plan", "mixed.yaml", "--detailed-exitcode")
    assert "HTTP Request" in session.printed[-1], "-vvv should log every request"
    run("output", "mixed.yaml")
    run("output", "mixed.yaml", "--json")
    run("state", "list", "mixed.yaml")
    run("state", "show", "mixed.yaml")
    run("state", "show", "mixed.yaml", "deployments.qwen")
    run("state", "pull", "mixed.yaml")
    run("state", "history", "mixed.yaml")
    run("-vvv", "drift", "mixed.yaml")
    run("-vvv", "drift", "mixed.yaml", "--format", "json", "--out", "drift.json")
    run("-vvv", "apply", "token.yaml", "--auto-approve")
    run("-vvv", "destroy", "token.yaml", "--auto-approve")
    run("-vvv", "destroy", "mixed.yaml", "--auto-approve")
    _, home = served
    session.assert_clean(home, searched=60)


def test_failures_keep_every_secret(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    run = session.run
    # the platforms refuse wrong credentials (recognisable too) in their own words
    wrong = {"FABRIC_TOKEN": "fabTOKEN-5ecr3t-WRONG", "ZSTACK_PASSWORD": "zsPASS-5ecr3t-WRONG"}
    mixed = Path("mixed.yaml").read_text(encoding="utf-8")
    zstack_only = mixed[: mixed.index("deployments:")].replace("stack: secrets", "stack: zs")
    zstack_only = zstack_only[: zstack_only.index("workspaces:")] + zstack_only[zstack_only.index("  svc:") :]
    Path("zs.yaml").write_text(zstack_only.replace("  svc:", "models:\n  svc:"), encoding="utf-8")
    for stack in ("token.yaml", "zs.yaml"):
        run("apply", stack, "--auto-approve")  # a state, so that plan reads the platform
        refused = run("-vvv", "plan", stack, env=wrong, code=1)
        assert "fabric" in refused.stderr or "zstack" in refused.stderr
        run("destroy", stack, "--auto-approve")
    # a stack error that quotes a secret (a description may not contain '!')
    Path("quoting.yaml").write_text(
        mixed.replace("description: inference workspace", 'description: "{{ env.ZSTACK_PASSWORD }}!"'),
        encoding="utf-8",
    )
    quoted = run("validate", "quoting.yaml", code=1)
    assert "workspaces.main.description: '***!' contains '!'" in quoted.stderr
    # a credential passed with --var is refused in a plan file
    Path("var.yaml").write_text(
        TOKEN.format(url="http://127.0.0.1:1").replace("{{ env.FABRIC_TOKEN }}", "{{ var.token }}")
        + "variables: {token: null}\n",
        encoding="utf-8",
    )
    saved = run("plan", "var.yaml", "--var", f"token={FABRIC_TOKEN}", "--out", "var.plan", code=1)
    assert "it would contain a credential (it comes from --var token)" in saved.stderr
    assert not Path("var.plan").exists()

    # a crash: the traceback is shown, scrubbed
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"unexpected: token {FABRIC_TOKEN} and key {MS_KEY}")

    monkeypatch.setattr(operations, "plan_async", explode)
    crashed = run("plan", "mixed.yaml", code=1)
    assert "Traceback (most recent call last)" in crashed.stderr
    assert "RuntimeError: unexpected: token *** and key ***" in crashed.stderr
    session.assert_clean()


def test_a_credential_in_an_attribute_is_marked_sensitive(session: Session) -> None:
    mixed = Path("mixed.yaml").read_text(encoding="utf-8")
    Path("hf.yaml").write_text(
        mixed.replace("stack: secrets", "stack: hf").replace(
            "    modelUuid: 1b7e4f9a2c3d4e5f8a9b0c1d2e3f4a5b\n",
            "    modelUuid: 1b7e4f9a2c3d4e5f8a9b0c1d2e3f4a5b\n"
            '    environmentVariables: {HF_TOKEN: "{{ env.HF_TOKEN }}", MODE: chat}\n',
        ),
        encoding="utf-8",
    )
    planned = json.loads(session.run("plan", "hf.yaml", "--format", "json").stdout)
    (group,) = [c for c in planned["changes"] if c["address"] == "deployments.group"]
    assert "environmentVariables.HF_TOKEN" in group["sensitive"]
    assert group["after"]["environmentVariables"] == {"HF_TOKEN": "(sensitive)", "MODE": "chat"}
    text = session.run("plan", "hf.yaml").stdout
    assert "environmentVariables.HF_TOKEN" in text and "(sensitive)" in text
    refused = session.run("plan", "hf.yaml", "--out", "hf.plan", code=1)
    assert "it would contain a credential" in refused.stderr
    assert not Path("hf.plan").exists()
    session.assert_clean()
