"""ZStack AI model services, the pure half: kinds, desired attributes, live objects normalised.

Two kinds describe one model served on ZStack:

* ``model_service`` (the template; no status): name, description, yaml,
  requestCpu, requestMemory (bytes), gpuComputeCapability, startCommand,
  pythonVersion, condaVersion, type (Endpoint | FineTune | ModelEval | App),
  framework, source (Other | Bentoml | HuggingFace), modelCenterUuid,
  installPath, system, containerCommand, containerArgs, supportDistributed,
  vendorToSpecUuidsMap. Add-only, so forcing replacement: modelCenterUuid,
  installPath, system, condaVersion. Fields UpdateModelService takes but the
  inventory never shows (environmentParameters, servicePorts, ...) are not
  offered: they could never be compared with what is live.
* ``model_service_instance_group`` (what DeployModelService creates): name,
  description, type (VirtualMachine | Container), zoneUuid, modelUuid, cpuNum,
  memorySize (bytes), environmentVariables, startupParameters (string maps;
  numbers and booleans in the stack become strings), modelServiceGroupUuids,
  and modelServiceUuid (from the reference ``model_service``, or given).
  UpdateModelServiceInstanceGroup takes only name, description,
  environmentVariables and startupParameters; every other field forces
  replacement. Status ``Deploying`` -> ``ServiceBootingUp`` -> ``Running``;
  ``Failed`` is final.

Attribute names are ZStack's own (camelCase), the same in desired and live.
Nothing here does I/O.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.errors import UsageError
from reconciler.providers.base import UNKNOWN, KindSpec, Lifecycle, Phase, RefValue

SERVICE = "model_service"
GROUP = "model_service_instance_group"


class GroupStatus(StrEnum):
    """Instance group statuses (PascalCase, as ZStack answers them).

    The Go SDK types ``status`` as a plain string (``ModelServiceInstanceGroupInventoryView``
    and ``ModelServiceInstanceInventoryView`` in ``pkg/view``) and defines no constants for
    it; seed 003 does not cover groups. These are the statuses a group passes through on
    Deploy (``Deploying`` -> ``ServiceBootingUp`` -> ``Running`` or ``Failed``), on an
    update that restarts it (``ServiceBootingUp``) and on Delete (``Deleting``).
    """

    DEPLOYING = "Deploying"
    SERVICE_BOOTING_UP = "ServiceBootingUp"
    RUNNING = "Running"
    FAILED = "Failed"
    DELETING = "Deleting"


GROUP_LIFECYCLE = Lifecycle(
    "zstack",
    {
        GroupStatus.DEPLOYING: Phase.IN_PROGRESS,
        GroupStatus.SERVICE_BOOTING_UP: Phase.IN_PROGRESS,
        GroupStatus.RUNNING: Phase.READY,
        GroupStatus.FAILED: Phase.FAILED,
        GroupStatus.DELETING: Phase.DELETING,
    },
)
_QUERY_OPERATORS = ("!=", ">=", "<=", "!?=", "!~=", "~=", "?=", "=")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class KindInfo:
    spec: KindSpec
    noun: str  # QueryModelService, DeleteModelServiceInstanceGroup
    collection: str  # query path, relative to /zstack/v1
    fields: tuple[str, ...]  # stack fields, sent on create
    updatable: tuple[str, ...]
    required: tuple[str, ...]


KIND_INFO: Mapping[str, KindInfo] = {
    SERVICE: KindInfo(
        KindSpec(
            SERVICE,
            force_new=_words("modelCenterUuid installPath system condaVersion"),
            read_only=_words("uuid readme size hasNewVersion version cpuArchitectures modelServiceRefs")
            | _words("modelServiceImages createDate lastOpDate"),
            # every stack field is in the Go SDK's ModelServiceInventoryView
            read_back=_words("name description yaml requestCpu requestMemory gpuComputeCapability")
            | _words("startCommand pythonVersion condaVersion type framework source modelCenterUuid")
            | _words("installPath system containerCommand containerArgs supportDistributed")
            | {"vendorToSpecUuidsMap"},
            client_id=True,
        ),
        "ModelService", "/ai/model-services",
        ("name", "description", "yaml", "requestCpu", "requestMemory", "gpuComputeCapability", "startCommand",
         "pythonVersion", "condaVersion", "type", "framework", "source", "modelCenterUuid", "installPath",
         "system", "containerCommand", "containerArgs", "supportDistributed", "vendorToSpecUuidsMap"),
        ("name", "description", "yaml", "requestCpu", "requestMemory", "gpuComputeCapability", "startCommand",
         "pythonVersion", "type", "framework", "source", "containerCommand", "containerArgs",
         "supportDistributed", "vendorToSpecUuidsMap"),
        ("name", "yaml", "requestCpu", "requestMemory", "installPath", "startCommand", "modelCenterUuid"),
    ),
    GROUP: KindInfo(
        KindSpec(
            GROUP,
            force_new=_words("type zoneUuid modelUuid cpuNum memorySize modelServiceGroupUuids")
            | {"modelServiceUuid"},
            read_only=_words("uuid status instances modelServiceType yaml supportMetrics createDate")
            | {"lastOpDate"},
            asynchronous=True,
            # deploy inputs the instance group view (Go SDK pkg/view) does not carry
            input_only=_words("zoneUuid cpuNum memorySize environmentVariables startupParameters")
            | {"modelServiceGroupUuids"},
            read_back=_words("name description type modelUuid modelServiceUuid"),
            lifecycle=GROUP_LIFECYCLE,
            client_id=True,
        ),
        "ModelServiceInstanceGroup", "/ai/model-services/instances/groups",
        ("name", "description", "type", "zoneUuid", "modelUuid", "cpuNum", "memorySize",
         "environmentVariables", "startupParameters", "modelServiceGroupUuids"),
        ("name", "description", "environmentVariables", "startupParameters"),
        ("name", "type", "zoneUuid", "modelServiceUuid"),
    ),
}  # fmt: skip
KINDS: Mapping[str, KindSpec] = {name: k.spec for name, k in KIND_INFO.items()}

_CHOICES = {
    (SERVICE, "type"): ("Endpoint", "FineTune", "ModelEval", "App"),
    (SERVICE, "source"): ("Other", "Bentoml", "HuggingFace"),
    (GROUP, "type"): ("VirtualMachine", "Container"),
}
_INTEGERS = frozenset({"requestCpu", "requestMemory", "cpuNum", "memorySize"})
_BOOLEANS = frozenset({"system", "supportDistributed"})
_STRING_MAPS = frozenset({"environmentVariables", "startupParameters"})


# -- the pure half ------------------------------------------------------------------


def kind_of(kind: str) -> KindInfo:
    if kind not in KIND_INFO:
        raise ValueError(f"zstack has no kind {kind!r}; kinds: {', '.join(KIND_INFO)}")
    return KIND_INFO[kind]


def desired_attributes(
    kind: str, attrs: Mapping[str, Any], refs: Mapping[str, RefValue], defaults: Mapping[str, str | None]
) -> dict[str, Any]:
    k = kind_of(kind)
    literal = ("modelServiceUuid",) if kind == GROUP else ()
    unknown = sorted(set(attrs) - set(k.fields) - set(literal))
    if unknown:
        raise UsageError(
            f"zstack {kind}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(k.fields)}"
        )
    out: dict[str, Any] = {f: _plain(attrs[f]) for f in k.fields if f in attrs}
    if kind == SERVICE and "modelCenterUuid" not in out and defaults.get("model_center_uuid"):
        out["modelCenterUuid"] = defaults["model_center_uuid"]
    if kind == GROUP:
        if "model_service" in refs:
            out["modelServiceUuid"] = refs["model_service"].id
        elif "modelServiceUuid" in attrs:
            out["modelServiceUuid"] = attrs["modelServiceUuid"]
        if "zoneUuid" not in out and defaults.get("zone_uuid"):
            out["zoneUuid"] = defaults["zone_uuid"]
        for name in _STRING_MAPS & set(out):
            out[name] = _string_map(kind, name, out[name])
    missing = [f for f in k.required if f not in out]
    if missing:
        hints = {
            "modelServiceUuid": "reference `model_service`",
            "zoneUuid": "or set providers.zstack.zone_uuid",
        }
        shown = ", ".join(f"{f} ({hints[f]})" if f in hints else f for f in missing)
        raise UsageError(f"zstack {kind}: missing required field(s): {shown}")
    for name, value in out.items():
        _check_type(kind, name, value)
    return out


def _check_type(kind: str, name: str, value: Any) -> None:
    if value is UNKNOWN:
        return
    if name in _INTEGERS:
        ok, expected = isinstance(value, int) and not isinstance(value, bool) and value >= 0, "a whole number"
    elif name in _BOOLEANS:
        ok, expected = isinstance(value, bool), "true or false"
    elif name == "modelServiceGroupUuids":
        ok, expected = (
            isinstance(value, builtins.list) and all(isinstance(v, str) for v in value),
            "a list of uuids",
        )
    elif name in _STRING_MAPS or name == "vendorToSpecUuidsMap":
        ok, expected = isinstance(value, dict), "a mapping"
    else:
        ok, expected = isinstance(value, str), "a string"
    choices = _CHOICES.get((kind, name))
    if ok and choices and value not in choices:
        ok, expected = False, "one of " + ", ".join(choices)
    if not ok:
        raise UsageError(f"zstack {kind}: {name} must be {expected}, not {value!r}")


def _string_map(kind: str, name: str, value: Any) -> dict[str, str]:
    """Environment variables and startup parameters: strings only; numbers and booleans become strings."""
    if not isinstance(value, Mapping):
        raise UsageError(f"zstack {kind}: {name} must be a mapping of names to strings")
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            out[str(key)] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            out[str(key)] = str(item)
        else:
            raise UsageError(f"zstack {kind}: {name}.{key} must be a string, not {item!r}")
    return out


def normalise(kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    k = KIND_INFO[kind]
    keys = (*k.fields, *sorted(k.spec.read_only), *(("modelServiceUuid",) if kind == GROUP else ()))
    out = {f: obj[f] for f in keys if f in obj}
    if kind == GROUP and isinstance(obj.get("instances"), builtins.list):
        out["instances"] = [
            {f: i.get(f) for f in ("uuid", "status", "url")} for i in obj["instances"] if isinstance(i, dict)
        ]
    return out


def request_body(kind: str, want: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    body = {f: want[f] for f in fields if f in want}

    def unknown(value: Any) -> bool:
        if isinstance(value, dict | builtins.list):
            return any(unknown(v) for v in (value.values() if isinstance(value, dict) else value))
        return value is UNKNOWN

    if unknown(body) or unknown(want.get("modelServiceUuid")):
        raise ValueError(f"zstack {kind}: a value is still unknown; resolve references before sending")
    return body


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, builtins.list | tuple):
        return [_plain(v) for v in value]
    return value


def name_condition(field: str, value: str) -> str | None:
    """``field=value`` for ``q``, or None when ZStack would read another operator in it."""
    text = f"{field}={value}"
    first = next((op for op in _QUERY_OPERATORS if op in text), None)
    return text if first == "=" and text.index("=") == len(field) else None
