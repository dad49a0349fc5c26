"""The preflight of a plan: one cheap authenticated call per platform, even with an empty state.

Wrong credentials are refused by a served emulator (an embedded one takes the
stack's credentials as its own, so it cannot refuse them) in the platform's
own words; an unreachable URL is named with the OS error after at most three
attempts, with timeouts that bound the whole check under 10 seconds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from reconciler import preflight as pf
from reconciler.cli import cli
from reconciler.errors import ProviderError, TransportError
from reconciler.providers import build_provider
from reconciler.providers.fabric import FabricProvider
from reconciler.providers.http import ApiClient
from tests.cli.conftest import Served, start_emulator

FABRIC_TOKEN = "fabTOKEN-pre-7731"
FABRIC_AK = "AKIDpre00001"
FABRIC_SK = "SKpre-9d2a6b"
MS_KEY = "sk-ms-pre-4410"
ZS_PASSWORD = "zsPASS-pre-0058"
WRONG = "wrong-SECRET-5ecr3t"

FABRIC = 'fabric: {{url: "{url}", {creds}}}'
MODELSTUDIO = 'modelstudio: {{url: "{url}/api/v1", api_key: "{{{{ env.SECRET }}}}"}}'
ZSTACK = 'zstack: {{url: "{url}", account: admin, password: "{{{{ env.SECRET }}}}"}}'
RESOURCES = {
    "fabric": "workspaces:\n  main: {name: preflight-ws}\n",
    "modelstudio": (
        "deployments:\n  qwen: {platform: modelstudio, model_name: qwen3-8b, name: pre, plan: mu, "
        "deploy_spec: MU1, capacity: 2, suffix: pre01}\n"
    ),
    "zstack": (
        "models:\n  svc:\n    platform: zstack\n    name: pre-service\n"
        '    yaml: "image: registry.local/vllm:latest"\n    requestCpu: 4\n'
        "    requestMemory: 17179869184\n    installPath: /models/qwen\n"
        "    startCommand: python -m vllm.entrypoints.openai.api_server\n"
        "    modelCenterUuid: 5e2d9c0f7a8b4c3d9e1f0a2b3c4d5e6f\n"
    ),
}


def stack_text(name: str, platform: str, provider: str) -> str:
    return (
        f"stack: {name}\nproviders:\n  {provider}\n"
        f"backend: {{local: {{path: state/{name}.json}}}}\n{RESOURCES[platform]}"
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed when the block ends: nothing listens there


def invoke(*args: str, secret: str = WRONG) -> Result:
    return CliRunner().invoke(cli, list(args), env={"SECRET": secret})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("preflight")
    server = start_emulator(
        home,
        "--fabric-token", FABRIC_TOKEN,
        "--fabric-ak", FABRIC_AK,
        "--fabric-sk", FABRIC_SK,
        "--modelstudio-key", MS_KEY,
        "--zstack-password", ZS_PASSWORD,
        "--data", str(home / "emulator-data.json"),
    )  # fmt: skip
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()


@pytest.mark.parametrize(
    ("platform", "provider", "message"),
    [
        (
            "fabric",
            FABRIC.format(url="{url}", creds='token: "{{ env.SECRET }}"'),
            "fabric: the token was refused (401 APIG.1002): Incorrect token or token resolution failed",
        ),
        (
            "fabric",
            FABRIC.format(url="{url}", creds=f'ak: {FABRIC_AK}, sk: "{{{{ env.SECRET }}}}"'),
            "fabric: the AK/SK signature was refused (401 APIG.0301): Incorrect IAM authentication "
            "information: verify aksk signature fail",
        ),
        (
            "modelstudio",
            MODELSTUDIO.format(url="{url}"),
            "modelstudio: the API key was refused (401 InvalidApiKey): Invalid API-key provided.",
        ),
        (
            "zstack",
            ZSTACK.format(url="{url}"),
            "zstack: the account and password were refused (503 ID.1000): Authentication error: "
            "wrong account name or password",
        ),
    ],
    ids=["fabric-token", "fabric-aksk", "modelstudio", "zstack"],
)
def test_wrong_credentials_fail_the_plan_of_an_empty_state(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    platform: str,
    provider: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text(stack_text("pre", platform, provider.replace("{url}", served.url)))
    for command in (("plan", "s.yaml"), ("-vvv", "plan", "s.yaml"), ("apply", "s.yaml", "--auto-approve")):
        result = invoke(*command)
        assert result.exit_code == 1, (command, result.output)
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert WRONG not in result.stdout + result.stderr
        assert "5ecr3t" not in result.stdout + result.stderr
    assert not Path("state/pre.json").exists()  # nothing recorded: the state is still empty


def test_right_credentials_still_plan(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    providers = {
        "fabric": (FABRIC.format(url=served.url, creds='token: "{{ env.SECRET }}"'), FABRIC_TOKEN),
        "modelstudio": (MODELSTUDIO.format(url=served.url), MS_KEY),
        "zstack": (ZSTACK.format(url=served.url), ZS_PASSWORD),
    }
    for platform, (provider, secret) in providers.items():
        Path(f"{platform}.yaml").write_text(stack_text(f"ok-{platform}", platform, provider))
        result = invoke("plan", f"{platform}.yaml", secret=secret)
        assert result.exit_code == 0, result.output
        assert "Plan: 1 to create" in result.stdout


def test_an_embedded_stack_on_three_platforms_still_plans(tmp_path: Path) -> None:
    stack = Path(__file__).resolve().parents[2] / "stacks" / "mixed.yaml"
    (tmp_path / "mixed.yaml").write_text(stack.read_text())
    result = CliRunner().invoke(cli, ["plan", str(tmp_path / "mixed.yaml")])
    assert result.exit_code == 0, result.output
    assert "Plan: 7 to create" in result.stdout


@pytest.mark.parametrize("platform", ["fabric", "modelstudio", "zstack"])
def test_an_unreachable_url_is_named_after_at_most_three_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{closed_port()}"
    provider = {
        "fabric": FABRIC.format(url=url, creds='token: "{{ env.SECRET }}"'),
        "modelstudio": MODELSTUDIO.format(url=url),
        "zstack": ZSTACK.format(url=url),
    }[platform]
    Path("s.yaml").write_text(stack_text("gone", platform, provider))
    result = invoke("-v", "plan", "s.yaml")
    assert result.exit_code == 1, result.output
    assert f"Error: {platform}: cannot reach {url}/" in result.stderr
    assert ": Connection refused" in result.stderr
    # -v shows the retries: the first call, then attempts 2 and 3 of 3, no more
    assert "attempt 2 of 3" in result.stderr and "attempt 3 of 3" in result.stderr
    assert "attempt 4" not in result.stderr
    assert WRONG not in result.stdout + result.stderr


def test_validate_makes_no_preflight_call(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    stack = tmp_path / "s.yaml"
    stack.write_text(stack_text("v", "fabric", FABRIC.format(url=url, creds="token: t")))
    result = CliRunner().invoke(cli, ["validate", str(stack)])
    assert result.exit_code == 0, result.output


def _fabric(transport: httpx.MockTransport, block: dict[str, object] | None = None) -> FabricProvider:
    provider = build_provider(
        "fabric", {"url": "http://fabric.test", "token": "t0k3n", **(block or {})}, state_dir=Path(".")
    )
    assert isinstance(provider, FabricProvider)
    provider.control.http._transport = transport  # every call goes to the fake
    return provider


def test_an_unreachable_platform_is_called_three_times_at_most() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    provider = _fabric(httpx.MockTransport(refuse))
    with pytest.raises(TransportError) as failed:
        asyncio.run(pf.preflight({"fabric": provider}))
    assert len(calls) == pf.ATTEMPTS == 3
    assert str(calls[0].url) == "http://fabric.test/v1/workspaces?offset=0&limit=1"
    assert str(failed.value).startswith(
        "fabric: cannot reach http://fabric.test/v1/workspaces?offset=0&limit=1: "
    )
    assert provider.control.retry.max_attempts == 5  # ordinary calls keep the long schedule
    # a block asking for fewer retries gets fewer
    calls.clear()
    with pytest.raises(TransportError):
        asyncio.run(pf.preflight({"fabric": _fabric(httpx.MockTransport(refuse), {"max_retries": 0})}))
    assert len(calls) == 1


def test_a_refusal_is_not_retried_and_shows_the_platform_answer() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {"error_code": "APIG.1002", "error_msg": "Incorrect token or token resolution failed"}
        return httpx.Response(401, json=body)

    with pytest.raises(ProviderError) as refused:
        asyncio.run(pf.preflight({"fabric": _fabric(httpx.MockTransport(refuse))}))
    assert len(calls) == 1
    assert str(refused.value) == (
        "fabric: the token was refused (401 APIG.1002): Incorrect token or token resolution failed"
    )
    assert (refused.value.status, refused.value.code) == (401, "APIG.1002")
    assert "t0k3n" not in str(refused.value)


def test_the_preflight_is_bounded_under_ten_seconds_by_construction() -> None:
    # every attempt timing out and every backoff at its ceiling still ends within 10 s,
    # and a hard deadline cuts any one platform's check (a ZStack login and its query) at DEADLINE
    assert pf.worst_case_seconds() <= 10
    assert pf.worst_case_seconds() == pf.ATTEMPTS * pf.ATTEMPT_TIMEOUT + pf.BACKOFF_BASE + pf.BACKOFF_CAP
    assert pf.DEADLINE <= 10
    client = ApiClient(httpx.AsyncClient(), platform="fabric", timeout=30.0)
    limited = pf.limited(client, pf.ATTEMPTS, pf.ATTEMPT_TIMEOUT)
    assert (limited.retry.max_attempts, limited.timeout) == (3, pf.ATTEMPT_TIMEOUT)
    assert (limited.retry.base, limited.retry.cap) == (pf.BACKOFF_BASE, pf.BACKOFF_CAP)
    assert (client.retry.max_attempts, client.timeout) == (5, 30.0)  # the original is untouched
    assert limited.http is client.http
    assert logging.getLogger("reconciler.providers.http").name  # retries are logged there (-v)
