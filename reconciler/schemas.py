"""JSON Schemas of the files reconciler reads and writes, generated from pydantic models.

`python -m reconciler.schemas DIR` writes them; a test keeps `schemas/` current
and validates real plan and state files against the models here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

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
    provisioning: str | None = Field(
        default=None,
        description="A no-op whose object is still provisioning: its live status; apply waits for it.",
    )
    sensitive: list[str] | None = None


class RuleResultFile(_Strict):
    """One policy rule evaluated against the plan (apply evaluates the rules again)."""

    rule: str = Field(description="The rule's name (its key under `rules:`).")
    source: str = Field(description="The stack file or --policy file the rule is in.")
    check: Literal[
        "deny",
        "require_approval",
        "max_monthly_cost",
        "max_monthly_increase",
        "allowed_platforms",
        "allowed_specs",
        "allowed_regions",
    ]
    summary: str = Field(description="The rule in words.")
    status: Literal["pass", "fail"]
    message: str = Field(description="Why it passed or failed.")
    addresses: list[str] = Field(description="The resources that break the rule (empty when it passes).")
    override: bool = Field(description="Whether `apply --allow-policy-override RULE` may proceed anyway.")


class CostBasisFile(_Strict):
    """What a Model Studio deployment is priced as (the cost block's columns)."""

    model: str
    region: str
    spec: str = Field(description="The model unit spec (MU1) or PTU.")
    capacity: str = Field(description="Units (8), or the throughput (20,000 input + 2,000 output TPM).")
    billing: Literal["pay-as-you-go", "subscription"]


class CostLineFile(_Strict):
    """The cost of one resource before and after the plan; null means not known (never zero)."""

    address: str
    platform: str
    kind: str
    hourly_before: float | None
    hourly_after: float | None
    monthly_before: float | None = Field(description="hourly_before x hours_per_month.")
    monthly_after: float | None
    monthly_difference: float | None
    detail: str = Field(description="How the price was found, or why it is unknown.")
    basis: CostBasisFile | None = Field(
        default=None, description="What the object after the plan (before it, for a deletion) is priced as."
    )


class CostFile(_Strict):
    """Monthly cost estimate (USD). Totals add up the resources priced on both sides only."""

    currency: str
    hours_per_month: int = Field(description="Monthly = hourly x this (730).")
    region: str | None = Field(description="The Model Studio region prices were looked up in.")
    monthly_before: float
    monthly_after: float
    monthly_difference: float
    unpriced: list[str] = Field(description="Addresses left out of the totals: no known price.")
    resources: list[CostLineFile]


class AssessmentFile(_Strict):
    """Policy results and cost of the plan, and what they were computed from."""

    policy_files: list[str]
    pricing_files: list[str]
    approvals: list[str] = Field(description="Approver names known when the rules were evaluated.")
    policy: list[RuleResultFile]
    cost: CostFile | None


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
    blocked: list[str] = Field(
        default_factory=list,
        description="lifecycle.prevent_destroy hits; a plan with any is shown but never applied.",
    )
    assessment: AssessmentFile | None = None
    summary: dict[str, int] | None = None
    checksum: str | None = Field(
        default=None,
        description="A saved plan's `sha256:<hex>` of its canonical JSON without this field; a plan file"
        " whose checksum is missing or does not match is refused.",
    )


class DriftAttributeFile(_Strict):
    path: str = Field(description="Dotted attribute path, e.g. `config.model_instance_config.resource.max`.")
    recorded: Any = Field(description="The value in state (last read by reconciler).")
    live: Any = Field(description="The value the platform reports now.")


class DriftResourceFile(_Strict):
    status: Literal["changed", "deleted", "unmanaged"]
    address: str | None = Field(description="The resource's address; null for an unmanaged object.")
    platform: str
    kind: str
    id: str
    name: str | None
    scope: dict[str, str]
    where: str = Field(description="Unmanaged objects: the managed scope they were found in.")
    attributes: list[DriftAttributeFile] = Field(description="Changed resources: what differs.")


class DriftSummary(_Strict):
    changed: int
    deleted: int
    unmanaged: int


class DriftFile(_Strict):
    """`reconciler drift --format json`: exit 0 when `drift` is false, 2 when true."""

    format_version: int
    stack: str
    checked_at: str
    drift: bool
    summary: DriftSummary
    scopes: list[str] = Field(description="The scopes searched for unmanaged objects, in words.")
    notes: list[str]
    resources: list[DriftResourceFile]


class _StreamObject(_Strict):
    """Fields every line of the `plan --json` / `apply --json` stream has."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    timestamp: str = Field(alias="@timestamp", description="When it was written: ISO 8601, UTC (`...Z`).")
    format_version: Literal[1]


class StreamPlanSummary(_StreamObject):
    """First line: what the plan changes, and the state it was made against."""

    type: Literal["plan_summary"]
    command: Literal["plan", "apply", "destroy"]
    stack: str
    lineage: str | None
    serial: int | None = Field(description="The state serial the plan was made against (null: no state).")
    destroy: bool
    refresh_only: bool
    has_changes: bool
    counts: dict[Literal["create", "update", "replace", "delete"], int]
    output_changes: list[str] = Field(description="Names of the outputs whose value changes.")
    blocked: list[str] = Field(description="lifecycle.prevent_destroy hits (such a plan is never applied).")


class StreamResourceChange(_StreamObject):
    """One resource the plan changes (no-ops are not listed)."""

    type: Literal["resource_change"]
    address: str
    action: Literal["create", "update", "replace", "delete"]
    platform: str
    kind: str
    name: str | None
    id: str | None
    reason: str
    changed: list[str] = Field(
        description="Dotted paths of the attributes that change (a create: all it sets)."
    )
    forces_replacement: list[str]
    before: dict[str, Any] | None = Field(description="Live attributes; sensitive ones are `(sensitive)`.")
    after: dict[str, Any] | None = Field(
        description='Desired attributes; `{"__unknown__": true}` is known after apply.'
    )
    sensitive: list[str] = Field(description="The attribute paths shown as `(sensitive)`.")


class StreamDiagnostic(_StreamObject):
    """A warning, note or error that is not a step's own result."""

    type: Literal["diagnostic"]
    severity: Literal["error", "warning", "info"]
    summary: str
    address: str | None


class _StreamStep(_StreamObject):
    address: str
    op: str = Field(description="create, update, delete, delete-deposed, forget or record.")
    platform: str | None
    kind: str | None
    rollback: bool = Field(description="A step of the rollback that follows a failed apply.")


class StreamStepStart(_StreamStep):
    type: Literal["step_start"]


class StreamStepProgress(_StreamStep):
    """A step still waiting for its object to settle (sent every heartbeat)."""

    type: Literal["step_progress"]
    elapsed_seconds: float


class StreamStepError(_Strict):
    platform: str | None
    code: str | None = Field(description="The platform's own error code, when it gave one.")
    http_status: int | None
    message: str


class StreamStepFinish(_StreamStep):
    type: Literal["step_finish"]
    elapsed_seconds: float
    status: Literal["ok", "failed"]
    ok: bool
    error: StreamStepError | None = Field(description="Why it failed; null when ok.")


class StreamStepSkipped(_StreamStep):
    """A step that never started because a step it depends on failed."""

    type: Literal["step_skipped"]
    reason: str


class StreamResult(_StreamObject):
    """Last line, also when the command failed."""

    type: Literal["result"]
    command: Literal["plan", "apply", "destroy"]
    ok: bool
    exit_code: int = Field(description="What the command exits with (0, 1, 2, 3, 130, 143).")
    counts: dict[str, int] = Field(
        description="plan: create/update/replace/delete; apply: created/updated/deleted/failed/skipped."
    )
    outputs: dict[str, Any] = Field(description="The stack's outputs after apply; secret ones `(sensitive)`.")
    error: str | None = Field(description="The error message (as on stderr) when ok is false.")


class StreamLine(
    RootModel[
        Annotated[
            StreamPlanSummary
            | StreamResourceChange
            | StreamDiagnostic
            | StreamStepStart
            | StreamStepProgress
            | StreamStepFinish
            | StreamStepSkipped
            | StreamResult,
            Field(discriminator="type"),
        ]
    ]
):
    """One line of `reconciler plan --json` / `apply --json` (JSON Lines, one object a line)."""


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema."""
    out = {
        "plan.schema.json": PlanFile.model_json_schema(),
        "drift.schema.json": DriftFile.model_json_schema(),
        "state.schema.json": StateDoc.model_json_schema(),
        "ui-stream.schema.json": StreamLine.model_json_schema(),
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
