"""A fake provider for pure planner and applier tests: in memory, records every call."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from reconciler.errors import ProviderError
from reconciler.providers import base
from reconciler.providers.base import UNKNOWN, KindSpec, Live, Phase, RefValue, Until
from reconciler.stack.spec import Lifecycle, ResourceSpec, Stack


class FakeProvider:
    """Platform "fake": kind "thing", whose ``zone`` forces replacement; refs become ``<field>_id``."""

    platform = "fake"
    lifecycle = base.Lifecycle(
        "fake",
        {
            "CREATING": Phase.IN_PROGRESS,
            "RUNNING": Phase.READY,
            "CREATE_FAILED": Phase.FAILED,
            "DELETING": Phase.DELETING,
            "DELETED": Phase.GONE,
        },
    )
    kinds = {
        "thing": KindSpec(
            name="thing", force_new=frozenset({"zone"}), read_only=frozenset({"id"}), lifecycle=lifecycle
        ),
        "slow": KindSpec(name="slow", asynchronous=True, lifecycle=lifecycle),
    }

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_on: set[tuple[str, str]] = set()  # (op, name)
        self.lose_on: set[tuple[str, str]] = set()  # (op, name): done, then the answer is lost once
        self.drop_on: set[tuple[str, str]] = set()  # (op, name): lost once on the way, never done
        self._n = 0

    def desired(self, kind: str, attrs: Mapping[str, Any], refs: Mapping[str, RefValue]) -> dict[str, Any]:
        out = dict(attrs)
        for field, ref in refs.items():
            out[f"{field}_id"] = ref.id
        return out

    def scope_of(self, kind: str, attributes: Mapping[str, Any]) -> dict[str, str]:
        return {}

    def _live(self, oid: str) -> Live:
        obj = self.objects[oid]
        return Live(id=oid, attributes=dict(obj), status="RUNNING", name=obj.get("name"))

    def _check(self, op: str, name: str | None) -> None:
        self.calls.append((op, name or ""))
        if (op, name or "") in self.fail_on:
            raise ProviderError(
                "fake", f"{op} of {name} refused", code="Fake.Refused", status=400, operation=op
            )

    async def list(self, kind: str, scope: Mapping[str, str]) -> list[Live]:
        self.calls.append(("list", kind))
        return [self._live(i) for i, o in self.objects.items() if o["_kind"] == kind]

    async def read(self, kind: str, id: str, scope: Mapping[str, str]) -> Live | None:
        self.calls.append(("read", id))
        return self._live(id) if id in self.objects else None

    async def find(
        self, kind: str, name: str, scope: Mapping[str, str], *, token: str | None = None
    ) -> Live | None:
        for i, o in self.objects.items():
            if o.get("name") == name and o["_kind"] == kind:
                return self._live(i)
        return None

    async def create(self, kind: str, desired: Mapping[str, Any], *, token: str | None = None) -> Live:
        assert all(v is not UNKNOWN for v in desired.values())
        self._check("create", desired.get("name"))
        await asyncio.sleep(0)
        self._n += 1
        oid = f"id-{self._n}"
        self.objects[oid] = {**desired, "_kind": kind}
        if ("create", desired.get("name") or "") in self.lose_on:
            self.lose_on.discard(("create", desired.get("name") or ""))
            raise ProviderError("fake", "connection reset", code="lost", retryable=True, operation="create")
        return self._live(oid)

    async def update(self, kind: str, live: Live, desired: Mapping[str, Any]) -> Live:
        self._check("update", desired.get("name"))
        key = ("update", desired.get("name") or "")
        if key in self.drop_on:
            self.drop_on.discard(key)
            raise ProviderError("fake", "connection reset", code="lost", retryable=True, operation="update")
        self.objects[live.id].update(desired)
        if key in self.lose_on:
            self.lose_on.discard(key)
            raise ProviderError("fake", "connection reset", code="lost", retryable=True, operation="update")
        return self._live(live.id)

    async def delete(self, kind: str, id: str, scope: Mapping[str, str]) -> None:
        self._check("delete", self.objects.get(id, {}).get("name"))
        self.objects.pop(id, None)

    async def wait(
        self, kind: str, id: str, scope: Mapping[str, str], until: Until, timeout: float
    ) -> Live | None:
        return self._live(id) if until == "ready" else None

    async def aclose(self) -> None:
        return None


def res(
    address: str,
    attrs: Mapping[str, Any],
    *,
    refs: Mapping[str, str] | None = None,
    kind: str = "thing",
    lifecycle: Lifecycle | None = None,
) -> ResourceSpec:
    section, key = address.split(".")
    refs = dict(refs or {})
    return ResourceSpec(
        address=address,
        section=section,
        key=key,
        platform="fake",
        kind=kind,
        attrs=dict(attrs),
        refs=refs,
        depends_on=tuple(sorted(refs.values())),
        lifecycle=lifecycle or Lifecycle(),
    )


def stack_of(*resources: ResourceSpec, outputs: Mapping[str, Any] | None = None) -> Stack:
    return Stack(
        name="t",
        file="t.yaml",
        providers={"fake": {}},
        backend={},
        variables={},
        resources={r.address: r for r in resources},
        outputs=dict(outputs or {}),
        digest="d-" + "-".join(f"{r.address}={sorted(r.attrs.items())}" for r in resources),
    )


class MemoryBackend:
    """Keeps the state in memory; records every write (to check a write per finished step)."""

    def __init__(self) -> None:
        from reconciler.state.document import StateDoc

        self.doc: StateDoc | None = None
        self.writes: list[StateDoc] = []

    def describe(self) -> str:
        return "memory"

    def read(self) -> Any:
        return self.doc

    def write(self, doc: Any) -> None:
        if self.doc is not None:
            assert doc.lineage == self.doc.lineage and doc.serial > self.doc.serial
        self.doc = doc
        self.writes.append(doc)

    def lock(self, command: str, timeout: float = 0.0) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def lock_holder(self) -> None:
        return None

    def check_writable(self) -> None:
        return None

    def force_unlock(self) -> None:
        return None
