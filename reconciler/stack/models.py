"""Pydantic models of the stack file: every field, its type and its own rules.

Rules that involve one value (or two fields of one block, like ``max >= min``)
live here; rules across resources (references, capacity, cycles) are the
loader's. Every model forbids unknown keys. String fields of resources accept
a :class:`~reconciler.stack.spec.Deferred` (a template that reads other
resources); numbers and booleans must be known when the stack is loaded.

Validators raise ``PydanticCustomError`` with the final message text, so an
error needs no rewording; :func:`field_errors` turns a ``ValidationError``
into locations and messages, adding did-you-mean hints for unknown keys.

Names (workspace, endpoint, model, version and deployment names) are 1-64
characters: letters of any script, digits, ``-``, ``_``, ``.`` and space, the
rule the Fabric deploy page states for service instances, applied to all.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NoReturn, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.stack.source import Loc
from reconciler.stack.spec import SECTIONS, Deferred, HealthCheck, Lifecycle

ENDPOINT_TYPES = ("inference", "service", "ray", "job", "ray_service", "sql", "container_job", "notebook")
FORBIDDEN_IN_DESCRIPTION = "!<>=&'\""
KEY_RULE = "1-64 characters a-z, 0-9, '-', '_', starting with a letter"
_KEY = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_NAME = re.compile(r"[\w .-]{1,64}")
_STACK_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ADDRESS = re.compile(rf"(?:{'|'.join(SECTIONS)})\.[a-z][a-z0-9_-]{{0,63}}")
_ATTRIBUTE_PATH = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_URL = re.compile(r"https?://[^\s/?#]+\S*")


def suggestion(word: str, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when ``word`` is close to one of ``options``, else ``""``."""
    if len(word) > 100:  # nothing sensible is that long; spare difflib the work
        return ""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def allowed(word: str, options: Iterable[str], label: str = "allowed") -> str:
    """``"; did you mean 'x'? allowed: a, b"`` (the hint only when one is close)."""
    options = list(options)
    hint = suggestion(word, options)
    return f"{hint or ';'} {label}: {', '.join(options) or 'none'}"


def describe(value: Any) -> str:
    """The YAML word for a value's type, for messages."""
    if isinstance(value, Deferred):
        return "template that references resources"
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "mapping"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def shown(value: Any, limit: int = 60, *, size: bool = True) -> str:
    """``repr(value)``, cut short for messages: ``'aaaa...' (1000000 characters)``."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = f" ({len(value)} characters)" if isinstance(value, str) and size else ""
    quote = text[-1] if text[-1] in "'\"" else ""
    return f"{text[: limit - 4]}...{quote}{length}"


def _fail(kind: str, message: str) -> NoReturn:
    raise PydanticCustomError(kind, message)


def _known(value: Any) -> None:
    if isinstance(value, Deferred):
        _fail("deferred", "must be known when the stack is loaded; it cannot reference other resources")


# -- value validators: each returns a PlainValidator's function -----------------------------------


def _text(
    rule: str,
    *,
    pattern: re.Pattern[str] | None = None,
    max_len: int = 1024,
    min_len: int = 1,
    forbidden: str = "",
    deferred: bool = True,
    secret: bool = False,
) -> Callable[[Any], Any]:
    """A text field; ``secret`` ones (credentials) never show their value in a message."""

    def check(value: Any) -> Any:
        if isinstance(value, Deferred) and deferred:
            return value
        _known(value)
        if not isinstance(value, str):
            hint = " (quote it)" if isinstance(value, (int, float, bool)) else ""
            _fail("text", f"must be a string ({rule}), not a {describe(value)}{hint}")
        bad = next((c for c in value if c in forbidden), None)
        too_long = not min_len <= len(value) <= max_len
        if too_long or bad is not None or (pattern is not None and not pattern.fullmatch(value)):
            why = f"is {len(value)} characters; " if too_long else ""
            why = f"contains {bad!r}; " if bad is not None else why
            what = "the value (not shown: it is a credential)" if secret else shown(value, size=not too_long)
            _fail("text", f"{what} {why}must be {rule}")
        return value

    return check


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        _known(value)
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,30}", value.strip()):
            value = int(value)  # a rendered template like "{{ var.replicas }}"
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            got = shown(value) if isinstance(value, (int, float, str)) else f"a {describe(value)}"
            _fail("integer", f"must be an integer from {low} to {high}, not {got}")
        return value

    return check


def _number(low: float, *, zero: bool = False) -> Callable[[Any], float]:
    rule = f"a number >= {low:g}" if zero else f"a number greater than {low:g}"

    def check(value: Any) -> float:
        _known(value)
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,30}(\.[0-9]{0,30})?", value.strip()):
            value = float(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not (value >= low if zero else value > low)
        ):
            _fail("number", f"must be {rule}, not {shown(value)}")
        return float(value)

    return check


def _boolean(value: Any) -> bool:
    _known(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        _fail("boolean", f"must be true or false, not {shown(value)}")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        _known(value)
        if not isinstance(value, str) or value not in options:
            _fail("choice", f"{shown(value)} is not allowed{allowed(str(value), options)}")
        return value

    return check


def _str(check: Callable[[Any], Any]) -> PlainValidator:
    return PlainValidator(check, json_schema_input_type=str)


def _int(low: int, high: int) -> PlainValidator:
    return PlainValidator(_integer(low, high), json_schema_input_type=int)


_NAME_RULE = "1-64 characters: letters, digits, '-', '_', '.', space"
_DESCRIPTION_RULE = f"at most 1024 characters, none of {FORBIDDEN_IN_DESCRIPTION}"
_ID_RULE = "1-36 characters: letters, digits, '-'"
_URL_RULE = "'embedded' or an http(s) URL"
_ADDRESS_RULE = "an address like 'endpoints.infer' (<section>.<key>)"
_IDENTIFIER_RULE = "1-64 characters: letters, digits, '_', not starting with a digit"
_PATH_RULE = "a dotted attribute path like 'description'"
_EMBEDDED_OR_URL = re.compile(f"embedded|{_URL.pattern}")

# String fields of resources (a Deferred template is accepted) ...
Name = Annotated[str | Deferred, _str(_text(_NAME_RULE, pattern=_NAME, max_len=64))]
Description = Annotated[
    str | Deferred, _str(_text(_DESCRIPTION_RULE, min_len=0, forbidden=FORBIDDEN_IN_DESCRIPTION))
]
Text = Annotated[str | Deferred, _str(_text("1-1024 characters"))]
Short = Annotated[str | Deferred, _str(_text("1-64 characters", max_len=64))]
Id = Annotated[str | Deferred, _str(_text(_ID_RULE, pattern=_ID, max_len=36))]
SpecCode = Short
# ... and values that must be known at load time.
StackName = Annotated[
    str, _str(_text("1-64 characters: letters, digits, '-', '_'", pattern=_STACK_NAME, deferred=False))
]
Url = Annotated[str, _str(_text(_URL_RULE, pattern=_EMBEDDED_OR_URL, max_len=2048, deferred=False))]
HttpUrl = Annotated[str, _str(_text("an http(s) URL", pattern=_URL, max_len=2048, deferred=False))]
Setting = Annotated[str, _str(_text("1-1024 characters", deferred=False))]
#: A credential (token, key, password): long enough for IAM tokens, never echoed in a message.
Secret = Annotated[str, _str(_text("1-65536 characters", max_len=65536, deferred=False, secret=True))]
Ref = Annotated[str, _str(_text("the key of a resource", max_len=64, deferred=False))]
Address = Annotated[str, _str(_text(_ADDRESS_RULE, pattern=_ADDRESS, deferred=False))]
AttributePath = Annotated[str, _str(_text(_PATH_RULE, pattern=_ATTRIBUTE_PATH, deferred=False))]
Key = Annotated[str, _str(_text(KEY_RULE, pattern=_KEY, max_len=64, deferred=False))]
Identifier = Annotated[str, _str(_text(_IDENTIFIER_RULE, pattern=_IDENTIFIER, max_len=64, deferred=False))]
Bool = Annotated[bool, PlainValidator(_boolean, json_schema_input_type=bool)]
PositiveNumber = Annotated[float, PlainValidator(_number(0), json_schema_input_type=float)]
NonNegativeNumber = Annotated[float, PlainValidator(_number(0, zero=True), json_schema_input_type=float)]
Retries = Annotated[int, _int(0, 100)]
InFlight = Annotated[int, _int(1, 10_000)]
Count0 = Annotated[int, _int(0, 1000)]
Count1 = Annotated[int, _int(1, 1000)]
FabricOnly = Annotated[str, _str(_choice(("fabric",)))]
EndpointType = Annotated[str, _str(_choice(ENDPOINT_TYPES))]
ModelType = Annotated[str, _str(_choice(("LLM_MODEL",)))]


def _scalar(value: Any) -> str | int | float | bool:
    _known(value)
    if not isinstance(value, (str, int, float, bool)):
        _fail("scalar", f"must be a string, number or boolean, not a {describe(value)}")
    return value


#: A value of an environment variable or startup parameter.
ScalarSetting = Annotated[
    str | int | float | bool, PlainValidator(_scalar, json_schema_input_type=str | int | float | bool)
]


def check_key(key: str) -> str | None:
    """The message for an invalid resource key, or None."""
    return None if _KEY.fullmatch(key) else f"invalid key {shown(key)}: must be {KEY_RULE}"


class Block(BaseModel):
    """A mapping in the stack file: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def _at_least(value: int, info: ValidationInfo, other: str) -> int:
    low = info.data.get(other)
    if isinstance(low, int) and value < low:
        _fail("range", f"must be >= {other} ({low})")
    return value


# -- provider blocks -------------------------------------------------------------------------------


class Knobs(Block):
    """Tuning every provider reads (``max_requests_per_second: 0`` means unlimited;
    ``provision_seconds`` paces the embedded emulator's lifecycles)."""

    timeout: PositiveNumber | None = None
    max_retries: Retries | None = None
    max_requests_per_second: NonNegativeNumber | None = None
    max_in_flight: InFlight | None = None
    wait_timeout: PositiveNumber | None = None
    poll_interval: PositiveNumber | None = None
    provision_seconds: NonNegativeNumber | None = None


class FabricProvider(Knobs):
    url: Url
    ep_url: HttpUrl | None = None
    token: Secret | None = None
    ak: Secret | None = None
    sk: Secret | None = None
    project_id: Setting | None = None
    region: Setting | None = None

    @model_validator(mode="after")
    def _key_pair(self) -> FabricProvider:
        if (self.ak is None) != (self.sk is None):
            _fail("credentials", "ak and sk go together: set both or neither")
        return self


class ModelStudioProvider(Knobs):
    url: Url
    api_key: Secret | None = None
    region: Setting | None = None
    workspace: Setting | None = None


class ZStackProvider(Knobs):
    url: Url
    account: Setting | None = None
    password: Secret | None = None
    zone_uuid: Setting | None = None
    model_center_uuid: Setting | None = None


class Providers(Block):
    fabric: FabricProvider | None = None
    modelstudio: ModelStudioProvider | None = None
    zstack: ZStackProvider | None = None


# -- backend ---------------------------------------------------------------------------------------


#: How many versions of the state a backend keeps (``reconciler state history``); default 100.
HistoryKeep = Annotated[int, _int(1, 1_000_000)]


class LocalBackend(Block):
    path: Setting
    history_keep: HistoryKeep | None = None


class PostgresBackend(Block):
    model_config = ConfigDict(populate_by_name=True)
    dsn: Setting
    schema_: Setting | None = Field(default=None, alias="schema")
    history_keep: HistoryKeep | None = None


class Backend(Block):
    local: LocalBackend | None = None
    postgres: PostgresBackend | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Backend:
        if (self.local is None) == (self.postgres is None):
            _fail("backend", "choose exactly one backend: local or postgres")
        return self


# -- resources -------------------------------------------------------------------------------------


class LifecycleBlock(Block):
    prevent_destroy: Bool = False
    ignore_changes: list[AttributePath] = Field(default_factory=list)
    create_before_destroy: Bool = False

    def to_spec(self) -> Lifecycle:
        return Lifecycle(self.prevent_destroy, tuple(self.ignore_changes), self.create_before_destroy)


class Resource(Block):
    """Fields every resource accepts; ``kind`` and ``ref_fields`` (field -> section) per class."""

    kind: ClassVar[str]
    ref_fields: ClassVar[Mapping[str, str]] = {}

    lifecycle: LifecycleBlock | None = None
    depends_on: list[Address] = Field(default_factory=list)


#: Fields that never go to ``ResourceSpec.attrs``.
META_FIELDS = frozenset({"platform", "lifecycle", "depends_on", "health_check"})


class Workspace(Resource):
    kind: ClassVar[str] = "workspace"
    platform: FabricOnly | None = None
    name: Name
    description: Description | None = None
    metastore_id: Id | None = None
    enterprise_project_id: Id | None = None


class MuReservation(Block):
    spec_code: SpecCode
    min: Count0
    max: Count1

    @field_validator("max")
    @classmethod
    def _max_at_least_min(cls, value: int, info: ValidationInfo) -> int:
        return _at_least(value, info, "min")


class PoolReservation(Block):
    spec_code: SpecCode
    warm_up_num: Count0 | None = None
    max_num: Count1

    @field_validator("max_num")
    @classmethod
    def _max_num_at_least_warm_up(cls, value: int, info: ValidationInfo) -> int:
        return _at_least(value, info, "warm_up_num")


class ReservedResource(Block):
    mu: MuReservation | None = None
    apu: PoolReservation | None = None
    dpu: PoolReservation | None = None


class Endpoint(Resource):
    kind: ClassVar[str] = "endpoint"
    ref_fields: ClassVar[Mapping[str, str]] = {"workspace": "workspaces"}
    platform: FabricOnly | None = None
    workspace: Ref
    name: Name
    description: Description | None = None
    type: EndpointType
    reserved_resource: ReservedResource | None = None
    public_access: Bool | None = None
    custom_image_id: Id | None = None


_OptionalShort = Annotated[str | Deferred, _str(_text("0-64 characters", max_len=64, min_len=0))]
_OptionalText = Annotated[str | Deferred, _str(_text("0-1024 characters", min_len=0))]


class LlmModelConfig(Block):
    """The inference walk-through sends ``""`` for both, so empty is allowed."""

    base_model_type: _OptionalShort
    model_path: _OptionalText


class VersionConfig(Block):
    llm_model_config: LlmModelConfig


class ModelVersion(Block):
    """A Fabric model version; the platform requires its ``config.llm_model_config``."""

    name: Name
    description: Description | None = None
    config: VersionConfig


class Model(Resource):
    kind: ClassVar[str] = "model"
    ref_fields: ClassVar[Mapping[str, str]] = {"workspace": "workspaces"}
    platform: Annotated[str, _str(_choice(("fabric", "zstack")))] | None = None
    workspace: Ref
    name: Name
    description: Description | None = None
    type: ModelType | None = None
    version: ModelVersion


class InstanceResource(Block):
    spec_code: SpecCode
    min: Count1
    max: Count1

    @field_validator("max")
    @classmethod
    def _max_at_least_min(cls, value: int, info: ValidationInfo) -> int:
        return _at_least(value, info, "min")


class ModelInstanceConfig(Block):
    resource: InstanceResource


class InstanceConfig(Block):
    model_instance_config: ModelInstanceConfig


class HealthCheckBlock(Block):
    """A health gate: after the deployment is RUNNING, one invocation must answer in time."""

    timeout: PositiveNumber = 30.0
    prompt: Text = "ping"

    def to_spec(self) -> HealthCheck:
        return HealthCheck(timeout=self.timeout, prompt=str(self.prompt))


class FabricDeployment(Resource):
    """A DataArts Fabric service instance: a model version served on an endpoint."""

    kind: ClassVar[str] = "service_instance"
    ref_fields: ClassVar[Mapping[str, str]] = {
        "workspace": "workspaces",
        "endpoint": "endpoints",
        "model": "models",
    }
    platform: Literal["fabric"]
    workspace: Ref
    endpoint: Ref
    model: Ref
    name: Name
    description: Description | None = None
    # optional on the DeployServiceInstance page, and left out by the walk-through (seed 001)
    config: InstanceConfig | None = None
    health_check: HealthCheckBlock | None = None


MODELSTUDIO_PLANS = ("mu", "cu", "ptu", "lora")
_SUFFIX = re.compile(r"[A-Za-z0-9]{1,8}")


class PtuCapacity(Block):
    input_tpm: Annotated[int, _int(0, 1_000_000_000)] | None = None
    output_tpm: Annotated[int, _int(0, 1_000_000_000)] | None = None
    thinking_output_tpm: Annotated[int, _int(0, 1_000_000_000)] | None = None


def _base_capacity(model_name: Any, spec: Any) -> tuple[int, str] | None:
    """The base capacity of ``spec`` for ``model_name`` from the shipped catalogue, when known."""
    from reconciler.emulators.modelstudio_catalogue import load_catalogue

    if not isinstance(model_name, str):
        return None
    model = load_catalogue().model(model_name)
    if model is None:
        return None
    found = model.specs.get(spec) if isinstance(spec, str) else None
    if found is not None:
        return found.base_capacity, f"the base capacity of {spec} for {model_name}"
    return model.base_capacity, f"the base capacity of {model_name}"


class ModelStudioDeployment(Resource):
    """An Alibaba Cloud Model Studio deployment (model units, provisioned throughput, LoRA)."""

    kind: ClassVar[str] = "deployment"
    platform: Literal["modelstudio"]
    plan: Annotated[str, _str(_choice(MODELSTUDIO_PLANS))]  # first: the model's check needs it
    model_name: Short
    name: Name
    deploy_spec: SpecCode | None = Field(default=None, validate_default=True)
    capacity: Annotated[int, _int(0, 999)] | None = Field(default=None, validate_default=True)
    billing_method: Annotated[str, _str(_choice(("POST_PAY",)))] | None = None
    enable_thinking: Bool | None = None
    max_context_length: Annotated[int, _int(1, 10_000_000)] | None = None
    rpm_limit: Annotated[int, _int(1, 1_000_000_000)] | None = None
    tpm_limit: Annotated[int, _int(1, 1_000_000_000)] | None = None
    ptu_capacity: PtuCapacity | None = Field(default=None, validate_default=True)
    suffix: Annotated[str, _str(_text("1-8 letters or digits", pattern=_SUFFIX, max_len=8))] | None = None

    @field_validator("model_name")
    @classmethod
    def _model_in_catalogue(cls, value: Any, info: ValidationInfo) -> Any:
        """Plans mu and ptu deploy the catalogue's models (seed 002's price tables); lora and cu
        deploy the account's own fine-tuned models, which no catalogue lists."""
        plan = info.data.get("plan")
        if not isinstance(value, str) or plan not in ("mu", "ptu"):
            return value
        from reconciler.emulators.modelstudio_catalogue import load_catalogue

        models = load_catalogue().models
        model = models.get(value)
        if model is not None and plan in model.plans:
            return value
        offered = sorted(name for name, m in models.items() if plan in m.plans)
        close = difflib.get_close_matches(value, offered, n=5, cutoff=0.6)
        if model is not None:
            plans = ", ".join(model.plans)
            _fail("model", f"{value} cannot be deployed with plan {plan}; its plans: {plans}")
        why = f"{value} is not a model Model Studio deploys with plan {plan}"
        hint = (
            f"; close matches: {', '.join(close)}"
            if close
            else f"; none of the {len(offered)} models with plan {plan} is close (seed 002's price tables)"
        )
        _fail("model", why + hint)
        return value

    @field_validator("deploy_spec")
    @classmethod
    def _spec_for_mu(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.data.get("plan") == "mu":
            _fail("required", "required when plan is mu (e.g. MU1)")
        model_name = info.data.get("model_name")
        if isinstance(value, str) and isinstance(model_name, str) and info.data.get("plan") == "mu":
            from reconciler.emulators.modelstudio_catalogue import load_catalogue

            model = load_catalogue().model(model_name)
            if model is not None and model.specs and value not in model.specs:
                _fail("spec", f"{model_name} has no spec {value}{allowed(value, model.specs, 'its specs')}")
        return value

    @field_validator("capacity")
    @classmethod
    def _capacity_steps(cls, value: Any, info: ValidationInfo) -> Any:
        plan = info.data.get("plan")
        if value is None:
            if plan == "mu":
                _fail("required", "required when plan is mu: an integer multiple of the spec's base capacity")
            return value
        base = _base_capacity(info.data.get("model_name"), info.data.get("deploy_spec"))
        if base is not None and base[0] > 1 and value % base[0]:
            _fail(
                "capacity",
                f"must be a multiple of {base[0]} ({base[1]}), from 0 to 999, not {value}",
            )
        return value

    @field_validator("ptu_capacity")
    @classmethod
    def _ptu_only(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("plan") not in (None, "ptu"):
            _fail("plan", f"only for plan ptu, not {info.data.get('plan')}")
        return value


class ZStackModelService(Resource):
    """A ZStack AI model service (the template an instance group is deployed from), in ``models``."""

    kind: ClassVar[str] = "model_service"
    platform: Literal["zstack"]
    name: Name
    description: Description | None = None
    yaml: Text
    requestCpu: Annotated[int, _int(1, 1024)]
    requestMemory: Annotated[int, _int(1, 2**50)]
    installPath: Text
    startCommand: Text
    modelCenterUuid: Short | None = None
    gpuComputeCapability: Short | None = None
    pythonVersion: Short | None = None
    condaVersion: Short | None = None
    type: Annotated[str, _str(_choice(("Endpoint", "FineTune", "ModelEval", "App")))] | None = None
    framework: Short | None = None
    source: Annotated[str, _str(_choice(("Other", "Bentoml", "HuggingFace")))] | None = None
    system: Bool | None = None
    containerCommand: Text | None = None
    containerArgs: Text | None = None
    supportDistributed: Bool | None = None
    vendorToSpecUuidsMap: dict[str, list[Short]] | None = None


class ZStackDeployment(Resource):
    """A ZStack model service instance group: a model service deployed in a zone."""

    kind: ClassVar[str] = "model_service_instance_group"
    ref_fields: ClassVar[Mapping[str, str]] = {"model_service": "models"}
    platform: Literal["zstack"]
    model_service: Ref
    name: Name
    description: Description | None = None
    type: Annotated[str, _str(_choice(("VirtualMachine", "Container")))]
    zoneUuid: Short | None = None
    modelUuid: Short | None = None
    cpuNum: Annotated[int, _int(1, 1024)] | None = None
    memorySize: Annotated[int, _int(1, 2**50)] | None = None
    environmentVariables: dict[str, ScalarSetting] | None = None
    startupParameters: dict[str, ScalarSetting] | None = None
    modelServiceGroupUuids: list[Short] | None = None


#: One member per deployment platform; a new platform is one class here plus its entry below.
Deployment = Annotated[
    Union[FabricDeployment, ModelStudioDeployment, ZStackDeployment],  # noqa: UP007
    Field(discriminator="platform"),
]
DEPLOYMENT_VARIANTS: Mapping[str, type[Resource]] = {
    "fabric": FabricDeployment,
    "modelstudio": ModelStudioDeployment,
    "zstack": ZStackDeployment,
}
#: ``models`` holds Fabric models (the default) and ZStack model services.
MODEL_VARIANTS: Mapping[str, type[Resource]] = {"fabric": Model, "zstack": ZStackModelService}

RESOURCE_TYPES: Mapping[str, Any] = {
    "workspaces": Workspace,
    "endpoints": Endpoint,
    "models": Model,
    "deployments": Deployment,
}


def resource_class(section: str, raw: Any) -> type[Resource] | None:
    """The model class a raw resource of ``section`` will be validated with, if it can be told."""
    if section == "models":
        chosen = raw.get("platform") if isinstance(raw, dict) else None
        return MODEL_VARIANTS.get(chosen if isinstance(chosen, str) else "fabric", Model)
    if section != "deployments":
        cls: type[Resource] = RESOURCE_TYPES[section]
        return cls
    platform = raw.get("platform") if isinstance(raw, dict) else None
    return DEPLOYMENT_VARIANTS.get(platform) if isinstance(platform, str) else None


# -- policy ----------------------------------------------------------------------------------------

POLICY_ACTIONS = ("create", "update", "replace", "delete")
#: The checks a rule can make; a rule makes exactly one.
POLICY_CHECKS = (
    "deny",
    "require_approval",
    "max_monthly_cost",
    "max_monthly_increase",
    "allowed_platforms",
    "allowed_specs",
    "allowed_regions",
)
_GLOB = re.compile(r"[A-Za-z0-9_.*?\[\]!-]{1,200}")
_APPROVER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")
_GLOB_RULE = "an address glob like 'deployments.*' or 'workspaces.prod-?'"
_APPROVER_RULE = "a name: letters, digits, '-', '_', '.', '@'"
Glob = Annotated[str, _str(_text(_GLOB_RULE, pattern=_GLOB, max_len=200, deferred=False))]
Approver = Annotated[str, _str(_text(_APPROVER_RULE, pattern=_APPROVER, max_len=100, deferred=False))]
PolicyAction = Annotated[str, _str(_choice(POLICY_ACTIONS))]
PlatformName = Annotated[str, _str(_choice(("fabric", "modelstudio", "zstack")))]


class ApprovalBlock(Block):
    """Named approvals a change needs: ``count`` of ``approvers`` (``--approve``/``RECONCILER_APPROVERS``)."""

    approvers: list[Approver]
    count: Count1 = 1
    actions: list[PolicyAction] = Field(default_factory=lambda: ["delete", "replace"])

    @field_validator("approvers")
    @classmethod
    def _someone(cls, value: list[str]) -> list[str]:
        if not value:
            _fail("approvers", "name at least one approver")
        return value

    @field_validator("count")
    @classmethod
    def _reachable(cls, value: int, info: ValidationInfo) -> int:
        approvers = info.data.get("approvers")
        if isinstance(approvers, list) and approvers and value > len(set(approvers)):
            _fail("count", f"is {value}, but only {len(set(approvers))} approvers are named")
        return value


class PolicyRule(Block):
    """One rule: exactly one check (:data:`POLICY_CHECKS`), on the resources matching ``addresses``.

    ``override: true`` lets ``apply --allow-policy-override <rule>`` proceed when it fails.
    ``unknown_cost`` (cost caps only): ``ignore`` leaves resources without a known
    price out of the sum (and says so), ``fail`` fails the rule when there are any.
    """

    description: Setting | None = None
    addresses: list[Glob] = Field(default_factory=lambda: ["*"])
    override: Bool = False
    deny: list[PolicyAction] | None = None
    require_approval: ApprovalBlock | None = None
    max_monthly_cost: NonNegativeNumber | None = None
    max_monthly_increase: NonNegativeNumber | None = None
    unknown_cost: Annotated[str, _str(_choice(("ignore", "fail")))] = "ignore"
    allowed_platforms: list[PlatformName] | None = None
    allowed_specs: list[Setting] | None = None
    allowed_regions: list[Setting] | None = None

    @model_validator(mode="after")
    def _one_check(self) -> PolicyRule:
        found = [c for c in POLICY_CHECKS if getattr(self, c) is not None]
        if len(found) != 1:
            what = f"found {', '.join(found)}" if found else "found none"
            _fail("check", f"a rule makes exactly one check, one of: {', '.join(POLICY_CHECKS)} ({what})")
        caps = ("max_monthly_cost", "max_monthly_increase")
        if "unknown_cost" in self.model_fields_set and found[0] not in caps:
            _fail("unknown_cost", "unknown_cost goes with max_monthly_cost or max_monthly_increase")
        if self.deny is not None and not self.deny:
            _fail("deny", "deny: name at least one action (delete, replace, create, update)")
        return self

    @property
    def check(self) -> str:
        return next(c for c in POLICY_CHECKS if getattr(self, c) is not None)


class PolicyBlock(Block):
    """The stack's ``policy:`` section, and the whole of a ``--policy`` file: rules by name."""

    rules: dict[Key, PolicyRule] = Field(default_factory=dict)


# -- the file --------------------------------------------------------------------------------------


class StackFile(Block):
    """The whole stack file (its JSON Schema is the stack file schema)."""

    stack: StackName
    providers: Providers | None = None
    backend: Backend | None = None
    variables: dict[Identifier, Any] = Field(default_factory=dict)
    outputs: dict[Identifier, Any] = Field(default_factory=dict)
    policy: PolicyBlock | None = None
    workspaces: dict[Key, Workspace] = Field(default_factory=dict)
    endpoints: dict[Key, Endpoint] = Field(default_factory=dict)
    models: dict[Key, Model] = Field(default_factory=dict)
    deployments: dict[Key, Deployment] = Field(default_factory=dict)


def plain(model: BaseModel, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The fields the user set, as plain values (``Deferred`` kept), under their YAML names."""
    skip = set(exclude)
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        if name in skip or name not in model.model_fields_set:
            continue
        value = getattr(model, name)
        if value is not None:
            out[info.alias or name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return plain(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -- errors ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """A problem at YAML location ``loc``, shown at ``line_loc``'s line (its key's if ``key_line``)."""

    loc: Loc
    message: str
    line_loc: Loc
    key_line: bool = False


def field_errors(error: ValidationError, root: Any, prefix: Loc = ()) -> list[FieldError]:
    """Translate pydantic's errors for ``root`` (a type) validated at location ``prefix``."""
    out: list[FieldError] = []
    for item in error.errors(include_url=False):
        loc, found = _walk(root, tuple(item["loc"]))
        at, kind, message = (*prefix, *loc), item["type"], item["msg"]
        if kind == "missing":
            out.append(FieldError(at, "field required", at[:-1], key_line=True))
        elif kind == "extra_forbidden":
            names = fields_of(_walk(root, tuple(item["loc"][:-1]))[1])
            out.append(FieldError(at, f"unknown field{allowed(str(at[-1]), names)}", at, key_line=True))
        elif loc and loc[-1] == "[key]":
            out.append(FieldError(at[:-1], message, at[:-1], key_line=True))
        elif kind == "union_tag_not_found":
            tags = ", ".join(_tags(found))
            out.append(FieldError((*at, "platform"), f"field required; one of: {tags}", at, key_line=True))
        elif kind == "union_tag_invalid":
            tag = str(item.get("ctx", {}).get("tag", ""))
            message = f"unknown platform {tag!r}{allowed(tag, _tags(found))}"
            out.append(FieldError((*at, "platform"), message, (*at, "platform")))
        else:
            expected = _EXPECTED.get(kind)
            message = f"must be a {expected}, not a {describe(item['input'])}" if expected else message
            out.append(FieldError(at, message, at))
    return out


_EXPECTED = {
    "model_type": "mapping",
    "model_attributes_type": "mapping",
    "dict_type": "mapping",
    "list_type": "list",
}


def fields_of(tp: Any) -> list[str]:
    """A model's YAML field names: its own first, then inherited ones (``lifecycle``, tuning knobs)."""
    found = [m for m in _unwrap(tp) if isinstance(m, type) and issubclass(m, BaseModel)]
    if not found:
        return []
    bases = [b for b in found[0].__mro__[1:] if isinstance(b, type) and issubclass(b, Block)]
    inherited = {name for base in bases for name in base.model_fields}
    names = sorted(found[0].model_fields, key=lambda name: name in inherited)
    return [found[0].model_fields[name].alias or name for name in names]


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives a type allows: Annotated and Optional removed, unions spread out."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, type(int | None)):
        return [m for arg in get_args(tp) for m in _unwrap(arg) if m is not type(None)]
    return [tp]


def _tag(model: Any) -> str | None:
    """The ``platform`` literal a model is selected by in a discriminated union."""
    is_model = isinstance(model, type) and issubclass(model, BaseModel)
    field = model.model_fields.get("platform") if is_model else None
    args = get_args(field.annotation) if field is not None and get_origin(field.annotation) is Literal else ()
    return str(args[0]) if len(args) == 1 else None


def _tags(options: Any) -> list[str]:
    return [t for m in _unwrap(options) if (t := _tag(m)) is not None]


def _walk(root: Any, loc: tuple[Any, ...]) -> tuple[Loc, Any]:
    """Drop discriminator tags from a pydantic ``loc``; return it and the type found at its end."""
    out: list[str | int] = []
    current: Any = root
    for part in loc:
        options = _unwrap(current)
        tagged = [m for m in options if _tag(m) == part]
        if tagged and part not in fields_of(tagged[0]):
            current = tagged[0]
            continue
        out.append(part)
        current = next((t for option in options if (t := _child(option, part)) is not None), None)
    return tuple(out), current


def _child(option: Any, part: Any) -> Any:
    if isinstance(option, type) and issubclass(option, BaseModel):
        return next((f.annotation for n, f in option.model_fields.items() if part in (n, f.alias)), None)
    if get_origin(option) in (dict, list) and part != "[key]":
        return get_args(option)[-1]
    return None
