"""The deployable-model catalogue of Model Studio: models, plans, specs, base capacities, prices.

The data lives in ``reconciler/data/modelstudio_catalogue.json`` (sources and
assumptions are listed inside it); this module reads it once into frozen
values. The emulator validates create and scale calls against it and answers
``GET /deployments/models`` from it; a cost estimate can read the prices.

Prices are USD, as the platform's "Create deployment" page prints them. A
spec's ``hourly_price`` and ``monthly_price`` are for one bundle of
``base_capacity`` capacity units (the page's row ``MUn x k``); PTU prices are
per 10K input TPM and per 1K output TPM, per hour (pay-as-you-go) and per day
(subscription), with a separate thinking-output price where the page gives
one; token prices are per 1K tokens. ``None`` means "not published in the
sources", never zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

PLANS: tuple[str, ...] = ("mu", "cu", "ptu", "lora")
RESOURCE = "modelstudio_catalogue.json"

Prices = Mapping[str, float | None]  # region -> price


@dataclass(frozen=True)
class Spec:
    """A model-unit spec (``MU1``): capacity comes in steps of ``base_capacity``."""

    name: str
    base_capacity: int
    hourly_price: Prices
    monthly_price: Prices
    # region -> the page's note on the row ("MU8 x 1 (model compression)")
    variant: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class PtuPrice:
    input_per_10k_tpm_hour: Prices
    output_per_1k_tpm_hour: Prices
    # thinking-mode output where the page gives one; None (or empty): priced as output
    thinking_output_per_1k_tpm_hour: Prices = field(default_factory=lambda: MappingProxyType({}))
    input_per_10k_tpm_day: Prices = field(default_factory=lambda: MappingProxyType({}))
    output_per_1k_tpm_day: Prices = field(default_factory=lambda: MappingProxyType({}))
    thinking_output_per_1k_tpm_day: Prices = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class TokenPrice:
    """Billing by token usage (LoRA shared deployment), per 1K tokens."""

    input_per_1k_tokens: Prices
    output_per_1k_tokens: Prices
    thinking_output_per_1k_tokens: Prices


@dataclass(frozen=True)
class DeployableModel:
    """One model that can be deployed, with what each plan needs."""

    model_name: str
    base_model: str
    model_source: str  # "base" (system model) or "custom" (fine-tuned)
    plans: tuple[str, ...]
    regions: tuple[str, ...]
    base_capacity: int  # capacity step of the `cu` and `lora` plans
    max_context_length: int | None
    thinking: bool
    specs: Mapping[str, Spec]
    ptu_price: PtuPrice | None
    token_price: TokenPrice | None = None

    def view(self, *, detailed: bool) -> dict[str, Any]:
        """As ``GET /deployments/models`` lists it; ``detailed`` (``version=v1.0``) adds plans."""
        shown: dict[str, Any] = {"model_name": self.model_name, "base_capacity": self.base_capacity}
        if detailed:
            shown["plans"] = [self._plan_view(plan) for plan in self.plans]
        return shown

    def _plan_view(self, plan: str) -> dict[str, Any]:
        if plan != "mu":
            return {"plan": plan, "templates": []}
        templates = [
            {
                "template_id": spec.name,
                "template_type": "COUPLED",
                "template_version": "v1",
                "roles": {
                    "unified": {
                        "model_unit_spec": spec.name,
                        "capacity_unit_per_instance": spec.base_capacity,
                    }
                },
            }
            for spec in self.specs.values()
        ]
        return {"plan": plan, "templates": templates}


@dataclass(frozen=True)
class Catalogue:
    models: Mapping[str, DeployableModel]
    regions: tuple[str, ...]
    ptu_defaults: Mapping[str, int]
    currency: str

    def model(self, name: str) -> DeployableModel | None:
        return self.models.get(name)

    def of_source(self, source: str) -> list[DeployableModel]:
        return [m for m in self.models.values() if m.model_source == source]

    def with_custom(self, names: Iterable[str]) -> Catalogue:
        """This catalogue plus the fine-tuned models ``names`` (an account's "My Models").

        A fine-tuned model is named ``<base>-ft-<id>`` (seed 002's LoRA example deploys
        ``qwen3-8b-ft-202511132025-0260``); it deploys with the plans, specs and capacities
        of ``<base>``, the longest catalogue model its name starts with.
        """
        models = dict(self.models)
        for name in names:
            if name in models:
                continue
            bases = [m for m in self.models.values() if name.startswith(f"{m.model_name}-ft-")]
            if not bases:
                raise CatalogueError(f"custom model {name} is not <catalogue model>-ft-<id>")
            base = max(bases, key=lambda m: len(m.model_name))
            models[name] = replace(base, model_name=name, base_model=base.model_name, model_source="custom")
        return replace(self, models=MappingProxyType(models))


class CatalogueError(Exception):
    """The catalogue file is malformed (a packaging bug, not a user error)."""


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    """The packaged catalogue (read once per process)."""
    text = resources.files("reconciler").joinpath("data", RESOURCE).read_text(encoding="utf-8")
    return parse_catalogue(json.loads(text))


def parse_catalogue(document: Any) -> Catalogue:
    """Validate a catalogue document; raises :class:`CatalogueError` naming what is wrong."""
    doc = _mapping(document, "catalogue")
    if doc.get("format_version") != 1:
        raise CatalogueError(f"catalogue format_version {doc.get('format_version')!r} is not supported")
    regions = tuple(str(r) for r in _list(doc.get("regions"), "regions"))
    models: dict[str, DeployableModel] = {}
    for raw in _list(doc.get("models"), "models"):
        model = _model(_mapping(raw, "model"), regions)
        if model.model_name in models:
            raise CatalogueError(f"model {model.model_name} is listed twice")
        models[model.model_name] = model
    defaults = {
        str(k): _int(v, f"ptu_defaults.{k}", 0)
        for k, v in _mapping(doc["ptu_defaults"], "ptu_defaults").items()
    }
    return Catalogue(
        MappingProxyType(models), regions, MappingProxyType(defaults), str(doc.get("currency", "USD"))
    )


def _model(raw: Mapping[str, Any], regions: tuple[str, ...]) -> DeployableModel:
    name = raw.get("model_name")
    if not isinstance(name, str) or not name:
        raise CatalogueError(f"a model has no model_name: {raw!r}")
    plans = tuple(str(p) for p in _list(raw.get("plans"), f"{name}.plans"))
    if not plans or any(p not in PLANS for p in plans):
        raise CatalogueError(f"{name}: plans must be some of {', '.join(PLANS)}, not {plans}")
    specs = {
        str(spec): Spec(
            name=str(spec),
            base_capacity=_int(body.get("base_capacity"), f"{name}.{spec}.base_capacity", 1),
            hourly_price=_prices(body.get("hourly_price"), regions, f"{name}.{spec}.hourly_price"),
            monthly_price=_prices(body.get("monthly_price", {}), regions, f"{name}.{spec}.monthly_price"),
            variant=MappingProxyType(
                {
                    str(k): str(v)
                    for k, v in _mapping(body.get("variant", {}), f"{name}.{spec}.variant").items()
                }
            ),
        )
        for spec, body in (
            (s, _mapping(b, f"{name}.{s}")) for s, b in _mapping(raw.get("specs"), name).items()
        )
    }
    if "mu" in plans and not specs:
        raise CatalogueError(f"{name}: plan mu needs at least one spec")
    ptu_raw = raw.get("ptu_price")
    ptu = None
    if ptu_raw is not None:
        body = _mapping(ptu_raw, f"{name}.ptu_price")
        ptu = PtuPrice(
            _prices(body.get("input_per_10k_tpm_hour"), regions, f"{name}.ptu_price.input"),
            _prices(body.get("output_per_1k_tpm_hour"), regions, f"{name}.ptu_price.output"),
            *(
                _prices(body.get(key, {}), regions, f"{name}.ptu_price.{key}")
                for key in (
                    "thinking_output_per_1k_tpm_hour",
                    "input_per_10k_tpm_day",
                    "output_per_1k_tpm_day",
                    "thinking_output_per_1k_tpm_day",
                )
            ),
        )
    token = None
    if raw.get("token_price") is not None:
        body = _mapping(raw["token_price"], f"{name}.token_price")
        token = TokenPrice(
            *(
                _prices(body.get(key, {}), regions, f"{name}.token_price.{key}")
                for key in ("input_per_1k_tokens", "output_per_1k_tokens", "thinking_output_per_1k_tokens")
            )
        )
    context = raw.get("max_context_length")
    return DeployableModel(
        model_name=name,
        base_model=str(raw.get("base_model") or name),
        model_source=str(raw.get("model_source", "base")),
        plans=plans,
        regions=tuple(str(r) for r in _list(raw.get("regions"), f"{name}.regions")),
        base_capacity=_int(raw.get("base_capacity", 1), f"{name}.base_capacity", 1),
        max_context_length=None if context is None else _int(context, f"{name}.max_context_length", 1),
        thinking=bool(raw.get("thinking", False)),
        specs=MappingProxyType(specs),
        ptu_price=ptu,
        token_price=token,
    )


def _prices(raw: Any, regions: tuple[str, ...], where: str) -> Prices:
    body = _mapping(raw, where)
    out: dict[str, float | None] = {}
    for region in regions:
        value = body.get(region)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise CatalogueError(f"{where}.{region} must be a non-negative number or null, not {value!r}")
        out[region] = None if value is None else float(value)
    return MappingProxyType(out)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CatalogueError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise CatalogueError(f"{where} must be a list")
    return value


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CatalogueError(f"{where} must be an integer >= {minimum}, not {value!r}")
    return value
