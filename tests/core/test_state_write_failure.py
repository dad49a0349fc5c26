"""A state write failing mid-apply: no new step, no rollback, the work done kept beside the stack; exit 3."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

import pytest

from reconciler import operations
from reconciler.errors import StateWriteFailed
from reconciler.state.document import StateDoc
from tests.fakes import FakeProvider, MemoryBackend, res, stack_of


class DiskFills(MemoryBackend):
    """Takes ``room`` writes, then fails every one as a full disk does."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room

    def write(self, doc: Any) -> None:
        if len(self.writes) >= self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write(doc)


def test_a_failed_state_write_stops_the_apply_and_keeps_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    p, b = FakeProvider(), DiskFills(room=2)  # the first step's intent and result, then nothing
    stack = stack_of(
        res("workspaces.w", {"name": "w"}),
        res("endpoints.e", {"name": "e"}, refs={"workspace": "workspaces.w"}),
        res("deployments.d", {"name": "d"}, refs={"endpoint": "endpoints.e"}),
    )

    async def go() -> operations.ApplyOutcome:
        plan, _, _ = await operations.plan_async(stack, b, {"fake": p})  # type: ignore[arg-type]
        return await operations.apply_async(plan, stack, b, {"fake": p}, parallelism=1)  # type: ignore[arg-type]

    with pytest.raises(StateWriteFailed) as raised:
        asyncio.run(go())
    err = raised.value
    assert err.exit_code == 3
    message = str(err)
    assert "the state could not be written to memory: [Errno 28] No space left on device" in message
    assert "reconciler state push t.yaml t.state-fallback.json" in message
    # no rollback (it could not be recorded either), and no step after the failure
    assert sorted(o["name"] for o in p.objects.values()) == ["w"]
    assert [op for op, _ in p.calls if op in ("create", "delete")] == ["create"]
    fallback = StateDoc.from_json((tmp_path / "t.state-fallback.json").read_text(), "fallback")
    assert {rs.id for rs in fallback.resources.values()} == set(p.objects)
    assert fallback.serial > b.read().serial
    assert oct((tmp_path / "t.state-fallback.json").stat().st_mode & 0o777) == "0o600"
