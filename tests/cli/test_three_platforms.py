"""One stack on all three platforms, end to end through real subprocesses and a served emulator."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import httpx

from tests.cli.conftest import Served, run_cli, start_emulator

STACK = Path(__file__).resolve().parents[2] / "stacks" / "mixed.yaml"
MS_KEY = "ms-key-e2e-91c"
ZS_PASSWORD = "zs-pass-e2e-4d2"


def served_stack(tmp: Path, served: Served) -> Path:
    text = STACK.read_text()
    text = (
        text.replace("fabric: {url: embedded,", f'fabric: {{url: "{served.url}",')
        .replace("modelstudio: {url: embedded,", f'modelstudio: {{url: "{served.url}/api/v1",')
        .replace("zstack: {url: embedded,", f'zstack: {{url: "{served.url}",')
    )
    path = tmp / "mixed.yaml"
    path.write_text(text)
    return path


def zstack_session(url: str) -> str:
    digest = hashlib.sha512(ZS_PASSWORD.encode()).hexdigest()
    body = {"logInByAccount": {"accountName": "admin", "password": digest}}
    answer = httpx.put(f"{url}/zstack/v1/accounts/login", json=body, timeout=10)
    return str(answer.json()["inventory"]["uuid"])


def test_mixed_stack_plans_applies_detects_drift_on_each_platform_and_destroys(tmp_path: Path) -> None:
    served = start_emulator(tmp_path, "--modelstudio-key", MS_KEY, "--zstack-password", ZS_PASSWORD)
    try:
        served_stack(tmp_path, served)
        env = {"FABRIC_TOKEN": served.token, "DASHSCOPE_API_KEY": MS_KEY, "ZSTACK_PASSWORD": ZS_PASSWORD}

        applied = run_cli(tmp_path, "apply", "mixed.yaml", "--auto-approve", env=env)
        assert applied.code == 0, applied.out + applied.err
        assert "Apply complete! Resources: 7 created" in applied.out
        assert run_cli(tmp_path, "plan", "mixed.yaml", "--detailed-exitcode", env=env).code == 0

        outputs = json.loads(run_cli(tmp_path, "output", "mixed.yaml", "--json", env=env).out)
        state = json.loads(run_cli(tmp_path, "state", "show", "mixed.yaml", env=env).out)
        ws_id = state["resources"]["workspaces.main"]["id"]
        service_uuid = state["resources"]["models.qwen-svc"]["id"]

        # out of band, one change per platform, through each platform's own API
        with served.client() as fabric:
            assert (
                fabric.put(f"/v1/workspaces/{ws_id}", json={"description": "console edit"}).status_code == 200
            )
        ms = httpx.put(
            f"{served.url}/api/v1/deployments/{outputs['qwen32b_model']}/scale",
            json={"deployed_model": outputs["qwen32b_model"], "capacity": 8},
            headers={"Authorization": f"Bearer {MS_KEY}"},
            timeout=10,
        )
        assert ms.status_code == 200, ms.text
        zs = httpx.put(
            f"{served.url}/zstack/v1/ai/model-services/{service_uuid}",
            json={"updateModelService": {"requestCpu": 8}},
            headers={"Authorization": f"OAuth {zstack_session(served.url)}"},
            timeout=10,
        )
        assert zs.status_code == 200, zs.text

        drift = run_cli(tmp_path, "plan", "mixed.yaml", "--detailed-exitcode", env=env)
        assert drift.code == 2, drift.err
        assert '~ description: "console edit" -> "inference workspace"' in drift.out
        assert "~ capacity: 8 -> 4" in drift.out
        assert "~ models.qwen-svc (zstack model_service)" in drift.out
        assert "~ requestCpu: 8 -> 4" in drift.out
        assert "Plan: 0 to create, 3 to update, 0 to replace, 0 to delete." in drift.out

        restored = run_cli(tmp_path, "apply", "mixed.yaml", "--auto-approve", env=env)
        assert restored.code == 0, restored.err
        assert run_cli(tmp_path, "plan", "mixed.yaml", "--detailed-exitcode", env=env).code == 0

        destroyed = run_cli(tmp_path, "destroy", "mixed.yaml", "--auto-approve", env=env)
        assert destroyed.code == 0, destroyed.err
        with served.client() as fabric:
            assert fabric.get("/v1/workspaces").json()["total"] == 0
        listed = httpx.get(
            f"{served.url}/api/v1/deployments", headers={"Authorization": f"Bearer {MS_KEY}"}, timeout=10
        ).json()
        assert listed["output"]["total"] == 0
        session = zstack_session(served.url)
        for path in ("/zstack/v1/ai/model-services", "/zstack/v1/ai/model-services/instances/groups"):
            answer = httpx.get(
                f"{served.url}{path}",
                params={"replyWithCount": "true"},
                headers={"Authorization": f"OAuth {session}"},
                timeout=10,
            ).json()
            assert answer["total"] == 0, (path, answer)

        # the secrets never reached state, plans or output
        everything = applied.out + applied.err + drift.out + restored.out + destroyed.out
        files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
        for secret in (MS_KEY, ZS_PASSWORD, served.token, hashlib.sha512(ZS_PASSWORD.encode()).hexdigest()):
            assert secret not in everything
            for f in files:
                # history versions are gzip-compressed copies of past states: read them uncompressed
                text = gzip.decompress(f.read_bytes()).decode() if f.suffix == ".gz" else f.read_text()
                assert secret not in text, f
    finally:
        served.process.terminate()
        served.process.wait(timeout=10)
