"""What the Model Studio deployments API accepts, and how it refuses: the error envelope and rules.

Every rule answers ``400 InvalidParameter`` with a message naming the field,
the value and what is allowed, in the platform's own wording where it is
published (the capacity message). Unknown body keys are ignored, as the
platform ignores them (the official client sends ``model_version`` and
``template_id``, which this emulator reads only as far as noted below).

Plans:

* ``mu`` (model units): ``deploy_spec`` (or ``template_id`` naming a spec) is
  required; ``billing_method`` may be left out, as seed 002's model unit example
  leaves it out (the official client notes that MU creates are refused without
  it; the page wins), and is ``POST_PAY`` if given; ``capacity`` is required, a multiple of the
  spec's ``base_capacity``; ``enable_thinking``, ``max_context_length``,
  ``rpm_limit``, ``tpm_limit`` are optional.
* ``cu`` (capacity units, the legacy plan used when ``plan`` is absent):
  ``capacity`` required, a multiple of the model's ``base_capacity``.
* ``lora``: like ``cu`` but ``capacity`` is optional (default one step).
* ``ptu`` (provisioned throughput): ``ptu_capacity{input_tpm, output_tpm,
  thinking_output_tpm}``, defaults 10000 / 1000 / 0; input in steps of 10000,
  output in steps of 1000. ``capacity`` is ignored (the official client always
  sends one); the deployment shows one capacity unit.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reconciler.emulators import envelope
from reconciler.emulators.envelope import ApiError
from reconciler.emulators.modelstudio_catalogue import PLANS, Catalogue, DeployableModel

MU_ONLY = ("deploy_spec", "billing_method", "enable_thinking", "max_context_length", "rpm_limit", "tpm_limit")
PTU_KEYS = ("input_tpm", "output_tpm", "thinking_output_tpm")
PTU_STEPS = {"input_tpm": 10000, "output_tpm": 1000, "thinking_output_tpm": 1000}
MAX_CAPACITY = 1000
_SUFFIX = re.compile(r"[A-Za-z0-9]{1,8}")


class ModelStudioError(ApiError):
    """One Model Studio error answer: ``{"request_id", "code", "message"}``."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message

    def response(self) -> Response:
        body = {"request_id": str(uuid.uuid4()), "code": self.code, "message": self.message}
        return JSONResponse(body, status_code=self.status_code)


def invalid(message: str) -> ModelStudioError:
    return ModelStudioError(400, "InvalidParameter", message)


def not_found(name: str) -> ModelStudioError:
    return ModelStudioError(404, "NotFound", f"Model: {name} not found!")


def conflict(message: str) -> ModelStudioError:
    return ModelStudioError(409, "Conflict", message)


def unauthorized() -> ModelStudioError:
    return ModelStudioError(401, "InvalidApiKey", "Invalid API-key provided.")


async def read_body(request: Request) -> dict[str, Any]:
    try:
        envelope.check_json_type(request)
        raw = await envelope.read_body(request)
    except envelope.BodyRefused as exc:
        raise invalid(f"{exc.reason}.") from None
    if not raw.strip():
        raise invalid("The request body is required.")
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(f"The request body is not valid JSON: {exc}.") from exc
    except RecursionError:
        raise invalid("The request body is not valid JSON: nested too deeply.") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def page(query: QueryParams, *, max_size: int) -> tuple[int, int]:
    """``(page_no, page_size)``: page_no >= 1 (default 1), page_size 1..max_size (default 50)."""
    page_no = _query_int(query, "page_no", 1)
    page_size = _query_int(query, "page_size", min(50, max_size))
    if page_no < 1:
        raise invalid(f"Invalid page_no ({page_no}), page_no must be larger than or equal to 1!")
    if not 1 <= page_size <= max_size:
        raise invalid(f"Invalid page_size ({page_size}), page_size must be between 1 and {max_size}!")
    return page_no, page_size


def _query_int(query: QueryParams, key: str, default: int) -> int:
    text = query.get(key)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise invalid(f"Invalid {key} ({text}), {key} must be an integer!") from None


# ---------------------------------------------------------------- create


def create_fields(body: Mapping[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    """The checked create request: model_name, name, suffix, plan, base_model, base_capacity,
    capacity and ``plan_fields`` (the fields the deployment shows for its plan)."""
    model_name = body.get("model_name")
    if model_name is None or model_name == "":
        raise invalid("The parameter model_name is required.")
    if not isinstance(model_name, str):
        raise invalid(f"Invalid model_name ({model_name!r}), model_name must be a string!")
    model = catalogue.model(model_name)
    if model is None:
        raise not_found(model_name)
    # Seed 002's request table marks name "Required: Yes"; the dashscope SDK's create (1.x
    # Deployments.call, 2.x Client().deployments.create) has no way to send one. Requiring it
    # would refuse every create the official client can make, so a missing name is taken (the
    # deployment is then shown in the console by its deployed_model). This one follows the SDK.
    name = _optional_str(body, "name", 64)
    suffix = _optional_str(body, "suffix", 8)
    if suffix is not None and not _SUFFIX.fullmatch(suffix):
        raise invalid(f"Invalid suffix ({suffix}), suffix must be 1 to 8 letters or digits!")
    plan = _plan(body, model)
    fields: dict[str, Any] = {
        "model_name": model_name,
        "name": name,
        "suffix": suffix,
        "plan": plan,
        "base_model": model.base_model,
    }
    if plan == "mu":
        fields.update(_mu(body, model))
    elif plan == "ptu":
        _refuse(body, (*MU_ONLY,), plan)
        ptu = ptu_capacity(body.get("ptu_capacity", {}), dict(catalogue.ptu_defaults), model)
        fields.update(base_capacity=model.base_capacity, capacity=model.base_capacity)
        fields["plan_fields"] = {"ptu_capacity": ptu}
    else:
        _refuse(body, (*MU_ONLY, "ptu_capacity"), plan)
        base = model.base_capacity
        raw = body.get("capacity", base if plan == "lora" else None)
        if raw is None:
            raise invalid(f"The parameter capacity is required for plan {plan}.")
        fields.update(base_capacity=base, capacity=capacity(raw, base), plan_fields={})
    return fields


def _plan(body: Mapping[str, Any], model: DeployableModel) -> str:
    plan = body.get("plan")
    if plan is None:
        if "cu" in model.plans:
            return "cu"
        raise invalid(
            f"The parameter plan is required for model {model.model_name} ({', '.join(model.plans)})."
        )
    if plan not in PLANS:
        raise invalid(f"Invalid plan ({plan}), plan must be one of {', '.join(PLANS)}!")
    if plan not in model.plans:
        raise invalid(
            f"Model {model.model_name} does not support plan {plan}; supported: {', '.join(model.plans)}."
        )
    return str(plan)


def _mu(body: Mapping[str, Any], model: DeployableModel) -> dict[str, Any]:
    _refuse(body, ("ptu_capacity",), "mu")
    spec_name = body.get("deploy_spec", body.get("template_id"))
    if spec_name is None:
        raise invalid("The parameter deploy_spec is required for plan mu.")
    spec = model.specs.get(spec_name) if isinstance(spec_name, str) else None
    if spec is None:
        known = ", ".join(model.specs)
        raise invalid(f"Invalid deploy_spec ({spec_name}), model {model.model_name} supports: {known}!")
    # The request table says billing_method is "required only when plan mu is specified", and the
    # SDK's create notes that MU creates are refused without it; but the page's own model unit
    # example sends none. The example is what a user types in: absent means POST_PAY, the only
    # value the page allows.
    billing = body.get("billing_method", "POST_PAY")
    if billing != "POST_PAY":
        raise invalid(f"Invalid billing_method ({billing}), billing_method must be POST_PAY for plan mu!")
    if body.get("capacity") is None:
        raise invalid("The parameter capacity is required for plan mu.")
    thinking = body.get("enable_thinking", False)
    if not isinstance(thinking, bool):
        raise invalid(f"Invalid enable_thinking ({thinking!r}), enable_thinking must be a boolean!")
    if thinking and not model.thinking:
        raise invalid(f"Model {model.model_name} does not support enable_thinking.")
    context = body.get("max_context_length", model.max_context_length)
    if context is not None:
        limit = model.max_context_length or 1_000_000
        context = _positive_int(context, "max_context_length", limit)
    return {
        "base_capacity": spec.base_capacity,
        "capacity": capacity(body["capacity"], spec.base_capacity),
        "plan_fields": {
            "model_unit_spec": spec.name,
            "enable_thinking": thinking,
            "max_context_length": context,
            "rpm_limit": _optional_limit(body, "rpm_limit"),
            "tpm_limit": _optional_limit(body, "tpm_limit"),
        },
    }


def capacity(value: Any, base: int) -> int:
    """A capacity: an integer multiple of ``base`` in [0, 1000), else the platform's message."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_CAPACITY or value % base:
        raise invalid(
            f"Invalid capacity ({value}), capacity must be larger than or equal to 0 "
            f"and multiples of {base} and less than {MAX_CAPACITY}!"
        )
    return value


def ptu_capacity(value: Any, current: dict[str, Any], model: DeployableModel) -> dict[str, int]:
    """``current`` with the keys ``value`` sets; steps of 10000 input / 1000 output TPM."""
    if not isinstance(value, Mapping):
        raise invalid(f"Invalid ptu_capacity ({value!r}), ptu_capacity must be an object!")
    unknown = sorted(set(value) - set(PTU_KEYS))
    if unknown:
        raise invalid(
            f"Invalid ptu_capacity, unknown field(s) {', '.join(unknown)}; allowed: {', '.join(PTU_KEYS)}!"
        )
    out = {key: int(current.get(key, 0)) for key in PTU_KEYS}
    for key in PTU_KEYS:
        if key not in value:
            continue
        number, step = value[key], PTU_STEPS[key]
        least = 0 if key == "thinking_output_tpm" else step
        if isinstance(number, bool) or not isinstance(number, int) or number < least or number % step:
            raise invalid(
                f"Invalid ptu_capacity.{key} ({number}), {key} must be a multiple of {step} "
                f"and larger than or equal to {least}!"
            )
        out[key] = number
    if out["thinking_output_tpm"] and not model.thinking:
        raise invalid(f"Model {model.model_name} does not support thinking_output_tpm.")
    return out


# ---------------------------------------------------------------- scale and update


def scale_fields(
    body: Mapping[str, Any], obj: Mapping[str, Any], model: DeployableModel, defaults: Mapping[str, int]
) -> dict[str, Any]:
    """``{capacity}`` (mu, cu, lora) or ``{ptu_capacity}`` (ptu) to apply to ``obj``."""
    named = body.get("deployed_model")
    if named is not None and named != obj["deployed_model"]:
        raise invalid(f"Invalid deployed_model ({named}), it must match the path ({obj['deployed_model']})!")
    if obj["plan"] == "ptu":
        if "ptu_capacity" not in body:
            raise invalid("The parameter ptu_capacity is required to scale a ptu deployment.")
        return {
            "ptu_capacity": ptu_capacity(body["ptu_capacity"], {**defaults, **obj["ptu_capacity"]}, model)
        }
    if "ptu_capacity" in body:
        raise invalid(f"The parameter ptu_capacity is not supported for plan {obj['plan']}.")
    if body.get("capacity") is None:
        raise invalid("The parameter capacity is required.")
    return {"capacity": capacity(body["capacity"], int(obj["base_capacity"]))}


def limit_fields(body: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
    """``rpm_limit`` and/or ``tpm_limit`` (at least one); plan ``mu`` only."""
    if obj["plan"] != "mu":
        raise invalid(f"Updating rpm_limit and tpm_limit is only supported for plan mu, not {obj['plan']}.")
    changes = {
        key: _optional_limit(body, key) for key in ("rpm_limit", "tpm_limit") if body.get(key) is not None
    }
    if not changes:
        raise invalid("At least one of rpm_limit and tpm_limit is required.")
    return changes


# ---------------------------------------------------------------- helpers


def _refuse(body: Mapping[str, Any], keys: tuple[str, ...], plan: str) -> None:
    given = [key for key in keys if body.get(key) is not None]
    if given:
        raise invalid(f"The parameter {given[0]} is not supported for plan {plan}.")


def _optional_str(body: Mapping[str, Any], key: str, max_len: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise invalid(f"Invalid {key} ({value!r}), {key} must be a string of 1 to {max_len} characters!")
    return value


def _optional_limit(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    return None if value is None else _positive_int(value, key, 10**12)


def _positive_int(value: Any, key: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise invalid(f"Invalid {key} ({value!r}), {key} must be an integer between 1 and {limit}!")
    return value
