"""Model Studio's documented answer shapes, written from seed 002 ("Create deployment").

Seed 002 (../shared/seeds/002_*.txt) documents one answer field by field: the
create call's, in its "Response parameters" table (``request_id``, ``output``
and the deployment inside it), and the error answer in the table under "Error
response". Everything here is that table typed in as data; where the page is
silent, the official ``dashscope`` SDK's response models decide (cited at each
use), and the SDK's classes are checked against these shapes in
``test_modelstudio_shapes.py``.

Types are the page's: String, Number, Boolean, Object. ``rpm_limit`` is a String
in the response table (a Number in the request table); the SDK's response models
do not carry it, so the page's String stands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.documented.shapes import Shape

STRING, NUMBER, BOOLEAN, OBJECT = "String", "Number", "Boolean", "Object"

# Seed 002, "Response parameters", the rows every deployment carries (output.*).
COMMON: Mapping[str, str] = {
    "deployed_model": STRING,
    "gmt_create": STRING,
    "gmt_modified": STRING,
    "status": STRING,
    "model_name": STRING,
    "base_model": STRING,
    "base_capacity": NUMBER,
    "capacity": NUMBER,
    "ready_capacity": NUMBER,
    "workspace_id": STRING,
    "charge_type": STRING,
    "creator": STRING,
    "modifier": STRING,
    "plan": STRING,  # "This parameter is not returned for some billing models."
}
# Seed 002, "Returned only for Model Unit deployments."
MU_ONLY: Mapping[str, str] = {
    "model_unit_spec": STRING,
    "enable_thinking": BOOLEAN,
    "max_context_length": NUMBER,
    "rpm_limit": STRING,  # String in the response table; Number in the request table
    "tpm_limit": NUMBER,
}
# Seed 002, "Returned only for provisioned throughput (PTU) deployments."
PTU_ONLY: Mapping[str, str] = {"ptu_capacity": OBJECT}
PTU_CAPACITY: Mapping[str, str] = {
    "input_tpm": NUMBER,  # ptu_capacity.input_tpm
    "output_tpm": NUMBER,  # ptu_capacity.output_tpm
    "thinking_output_tpm": NUMBER,  # ptu_capacity.thinking_output_tpm ("only for certain models")
}
# Seed 002, the status row: "PENDING ... UPDATING ... RUNNING ... STOPPED ... DELETING ... FAILED"
STATUSES = frozenset({"PENDING", "UPDATING", "RUNNING", "STOPPED", "DELETING", "FAILED"})
# Seed 002, the charge_type row: "post_paid: Post-paid."
CHARGE_TYPES = frozenset({"post_paid"})

# Seed 002, "Error response" / "Response parameters": request_id, code, message (all String)
ERROR_FIELDS: Mapping[str, str] = {"request_id": STRING, "code": STRING, "message": STRING}
# Seed 002, "The following errors can occur when a request fails": code -> the message, xxx/xx
# standing for the model, the deployed model or the capacity
PAGE_ERRORS: Mapping[str, str] = {
    "NotFound": "Model: xxx not found!",
    "Conflict": "Deployed model xxx already exists, please specify a suffix.",
    "InvalidParameter": (
        "Invalid capacity (xx), capacity must be larger than or equal to 0 and multiples of 1 "
        "and less than 1000!"
    ),
}
# The page names no authentication error; the SDK's wire codes (dashscope.v2.errors.ErrorCode) do.
SDK_ERRORS = frozenset({"InvalidApiKey", "InternalError"})


def page_message(code: str) -> re.Pattern[str]:
    """The page's message for ``code`` as a pattern: ``xxx`` any name, ``xx`` any value,
    and the capacity step (``multiples of 1`` in the page's row) any integer."""
    holes = {"xxx": r"\S+", "(xx)": r"\(.+\)", "multiples of 1 ": r"multiples of \d+ "}
    parts = re.split(r"(xxx|\(xx\)|multiples of 1 )", PAGE_ERRORS[code])
    text = "".join(holes[part] if part in holes else re.escape(part) for part in parts)
    return re.compile(text)


def _shape(fields: Mapping[str, str]) -> dict[str, Shape]:
    return {
        name: ({key: None for key in PTU_CAPACITY} if name == "ptu_capacity" else None) for name in fields
    }


def deployment_shape(plan: str | None = None) -> Shape:
    """A deployment (``output``): the common rows plus the plan's own (every plan's when None)."""
    fields = dict(COMMON)
    if plan in ("mu", None):
        fields.update(MU_ONLY)
    if plan in ("ptu", None):
        fields.update(PTU_ONLY)
    return _shape(fields)


DEPLOYMENT: Shape = {"request_id": None, "output": deployment_shape()}
# The page documents only the create answer. The SDK reads get and scale as the same Deployment
# (1.x Deployments.get/scale -> Deployment(DeploymentOutput); 2.x: "The same type comes back from
# create / get / scale and is nested in DeploymentList.deployments"). The page names the rate
# limit update among the operations that take deployed_model, and no answer for it: the same.
# The list: 1.x DeploymentList -> DeploymentListOutput{page_no, page_size, total, deployments}.
LIST: Shape = {
    "request_id": None,
    "output": {"page_no": None, "page_size": None, "total": None, "deployments": [deployment_shape()]},
}
# Delete: 1.x DeploymentDelete.output is CancelDeleteStatus{status}; 2.x JobStatus{status}.
DELETE: Shape = {"request_id": None, "output": {"status": None}}
# GET /deployments/models ("Get Deployable Model List"): neither seed 002 nor the SDK has it.
# Seed 002 names only its template_id (the deploy_spec note); the rest is that operation's page
# as the catalogue's sources record it (reconciler/data/modelstudio_catalogue.json: plan mu,
# template MU1, capacity_unit_per_instance; model_source base|custom). roles is free-form here.
MODELS: Shape = {
    "request_id": None,
    "output": {
        "page_no": None,
        "page_size": None,
        "total": None,
        "models": [
            {
                "model_name": None,
                "base_capacity": None,
                "plans": [
                    {
                        "plan": None,
                        "templates": [
                            {
                                "template_id": None,
                                "template_type": None,
                                "template_version": None,
                                "roles": None,
                            }
                        ],
                    }
                ],
            }
        ],
    },
}
ERROR: Shape = _shape(ERROR_FIELDS)

BASE = r"/api/v1/deployments"
ONE = BASE + r"/[^/]+"
# (method, path pattern, shape); the first match wins
ROUTES: tuple[tuple[str, str, Shape], ...] = (
    ("POST", BASE, DEPLOYMENT),
    ("GET", BASE, LIST),
    ("GET", BASE + r"/models", MODELS),
    ("GET", ONE, DEPLOYMENT),
    ("DELETE", ONE, DELETE),
    ("PUT", ONE + r"/scale", DEPLOYMENT),
    ("PUT", ONE + r"/update", DEPLOYMENT),
)


def router(method: str, path: str, status: int) -> Shape | bool:
    """A :data:`~tests.documented.shapes.Router` for Model Studio (any prefix before ``/api/v1``)."""
    tail = path[path.find("/api/v1/") :] if "/api/v1/" in path else path
    if status >= 400:
        return ERROR
    if method == "GET" and re.fullmatch(ONE + r"/stream", tail):
        return True  # a server-sent event stream, not one JSON object
    for wanted, pattern, shape in ROUTES:
        if wanted == method and re.fullmatch(pattern, tail):
            return shape
    raise LookupError(f"no documented shape for {method} {path}")


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return OBJECT if isinstance(value, dict) else type(value).__name__


def wrong_types(deployment: Mapping[str, Any], where: str = "output") -> list[str]:
    """``field: got X, documented Y`` for every field of ``deployment`` not of its page type."""
    types = {**COMMON, **MU_ONLY, **PTU_ONLY}
    out = [
        f"{where}.{key}: got {_type_of(value)}, documented {types[key]}"
        for key, value in deployment.items()
        if key in types and _type_of(value) != types[key]
    ]
    ptu = deployment.get("ptu_capacity")
    if isinstance(ptu, dict):
        out.extend(
            f"{where}.ptu_capacity.{key}: got {_type_of(value)}, documented {PTU_CAPACITY[key]}"
            for key, value in ptu.items()
            if key in PTU_CAPACITY and _type_of(value) != PTU_CAPACITY[key]
        )
    return out
