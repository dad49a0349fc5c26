"""What the fault tests share: served emulators, generated stacks, and a reader of the platforms.

* :func:`serve` starts ``reconciler emulator serve`` (a subprocess on 127.0.0.1)
  with credentials for all three platforms plus whatever fault flags a test gives.
* :func:`stack_text` writes a stack file for all three platforms as plain data
  (no templates), sized by :class:`Shape`.
* :class:`Platforms` reads every object of every platform straight through the
  platforms' own APIs. The server injects its faults into these requests too,
  so each read is retried (a bounded number of times, briefly) on a transport
  error, 408, 429 or 5xx; only GETs and the ZStack login are sent.
* :func:`check_true_to_platform` is the invariant every test ends with: what
  the state records is exactly what is live, nothing twice, nothing unknown.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from click.testing import CliRunner

from reconciler.cli import cli as reconciler_cli
from reconciler.cli import main as reconciler_main
from reconciler.emulators.zstack_cloud import MODEL_CENTER_UUID, QWEN_MODEL_UUID, ZONE_1_UUID
from tests.cli.conftest import Served, start_emulator

MS_KEY = "ms-key-faults-5b1"
ZS_PASSWORD = "zs-pass-faults-8c3"
MU = "mu.llama3.8b"
RETRIED = frozenset({408, 429, 500, 502, 503, 504})
CLI_TIMEOUT = 150.0


# -- the served emulator ----------------------------------------------------------------


def serve(tmp: Path, *flags: str) -> Served:
    """A served emulator for every platform; its log is ``tmp/emulator.log``."""
    tmp.mkdir(parents=True, exist_ok=True)
    return start_emulator(tmp, "--modelstudio-key", MS_KEY, "--zstack-password", ZS_PASSWORD, *flags)


def stop(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait(timeout=10)


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def cli(cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = CLI_TIMEOUT) -> Run:
    """``reconciler ARGS`` in a subprocess (no crash point unless ``env`` sets one)."""
    full = {k: v for k, v in os.environ.items() if k != "RECONCILER_CRASH_AT"}
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={**full, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def _forked_cli(cwd: str, args: list[str], env: dict[str, str], out: str, err: str) -> None:
    """The body of a :class:`Forks` child: ``reconciler ARGS`` from ``cwd``, its output in files."""
    os.chdir(cwd)
    os.environ.pop("RECONCILER_CRASH_AT", None)
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdin = open(os.devnull)  # noqa: SIM115 (the process ends with the command)
    reconciler_main(args)  # exits


class Forks:
    """``reconciler ARGS`` in child processes forked from a server that has imported reconciler.

    Each command is still a process of its own (it can be SIGKILLed, and
    ``RECONCILER_CRASH_AT`` counts from zero in it), without the second of
    imports a fresh interpreter spends: for tests that run dozens of commands.
    """

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["reconciler.cli", "tests.faults.stacks"])
        self.runs = 0

    def __call__(
        self, cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> Run:
        self.runs += 1
        out, err = cwd / f".run{self.runs}.out", cwd / f".run{self.runs}.err"
        child = self.context.Process(
            target=_forked_cli, args=(str(cwd), list(args), dict(env or {}), str(out), str(err))
        )
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join(10)
            raise AssertionError(f"reconciler {' '.join(args)} did not finish within {timeout:g}s")
        texts = [path.read_text() if path.exists() else "" for path in (out, err)]
        return Run(child.exitcode, *texts)


def in_process(cwd: Path, *args: str) -> Run:
    """The same CLI as ``reconciler ARGS``, run in this process from ``cwd`` (no import cost)."""
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(reconciler_cli, list(args), catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


# -- stacks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How many resources of each kind a generated stack has (see :func:`resources`).

    Fabric: ``workspaces``, two endpoints and two models per workspace, two
    service instances per endpoint (each ``max: 2`` on an endpoint reserving
    ``mu`` max 4, so they fit together). Model Studio: ``deployments``.
    ZStack: ``services`` model services, each deployed by one instance group.
    ``doomed`` names the last object of each platform ``...-doomed`` (what
    ``--fail-provisioning '*-doomed'`` matches).
    """

    workspaces: int = 2
    deployments: int = 6
    services: int = 3
    doomed: bool = True

    @property
    def count(self) -> int:
        return self.workspaces * (1 + 2 + 2 + 4) + self.deployments + 2 * self.services


def providers(url: str, token: str) -> dict[str, Any]:
    """Blocks for all three platforms on one served emulator; calls retried 6 times, waits bounded."""
    knobs = {"timeout": 10, "max_retries": 6, "wait_timeout": 60, "poll_interval": 0.2}
    return {
        "fabric": {"url": url, "token": token, **knobs},
        "modelstudio": {"url": f"{url}/api/v1", "api_key": MS_KEY, **knobs},
        "zstack": {
            "url": url,
            "account": "admin",
            "password": ZS_PASSWORD,
            "zone_uuid": ZONE_1_UUID,
            **knobs,
        },
    }


def fabric_workspace(p: str, i: int) -> dict[str, Any]:
    return {"name": f"{p}-ws{i}", "description": "fault tests"}


def fabric_endpoint(p: str, i: int, workspace: str) -> dict[str, Any]:
    return {
        "workspace": workspace,
        "name": f"{p}-ep{i}",
        "type": "inference",
        "reserved_resource": {"mu": {"spec_code": MU, "min": 0, "max": 4}},
    }


def fabric_model(p: str, i: int, workspace: str) -> dict[str, Any]:
    config = {"llm_model_config": {"base_model_type": "llama3-8b", "model_path": f"obs://models/{p}/{i}"}}
    return {
        "workspace": workspace,
        "name": f"{p}-model{i}",
        "type": "LLM_MODEL",
        "version": {"name": "v1", "config": config},
    }


def fabric_instance(name: str, workspace: str, endpoint: str, model: str, *, mn: int = 1, mx: int = 2) -> Any:
    return {
        "platform": "fabric",
        "workspace": workspace,
        "endpoint": endpoint,
        "model": model,
        "name": name,
        "config": {"model_instance_config": {"resource": {"spec_code": MU, "min": mn, "max": mx}}},
    }


def ms_deployment(name: str, suffix: str, *, capacity: int = 4) -> dict[str, Any]:
    return {
        "platform": "modelstudio",
        "model_name": "qwen3-8b",
        "name": name,
        "plan": "mu",
        "deploy_spec": "MU1",
        "capacity": capacity,
        "billing_method": "POST_PAY",
        "suffix": suffix,
    }


def zs_service(name: str, *, cpu: int = 4) -> dict[str, Any]:
    return {
        "platform": "zstack",
        "name": name,
        "yaml": "image: registry.local/vllm:latest",
        "requestCpu": cpu,
        "requestMemory": 17179869184,
        "installPath": "/models/qwen",
        "startCommand": "python -m vllm.entrypoints.openai.api_server",
        "modelCenterUuid": MODEL_CENTER_UUID,
    }


def zs_group(name: str, service: str) -> dict[str, Any]:
    return {
        "platform": "zstack",
        "model_service": service,
        "name": name,
        "type": "Container",
        "zoneUuid": ZONE_1_UUID,
        "modelUuid": QWEN_MODEL_UUID,
        "cpuNum": 4,
        "memorySize": 17179869184,
    }


def one_of_each(p: str) -> dict[str, dict[str, Any]]:
    """The sections of a 7-resource stack, one of each kind of every platform; names start with ``p``
    (the Model Studio suffix is its first 8 characters, the most a suffix may hold)."""
    return {
        "workspaces": {"w": fabric_workspace(p, 0)},
        "endpoints": {"e": fabric_endpoint(p, 0, "w")},
        "models": {"m": fabric_model(p, 0, "w"), "svc": zs_service(f"{p}-svc")},
        "deployments": {
            "fi": fabric_instance(f"{p}-fi", "w", "e", "m"),
            "ms": ms_deployment(f"{p}-ms", p[:8]),
            "zg": zs_group(f"{p}-zg", "svc"),
        },
    }


def resources(p: str, shape: Shape) -> dict[str, dict[str, Any]]:
    """The sections of a generated stack; every name starts with ``p`` (unique per stack)."""
    sections: dict[str, dict[str, Any]] = {"workspaces": {}, "endpoints": {}, "models": {}, "deployments": {}}
    doom = "-doomed" if shape.doomed else ""
    instances = shape.workspaces * 4
    for w in range(shape.workspaces):
        sections["workspaces"][f"w{w}"] = fabric_workspace(p, w)
        for e in (2 * w, 2 * w + 1):
            sections["endpoints"][f"e{e}"] = fabric_endpoint(p, e, f"w{w}")
            sections["models"][f"m{e}"] = fabric_model(p, e, f"w{w}")
            for i in (2 * e, 2 * e + 1):
                name = f"{p}-fi{i}" + (doom if i == instances - 1 else "")
                sections["deployments"][f"fi{i}"] = fabric_instance(name, f"w{w}", f"e{e}", f"m{e}")
    for d in range(shape.deployments):
        name = f"{p}-ms{d}" + (doom if d == shape.deployments - 1 else "")
        sections["deployments"][f"ms{d}"] = ms_deployment(name, f"{p[:4]}{d}")
    for s in range(shape.services):
        sections["models"][f"zs{s}"] = zs_service(f"{p}-svc{s}")
        name = f"{p}-zg{s}" + (doom if s == shape.services - 1 else "")
        sections["deployments"][f"zg{s}"] = zs_group(name, f"zs{s}")
    return sections


def stack_text(name: str, served: Served, sections: Mapping[str, Mapping[str, Any]]) -> str:
    document: dict[str, Any] = {
        "stack": name,
        "providers": providers(served.url, served.token),
        "backend": {"local": {"path": f"state/{name}.json"}},
        **{section: dict(items) for section, items in sections.items() if items},
    }
    return yaml.safe_dump(document, sort_keys=False)


def write_stack(cwd: Path, name: str, served: Served, sections: Mapping[str, Mapping[str, Any]]) -> str:
    """Write ``cwd/<name>.yaml``; returns its file name (relative to ``cwd``)."""
    (cwd / f"{name}.yaml").write_text(stack_text(name, served, sections))
    return f"{name}.yaml"


def read_state(cwd: Path, name: str) -> dict[str, Any]:
    path = cwd / "state" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {"resources": {}, "journal": []}


# -- reading the platforms --------------------------------------------------------------


@dataclass(frozen=True)
class LiveObject:
    platform: str
    kind: str
    id: str
    name: str
    status: str | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)


class Platforms:
    """Every object of every platform, read through the platforms' own APIs, faults retried."""

    def __init__(self, served: Served, *, attempts: int = 12, pause: float = 0.05) -> None:
        self.url = served.url
        self.token = served.token
        self.attempts = attempts
        self.pause = pause

    def _get(self, client: httpx.Client, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._send(client, "GET", path, params=params)

    def _send(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
        last = ""
        for attempt in range(self.attempts):
            try:
                answer = client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if answer.status_code < 400:
                    return answer.json()
                last = f"HTTP {answer.status_code}: {answer.text[:300]}"
                if answer.status_code not in RETRIED:
                    break
            time.sleep(min(1.0, self.pause * 2**attempt))
        raise AssertionError(f"{method} {path}: no answer after {self.attempts} attempts ({last})")

    def fabric(self) -> list[LiveObject]:
        out: list[LiveObject] = []
        with httpx.Client(base_url=self.url, headers={"X-Auth-Token": self.token}, timeout=10) as c:
            workspaces = self._fabric_list(c, "/v1/workspaces", "workspaces")
            out += [_live("fabric", "workspace", o, "id") for o in workspaces]
            for ws in workspaces:
                base = f"/v1/workspaces/{ws['id']}"
                for kind, path, key in (
                    ("endpoint", "/endpoints", "endpoints"),
                    ("model", "/models", "models"),
                    ("service_instance", "/services/instances", "service_instances"),
                ):
                    out += [_live("fabric", kind, o, "id") for o in self._fabric_list(c, base + path, key)]
        return out

    def _fabric_list(self, c: httpx.Client, path: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for _ in range(100):  # pages of 100: far more than any test makes
            answer = self._get(c, path, {"offset": len(items), "limit": 100})
            page = answer[key]
            items += page
            if not page or len(items) >= int(answer["total"]):
                return items
        raise AssertionError(f"{path}: more pages than expected")

    def modelstudio(self) -> list[LiveObject]:
        headers = {"Authorization": f"Bearer {MS_KEY}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as c:
            output = self._get(c, "/api/v1/deployments", {"page_no": 1, "page_size": 200})["output"]
            assert output["total"] <= 200, output["total"]
            return [_live("modelstudio", "deployment", o, "deployed_model") for o in output["deployments"]]

    def zstack(self) -> list[LiveObject]:
        with httpx.Client(base_url=self.url + "/zstack/v1", timeout=10) as c:
            digest = hashlib.sha512(ZS_PASSWORD.encode()).hexdigest()
            body = {"logInByAccount": {"accountName": "admin", "password": digest}}
            session = self._send(c, "PUT", "/accounts/login", json=body)["inventory"]["uuid"]
            c.headers["Authorization"] = f"OAuth {session}"
            out: list[LiveObject] = []
            for kind, path in (
                ("model_service", "/ai/model-services"),
                ("model_service_instance_group", "/ai/model-services/instances/groups"),
            ):
                answer = self._get(c, path, {"limit": 1000, "replyWithCount": "true"})
                assert answer["total"] <= 1000, answer["total"]
                out += [_live("zstack", kind, o, "uuid") for o in answer["inventories"]]
            return out

    def objects(self) -> list[LiveObject]:
        return self.fabric() + self.modelstudio() + self.zstack()


def _live(platform: str, kind: str, obj: Mapping[str, Any], key: str) -> LiveObject:
    status = obj.get("status")
    name = obj.get("name")
    if platform == "modelstudio":  # seed 002 returns no name: <suffix>-<model> stands in for it
        deployed, model = str(obj["deployed_model"]), str(obj["model_name"])
        name = f"{deployed.removeprefix(model + '-').split('-', 1)[-1]}-{model}"
    return LiveObject(platform, kind, str(obj[key]), str(name), status, obj)


# -- the invariant ----------------------------------------------------------------------


def recorded(states: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(platform, id) -> address, over every state given (ids are unique per platform)."""
    out: dict[tuple[str, str], str] = {}
    for state in states:
        for address, rs in state["resources"].items():
            key = (rs["platform"], rs["id"])
            assert key not in out, f"{key} is recorded twice: {out[key]} and {address}"
            out[key] = address
    return out


def check_true_to_platform(live: Iterable[LiveObject], states: Iterable[Mapping[str, Any]]) -> None:
    """The state records exactly what is live: the same ids, nothing twice, nothing unknown."""
    objects = list(live)
    known = recorded(states)
    present = {(o.platform, o.id) for o in objects}
    missing = sorted(
        f"{address} ({platform} {id})"
        for (platform, id), address in known.items()
        if (platform, id) not in present
    )
    untracked = sorted(
        f"{o.platform} {o.kind} {o.name} ({o.id}, {o.status})"
        for o in objects
        if (o.platform, o.id) not in known
    )
    names = Counter((o.platform, o.kind, o.name) for o in objects)
    twice = sorted(f"{p} {k} {n!r} x{c}" for (p, k, n), c in names.items() if c > 1)
    assert not missing, f"recorded but not live: {missing}"
    assert not untracked, f"live but not recorded: {untracked}"
    assert not twice, f"duplicated names: {twice}"
