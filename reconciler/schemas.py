"""JSON Schemas of the files reconciler reads and writes, generated from pydantic models.

`python -m reconciler.schemas DIR` writes them; a test keeps `schemas/` current
and validates real plan and state files against the models here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from reconciler.state.document import StateDoc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttrChangeFile(_Strict):
    """One attribute that differs; `{"__unknown__": true}` stands for a value known after apply."""

    path: str
    before: Any
    after: Any
    forces_replacement: bool


class OutputChangeFile(_Strict):
    name: str
    before: Any
    after: Any


class ChangeFile(_Strict):
    address: str
    platform: str
    kind: str
    action: Literal["no-op", "create", "update", "replace", "delete"]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    diff: list[AttrChangeFile]
    reason: str
    id: str | None
    name: str | None
    scope: dict[str, str]
    depends_on: list[str]
    create_before_destroy: bool
    sensitive: list[str] | None = None


class PlanFile(_Strict):
    """A saved plan (`plan --out`) and the `plan --format json` document (which adds `summary`)."""

    format_version: int
    stack: str
    stack_file: str
    digest: str
    lineage: str | None
    serial: int | None
    created_at: str
    variables: dict[str, str]
    var_files: list[str]
    refresh_only: bool
    destroy: bool
    warnings: list[str]
    output_changes: list[OutputChangeFile]
    changes: list[ChangeFile]
    summary: dict[str, int] | None = None


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema."""
    out = {
        "plan.schema.json": PlanFile.model_json_schema(),
        "state.schema.json": StateDoc.model_json_schema(),
    }
    try:
        from reconciler.stack.models import StackFile
    except ImportError:  # pragma: no cover - the stack models always exist in a release
        return out
    out["stack.schema.json"] = StackFile.model_json_schema(mode="validation")
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(p)
