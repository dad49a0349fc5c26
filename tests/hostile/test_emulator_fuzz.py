"""The emulators under fuzzing: each publishes an OpenAPI document; schemathesis finds nothing against it.

One served emulator (a real ``reconciler emulator serve`` subprocess). For each
platform, schemathesis (its CLI, in a subprocess, with bounded examples and a
fixed seed) generates valid and invalid requests from the document and
checks every answer: its status is documented (no 500 is, on any platform),
its content type and body match the document, and, for Fabric and Model
Studio, it is no 5xx at all. ZStack answers ordinary failures of synchronous
APIs with 503 and its ``{"error"}`` envelope (the documented platform
behaviour), so there ``not_a_server_error`` is replaced by the document's own
status list. Then, by hand: malformed JSON, a body over the 1 MiB limit and
wrong content types get each platform's 400 envelope, and the documents list
exactly the routes the emulators serve.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.emulators import fabric, modelstudio, zstack
from reconciler.emulators.envelope import MAX_BODY_BYTES
from reconciler.emulators.openapi import PLATFORMS, document
from tests.cli.conftest import Served, start_emulator

MS_KEY = "fuzz-key-1234"
ZS_PASSWORD = "fuzz-pass-1234"
CHECKS = "status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("fuzz")
    server = start_emulator(home, "--modelstudio-key", MS_KEY, "--zstack-password", ZS_PASSWORD)
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()


def session(url: str) -> str:
    body = {
        "logInByAccount": {
            "accountName": "admin",
            "password": hashlib.sha512(ZS_PASSWORD.encode()).hexdigest(),
        }
    }
    return str(
        httpx.put(f"{url}/zstack/v1/accounts/login", json=body, timeout=10).json()["inventory"]["uuid"]
    )


def auth(platform: str, served: Served) -> dict[str, str]:
    if platform == "fabric":
        return {"X-Auth-Token": served.token}
    if platform == "modelstudio":
        return {"Authorization": f"Bearer {MS_KEY}"}
    return {"Authorization": f"OAuth {session(served.url)}"}


def _schemathesis() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
        "schemathesis"
    )
    if found is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[test]'")
    return [found]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_schemathesis_finds_nothing(platform: str, served: Served, tmp_path: Path) -> None:
    (name, value), *_ = auth(platform, served).items()
    checks = CHECKS if platform == "zstack" else f"not_a_server_error,{CHECKS}"
    command = [
        *_schemathesis(),
        "run",
        f"{served.url}/_emulator/openapi/{platform}.json",
        "--header",
        f"{name}: {value}",
        "--checks",
        checks,
        "--phases",
        "coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20261124",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--warnings",
        "off",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    assert served.process.poll() is None, "the emulator died under fuzzing"


def test_documents_list_exactly_the_routes_served(served: Served) -> None:
    served_routes = {
        "fabric": {(path, method) for path, method, _ in fabric.ROUTES},
        "modelstudio": {(path, method) for path, method, _ in modelstudio.ROUTES},
        "zstack": {(zstack.PREFIX + path, method) for path, method, _ in zstack.ROUTES}
        | {(zstack.PREFIX + "/api-jobs/{uuid}", "GET")},
    }
    for platform in PLATFORMS:
        published = httpx.get(f"{served.url}/_emulator/openapi/{platform}.json", timeout=10).json()
        assert published == document(platform, served.url + "/")
        documented = {(path, method.upper()) for path, ops in published["paths"].items() for method in ops}
        assert documented == served_routes[platform], platform
        for path, ops in published["paths"].items():
            for operation in ops.values():
                assert "500" not in operation["responses"], (platform, path)
    assert httpx.get(f"{served.url}/_emulator/openapi/nope.json", timeout=10).status_code == 404


# -- bodies nobody should send ---------------------------------------------------------------------

BAD_BODIES = {
    "malformed JSON": ({"Content-Type": "application/json"}, b'{"name": "x",'),
    "nested too deeply": ({"Content-Type": "application/json"}, b"[" * 100_000 + b"]" * 100_000),
    "over the limit": (
        {"Content-Type": "application/json"},
        b'{"name": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}',
    ),
    "plain text": ({"Content-Type": "text/plain"}, b'{"name": "x"}'),
    "a form": ({"Content-Type": "application/x-www-form-urlencoded"}, b"name=x"),
    "XML": ({"Content-Type": "application/xml"}, b"<name>x</name>"),
    "not UTF-8": ({"Content-Type": "application/json"}, b'{"name": "\xff\xfe"}'),
}
TARGETS = {
    "fabric": ("POST", "/v1/workspaces"),
    "modelstudio": ("POST", "/api/v1/deployments"),
    "zstack": ("POST", "/zstack/v1/ai/model-services"),
}


def _envelope(platform: str, answer: httpx.Response) -> str:
    body = answer.json()
    if platform == "fabric":
        assert set(body) >= {"error_code", "error_msg", "solution_msg"}
        return str(body["error_code"])
    if platform == "modelstudio":
        assert set(body) >= {"request_id", "code", "message"}
        return str(body["code"])
    assert set(body["error"]) >= {"code", "description", "details"}
    return str(body["error"]["code"])


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_bodies_get_the_platforms_400(platform: str, case: str, served: Served) -> None:
    headers, content = BAD_BODIES[case]
    method, path = TARGETS[platform]
    answer = httpx.request(
        method, served.url + path, content=content, headers={**auth(platform, served), **headers}, timeout=30
    )
    assert answer.status_code == 400, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/json")
    code = _envelope(platform, answer)
    assert (
        code
        == {"fabric": "common.01000001", "modelstudio": "InvalidParameter", "zstack": "SYS.1007"}[platform]
    )


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_huge_body_without_a_length_is_refused_unread(platform: str, served: Served) -> None:
    """Chunked (no Content-Length): the emulator stops reading at the limit and answers 400."""
    method, path = TARGETS[platform]

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(64):  # 64 MiB offered; the answer comes after at most 1 MiB read
            yield b"x" * (1024 * 1024)
        yield b'"}'

    headers = {**auth(platform, served), "Content-Type": "application/json"}
    try:
        answer = httpx.request(method, served.url + path, content=chunks(), headers=headers, timeout=30)
    except httpx.TransportError:  # the server answered and closed before taking it all: also a refusal
        return
    assert answer.status_code == 400
    _envelope(platform, answer)
