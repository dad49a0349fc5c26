"""Stacks of N resources across the three platforms, in the ratios a platform team reaches.

Of N resources: 60 % DataArts Fabric (workspaces : endpoints : models :
deployments = 1 per 1,000 resources, then 1 : 2 : 4 of the rest), 25 % Model
Studio deployments, 15 % ZStack (model services : instance groups = 1 : 2).
Every stack passes the stack validator: each Fabric endpoint reserves exactly
the ``mu`` its deployments can scale to, names and Model Studio suffixes are
unique, ZStack groups name a zone and a model the emulator knows.

The text is YAML in flow style (one JSON object per resource), written fast
and read back by the ordinary loader.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

SPEC_CODE = "mu.llama3.8b"
ZONE_UUID = "8f3c1a2b4d5e4f60a7b8c9d0e1f2a3b4"
MODEL_UUID = "1b7e4f9a2c3d4e5f8a9b0c1d2e3f4a5b"
MODEL_CENTER_UUID = "5e2d9c0f7a8b4c3d9e1f0a2b3c4d5e6f"
GIB = 1024**3


@dataclass(frozen=True)
class Mix:
    """How many resources of each kind a stack of ``total`` holds."""

    workspaces: int
    endpoints: int
    models: int
    instances: int
    ms_deployments: int
    zs_services: int
    zs_groups: int

    @property
    def total(self) -> int:
        return (
            self.workspaces
            + self.endpoints
            + self.models
            + self.instances
            + self.ms_deployments
            + self.zs_services
            + self.zs_groups
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "fabric.workspace": self.workspaces,
            "fabric.endpoint": self.endpoints,
            "fabric.model": self.models,
            "fabric.service_instance": self.instances,
            "modelstudio.deployment": self.ms_deployments,
            "zstack.model_service": self.zs_services,
            "zstack.model_service_instance_group": self.zs_groups,
        }


def mix(n: int) -> Mix:
    """The realistic mix of ``n`` resources (n >= 10)."""
    if n < 10:
        raise ValueError("a generated stack has at least 10 resources")
    ms = n * 25 // 100
    zs = n * 15 // 100
    services = max(1, zs // 3)
    groups = zs - services
    fabric = n - ms - zs
    workspaces = max(1, math.ceil(n / 1000))
    rest = fabric - workspaces
    endpoints = max(workspaces, round(rest / 7))
    models = max(workspaces, round(2 * rest / 7))
    instances = rest - endpoints - models
    return Mix(workspaces, endpoints, models, instances, ms, services, groups)


def providers_block(url: str, *, rate: float, in_flight: int, poll_interval: float) -> dict[str, Any]:
    """Provider blocks for a served emulator at ``url`` (its default credentials)."""
    knobs = {"max_requests_per_second": rate, "max_in_flight": in_flight, "poll_interval": poll_interval}
    return {
        "fabric": {"url": url, "token": "emulator-token", **knobs},
        "modelstudio": {"url": f"{url}/api/v1", "api_key": "emulator-key", **knobs},
        "zstack": {"url": url, "account": "admin", "password": "password", **knobs},
    }


def resources(m: Mix) -> dict[str, dict[str, Any]]:
    """The four sections of a stack holding the resources of ``m``."""
    workspaces: dict[str, Any] = {}
    endpoints: dict[str, Any] = {}
    models: dict[str, Any] = {}
    deployments: dict[str, Any] = {}
    for w in range(m.workspaces):
        workspaces[f"w{w}"] = {"name": f"bench-ws-{w}", "description": "benchmark workspace"}
    load: dict[int, int] = {}
    for i in range(m.instances):
        load[i % m.endpoints] = load.get(i % m.endpoints, 0) + 1
    for e in range(m.endpoints):
        endpoints[f"e{e}"] = {
            "workspace": f"w{e % m.workspaces}",
            "name": f"bench-ep-{e}",
            "type": "inference",
            "reserved_resource": {"mu": {"spec_code": SPEC_CODE, "min": 0, "max": max(1, load.get(e, 0))}},
        }
    for k in range(m.models):
        models[f"m{k}"] = {
            "workspace": f"w{k % m.workspaces}",
            "name": f"bench-model-{k}",
            "type": "LLM_MODEL",
            "version": {
                "name": "v1",
                "config": {
                    "llm_model_config": {"base_model_type": "llama3-8b", "model_path": f"obs://m/{k}"}
                },
            },
        }
    for i in range(m.instances):
        e = i % m.endpoints
        w = e % m.workspaces
        # a model of the same workspace as the endpoint
        per_ws = [k for k in range(w, m.models, m.workspaces)]
        k = per_ws[i % len(per_ws)]
        deployments[f"d{i}"] = {
            "platform": "fabric",
            "workspace": f"w{w}",
            "endpoint": f"e{e}",
            "model": f"m{k}",
            "name": f"bench-si-{i}",
            "config": {"model_instance_config": {"resource": {"spec_code": SPEC_CODE, "min": 1, "max": 1}}},
        }
    deployments.update(ms_deployments(m.ms_deployments))
    for s in range(m.zs_services):
        models[f"s{s}"] = {
            "platform": "zstack",
            "name": f"bench-svc-{s}",
            "yaml": "image: registry.local/vllm:latest",
            "requestCpu": 4,
            "requestMemory": 16 * GIB,
            "installPath": f"/models/bench-{s}",
            "startCommand": "python -m vllm.entrypoints.openai.api_server",
            "modelCenterUuid": MODEL_CENTER_UUID,
        }
    for g in range(m.zs_groups):
        deployments[f"z{g}"] = {
            "platform": "zstack",
            "model_service": f"s{g % m.zs_services}",
            "name": f"bench-group-{g}",
            "type": "Container",
            "zoneUuid": ZONE_UUID,
            "modelUuid": MODEL_UUID,
            "cpuNum": 4,
            "memorySize": 16 * GIB,
        }
    return {"workspaces": workspaces, "endpoints": endpoints, "models": models, "deployments": deployments}


def ms_deployments(count: int, *, prefix: str = "q") -> dict[str, Any]:
    """``count`` independent Model Studio deployments (plan mu, unique suffixes)."""
    return {
        f"{prefix}{i}": {
            "platform": "modelstudio",
            "model_name": "qwen3-8b",
            "name": f"bench-{prefix}-{i}",
            "plan": "mu",
            "deploy_spec": "MU1",
            "capacity": 4,
            "billing_method": "POST_PAY",
            "suffix": f"{prefix}{i:x}"[:8],
        }
        for i in range(count)
    }


def stack_text(
    name: str,
    sections: dict[str, dict[str, Any]],
    providers: dict[str, Any],
    state_path: str,
) -> str:
    """A stack file (flow-style YAML: one JSON object per line) with these sections."""
    lines = [
        f"stack: {name}",
        f"providers: {json.dumps(providers)}",
        f"backend: {json.dumps({'local': {'path': state_path}})}",
    ]
    for section in ("workspaces", "endpoints", "models", "deployments"):
        body = sections.get(section) or {}
        if not body:
            continue
        lines.append(f"{section}:")
        lines.extend(f"  {key}: {json.dumps(value)}" for key, value in body.items())
    return "\n".join(lines) + "\n"
