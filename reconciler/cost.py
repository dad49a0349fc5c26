"""Monthly cost of a plan, in the manner of Infracost: before, after and the difference.

Prices are Model Studio's published ones, shipped as data
(``reconciler/data/modelstudio_catalogue.json``, read by
:mod:`reconciler.emulators.modelstudio_catalogue`) and extended or overridden
by pricing files (``--pricing FILE``, ``RECONCILER_PRICING``): each is a
partial catalogue in the same JSON (or YAML) shape, merged over the shipped
one in order: models by ``model_name``, specs by name, prices by region.

How a deployment's hourly price is found (USD):

* plan ``mu``: the page's formula, hours x model units x the hourly price per
  unit, the per-unit price being the listed bundle price / ``k`` for a row
  ``MUn x k`` (``k`` is the spec's ``base_capacity``): capacity ``c`` costs
  ``c / k`` x the bundle's hourly price per hour (Beijing qwen3-8b MU1 x 2 at
  $14.852/h: capacity 2 is $14.852/h, capacity 4 is $29.704/h); with
  ``billing_method: PRE_PAY`` the bundle's monthly (subscription) price x
  ``c / k`` / 730 instead;
* plan ``ptu``: ``input_tpm / 10,000`` x the input price + ``output_tpm /
  1,000`` x the output price + ``thinking_output_tpm / 1,000`` x the thinking
  output price (the output price where the page gives none); missing amounts
  take the catalogue's ``ptu_defaults``;
* plans ``cu`` and ``lora``: no published prices (unknown).

Monthly = hourly x 730 hours (:data:`~reconciler.assessment.HOURS_PER_MONTH`). The
region is ``providers.modelstudio.region``, else the url's host
(``dashscope.aliyuncs.com`` is ``cn-beijing``, ``dashscope-intl.aliyuncs.com``
is ``ap-southeast-1``), else unknown. DataArts Fabric and ZStack publish no
prices: their resources are listed as unknown, never as zero.

Pure except :func:`load_pricing`, which reads the pricing files.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from reconciler.assessment import HOURS_PER_MONTH, CostBasis, CostEstimate, CostLine
from reconciler.emulators.modelstudio_catalogue import RESOURCE, Catalogue, CatalogueError, parse_catalogue
from reconciler.errors import UsageError
from reconciler.plan import Action, Change, Plan
from reconciler.providers.base import UNKNOWN

PRICING_ENV = "RECONCILER_PRICING"
"""Pricing files (separated by the OS path separator, ``:`` on Linux) merged before ``--pricing`` ones."""

MODELSTUDIO_HOSTS: Mapping[str, str] = {
    "dashscope.aliyuncs.com": "cn-beijing",
    "dashscope-intl.aliyuncs.com": "ap-southeast-1",
}
_FABRIC_HOST = re.compile(r"fabric(?:-ep)?\.([a-z0-9-]+)\.myhuaweicloud\.com")
NO_PRICES: Mapping[str, str] = {
    "fabric": "DataArts Fabric publishes no prices",
    "zstack": "ZStack runs on-premises and has no prices",
}


# -- regions -------------------------------------------------------------------


def region_of(platform: str, block: Mapping[str, Any] | None) -> str | None:
    """The region a provider block points at: its ``region``, else the url's host, else None.

    ZStack is on-premises: it has no region (always None).
    """
    if block is None or platform == "zstack":
        return None
    region = block.get("region")
    if isinstance(region, str) and region:
        return region
    url = block.get("url")
    host = urlparse(url).hostname if isinstance(url, str) and "://" in url else None
    if host is None:
        return None
    if platform == "modelstudio":
        return MODELSTUDIO_HOSTS.get(host)
    match = _FABRIC_HOST.fullmatch(host) if platform == "fabric" else None
    return match.group(1) if match else None


# -- the catalogue -------------------------------------------------------------


def shipped_document() -> dict[str, Any]:
    text = resources.files("reconciler").joinpath("data", RESOURCE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def merge_pricing(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` (a partial catalogue) merged over ``base``; neither is changed.

    Top-level ``regions`` are united; ``models`` are matched by ``model_name``
    (a new one is added and must be complete); mappings merge key by key
    (specs by name, prices by region); any other value replaces the old one.
    """
    out = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if key == "regions" and isinstance(value, list) and isinstance(out.get("regions"), list):
            out["regions"] = [*out["regions"], *(r for r in value if r not in out["regions"])]
        elif key == "models" and isinstance(value, list) and isinstance(out.get("models"), list):
            models: list[Any] = out["models"]
            index = {m.get("model_name"): i for i, m in enumerate(models) if isinstance(m, dict)}
            for model in value:
                name = model.get("model_name") if isinstance(model, dict) else None
                if name in index and isinstance(model, dict):
                    models[index[name]] = _deep_merge(models[index[name]], model)
                else:
                    models.append(copy.deepcopy(model))
        else:
            out[key] = _deep_merge(out.get(key), value)
    return out


def _deep_merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = _deep_merge(base.get(key), value)
        return out
    return copy.deepcopy(extra)


def _read_pricing_file(path: str) -> Mapping[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"pricing file {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"pricing file {path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"pricing file {path}: not valid JSON or YAML{where}") from None
    if not isinstance(data, dict):
        raise UsageError(f"pricing file {path}: expected an object like the shipped catalogue, with 'models'")
    version = data.get("format_version", 1)
    if version != 1:
        raise UsageError(f"pricing file {path}: format_version {version!r} is not supported (this reads 1)")
    return data


def load_pricing(files: Sequence[str] = ()) -> Catalogue:
    """The shipped catalogue with every pricing file in ``files`` merged over it, in order."""
    document = shipped_document()
    for path in files:
        document = merge_pricing(document, _read_pricing_file(path))
        try:
            parse_catalogue(document)
        except CatalogueError as exc:
            raise UsageError(f"pricing file {path}: {exc}") from None
    return parse_catalogue(document)


def pricing_files(
    env_value: str | None, flags: Iterable[str], recorded: Iterable[str] = ()
) -> tuple[str, ...]:
    """Recorded (saved plan), then ``RECONCILER_PRICING``, then ``--pricing`` files; each once."""
    from_env = [p for p in (env_value or "").split(os.pathsep) if p.strip()]
    return tuple(dict.fromkeys([*recorded, *from_env, *flags]))


# -- prices ----------------------------------------------------------------------


def _money(value: float) -> str:
    return f"${value:,.3f}".rstrip("0").rstrip(".") if value % 1 else f"${value:,.0f}"


def _int(value: Any) -> int | None:
    if value is UNKNOWN or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def modelstudio_hourly(
    attrs: Mapping[str, Any], catalogue: Catalogue, region: str | None
) -> tuple[float | None, str]:
    """The hourly price of one Model Studio deployment and how it was found (or why it is unknown)."""
    model_name = attrs.get("model_name")
    plan = attrs.get("plan", "mu")
    if not isinstance(model_name, str) or not isinstance(plan, str):
        return None, "model or plan known only after apply"
    if region is None:
        return None, "region unknown: set providers.modelstudio.region (cn-beijing or ap-southeast-1)"
    if region not in catalogue.regions:
        return None, f"no prices for region {region} in the pricing catalogue"
    model = catalogue.model(model_name)
    if model is None:
        return None, f"{model_name} is not in the pricing catalogue"
    if plan == "mu":
        return _mu_hourly(attrs, model_name, model.specs, region)
    if plan == "ptu":
        price = model.ptu_price
        pin = price.input_per_10k_tpm_hour.get(region) if price else None
        pout = price.output_per_1k_tpm_hour.get(region) if price else None
        pthink = price.thinking_output_per_1k_tpm_hour.get(region) if price else None
        if pin is None or pout is None:
            return None, f"no published provisioned-throughput price for {model_name} in {region}"
        given = attrs.get("ptu_capacity") if isinstance(attrs.get("ptu_capacity"), Mapping) else {}
        assert isinstance(given, Mapping)
        amounts = {k: _int(given.get(k, d)) for k, d in catalogue.ptu_defaults.items()}
        if any(v is None for v in amounts.values()):
            return None, "ptu_capacity known only after apply"
        tin, tout = amounts.get("input_tpm") or 0, amounts.get("output_tpm") or 0
        thinking = amounts.get("thinking_output_tpm") or 0
        pthink = pout if pthink is None else pthink
        hourly = tin / 10_000 * pin + tout / 1_000 * pout + thinking / 1_000 * pthink
        if pthink == pout:
            detail = (
                f"{model_name} PTU {tin:,} input + {tout + thinking:,} output TPM in {region} "
                f"at {_money(pin)}/10K input and {_money(pout)}/1K output TPM per hour"
            )
        else:
            detail = (
                f"{model_name} PTU {tin:,} input + {tout:,} output + {thinking:,} thinking output TPM "
                f"in {region} at {_money(pin)}/10K input, {_money(pout)}/1K output and "
                f"{_money(pthink)}/1K thinking output TPM per hour"
            )
        return hourly, detail
    return None, f"plan {plan}: no published prices"


def _mu_hourly(
    attrs: Mapping[str, Any], model_name: str, specs: Mapping[str, Any], region: str
) -> tuple[float | None, str]:
    spec_name, capacity = attrs.get("deploy_spec"), _int(attrs.get("capacity"))
    if not isinstance(spec_name, str) or capacity is None:
        return None, "deploy_spec or capacity known only after apply"
    spec = specs.get(spec_name)
    if spec is None:
        return None, f"{model_name} has no spec {spec_name} in the pricing catalogue"
    bundles = capacity / spec.base_capacity  # the page prices bundles of base_capacity units
    shown = f"{model_name} {spec_name} capacity {capacity} in {region}: {bundles:g} x"
    bundle = f"({spec_name} x {spec.base_capacity})"
    if attrs.get("billing_method") == "PRE_PAY":
        monthly = spec.monthly_price.get(region)
        if monthly is None:
            return None, f"no published subscription price for {model_name} {spec_name} in {region}"
        return monthly * bundles / HOURS_PER_MONTH, f"{shown} {_money(monthly)}/month {bundle}"
    hourly = spec.hourly_price.get(region)
    if hourly is None:
        return None, f"no published price for {model_name} {spec_name} in {region}"
    return hourly * bundles, f"{shown} {_money(hourly)}/h {bundle}"


def price_basis(attrs: Mapping[str, Any], catalogue: Catalogue, region: str | None) -> CostBasis | None:
    """What a Model Studio deployment is priced as (plans mu and ptu); None while a part is unknown."""
    model_name, plan = attrs.get("model_name"), attrs.get("plan", "mu")
    if not isinstance(model_name, str) or region is None:
        return None
    billing = "subscription" if attrs.get("billing_method") == "PRE_PAY" else "pay-as-you-go"
    if plan == "mu":
        spec, capacity = attrs.get("deploy_spec"), _int(attrs.get("capacity"))
        if not isinstance(spec, str) or capacity is None:
            return None
        return CostBasis(model_name, region, spec, str(capacity), billing)
    if plan != "ptu":
        return None
    given = attrs.get("ptu_capacity")
    held: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    amounts = {k: _int(held.get(k, d)) for k, d in catalogue.ptu_defaults.items()}
    if any(v is None for v in amounts.values()):
        return None
    words = {"input_tpm": "input", "output_tpm": "output", "thinking_output_tpm": "thinking output"}
    parts = [f"{amounts[k]:,} {words.get(k, k)}" for k in catalogue.ptu_defaults if amounts[k]]
    return CostBasis(model_name, region, "PTU", " + ".join(parts or ["0"]) + " TPM", billing)


def _hourly(
    platform: str, attrs: Mapping[str, Any] | None, catalogue: Catalogue, region: str | None
) -> tuple[float | None, str]:
    if attrs is None:
        return 0.0, ""
    if platform != "modelstudio":
        return None, NO_PRICES.get(platform, f"{platform} has no prices")
    return modelstudio_hourly(attrs, catalogue, region)


def cost_line(change: Change, catalogue: Catalogue, region: str | None) -> CostLine:
    """Before: the live (or recorded) object, 0 if none. After: what the plan leaves, 0 if deleted."""
    exists_before = change.action is not Action.CREATE and change.before is not None
    exists_after = change.action is not Action.DELETE
    before, why_before = _hourly(change.platform, change.before if exists_before else None, catalogue, region)
    after, why_after = _hourly(change.platform, change.after if exists_after else None, catalogue, region)
    if after is None:
        detail = why_after
    elif before is None:
        detail = why_before
    else:
        detail = why_after if exists_after else why_before
    basis = None
    if change.platform == "modelstudio":
        priced = change.after if exists_after else change.before
        basis = price_basis(priced, catalogue, region) if priced is not None else None
    return CostLine(change.address, change.platform, change.kind, before, after, detail, basis)


def estimate(plan: Plan, catalogue: Catalogue, region: str | None) -> CostEstimate:
    """A cost line for every resource of the plan (no-ops included), in plan order."""
    return CostEstimate(
        lines=tuple(cost_line(c, catalogue, region) for c in plan.changes),
        region=region,
        currency=catalogue.currency,
    )
