"""The Model Studio catalogue and prices against the platform's own "Create deployment" page.

Ground truth: Alibaba Cloud Model Studio, "Create deployment" (last updated
Jun 06, 2026), its tables "Billed by usage duration (Model Unit)" (row
``MUn x k``: spec MUn, base capacity k, hourly and monthly price of that
bundle of k units), "Billed by usage duration (Provisioned Throughput)" (per
10K input TPM and per 1K output TPM, per hour and per day) and "By model token
usage". The rows below are copied from the page; the cost figures are read off
it by hand, not computed from the data file. Pay-as-you-go: capacity c of a
row ``MUn x k`` costs c / k x the row's hourly price per hour; a month is 730 hours.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.cost import modelstudio_hourly
from reconciler.emulators.modelstudio_catalogue import load_catalogue

CATALOGUE = load_catalogue()
BJ, SG = "cn-beijing", "ap-southeast-1"

# (region, model code, spec, base capacity k, hourly price, monthly price), as the page lists them
MU_ROWS: list[tuple[str, str, str, int, float, float]] = [
    ("ap-southeast-1", "qwen3.6-plus-2026-04-02", "MU1", 8, 88.0, 41832.0),
    ("ap-southeast-1", "qwen3.5-397b-a17b", "MU2", 8, 112.0, 52392.0),
    ("ap-southeast-1", "qwen3.5-35b-a3b", "MU2", 8, 112.0, 52392.0),
    ("ap-southeast-1", "qwen3-32b", "MU1", 4, 44.0, 20916.0),
    ("ap-southeast-1", "qwen3-32b", "MU2", 8, 112.0, 52392.0),
    ("ap-southeast-1", "qwen3-14b", "MU1", 4, 44.0, 20916.0),
    ("ap-southeast-1", "glm-5.1", "MU2", 8, 112.0, 52392.0),
    ("ap-southeast-1", "deepseek-v4-flash", "MU1", 8, 88.0, 41832.0),
    ("ap-southeast-1", "qwen3-vl-32b-instruct", "MU2", 8, 112.0, 52392.0),
    ("ap-southeast-1", "qwen3-vl-8b-instruct", "MU1", 2, 22.0, 10458.0),
    ("cn-beijing", "qwen3.6-35b-a3b", "MU8", 1, 6.464, 3080.477),
    ("cn-beijing", "qwen3.6-35b-a3b", "MU9", 1, 7.014, 3383.024),
    ("cn-beijing", "qwen3.6-27b", "MU9", 1, 7.014, 3383.024),
    ("cn-beijing", "qwen3.6-flash-2026-04-16", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3.6-plus-2026-04-02", "MU1", 8, 59.408, 28734.256),
    ("cn-beijing", "qwen3.5-397b-a17b", "MU2", 8, 69.312, 33044.72),
    ("cn-beijing", "qwen3.5-397b-a17b", "MU3", 8, 150.72, 72577.152),
    ("cn-beijing", "qwen3.5-397b-a17b", "MU6", 16, 55.008, 26599.92),
    ("cn-beijing", "qwen3.5-122b-a10b", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen3.5-122b-a10b", "MU2", 8, 69.312, 33044.72),
    ("cn-beijing", "qwen3.5-122b-a10b", "MU6", 16, 55.008, 26599.92),
    ("cn-beijing", "qwen3.5-122b-a10b", "MU9", 2, 14.028, 6766.048),
    ("cn-beijing", "qwen3.5-35b-a3b", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3.5-35b-a3b", "MU2", 8, 69.312, 33044.72),
    ("cn-beijing", "qwen3.5-35b-a3b", "MU8", 1, 6.464, 3080.477),
    ("cn-beijing", "qwen3.5-35b-a3b", "MU9", 1, 7.014, 3383.024),
    ("cn-beijing", "qwen3.5-27b", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3.5-27b", "MU9", 1, 7.014, 3383.024),
    ("cn-beijing", "qwen3.5-9b", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3.5-9b", "MU8", 1, 6.464, 3080.477),
    ("cn-beijing", "qwen3.5-9b", "MU9", 1, 7.014, 3383.024),
    ("cn-beijing", "qwen3.5-flash-2026-02-23", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3.5-flash-2026-02-23", "MU8", 1, 6.464, 3080.477),
    ("cn-beijing", "qwen3.5-plus-2026-02-15", "MU1", 8, 59.408, 28734.256),
    ("cn-beijing", "qwen3.5-plus-2026-02-15", "MU3", 8, 150.72, 72577.152),
    ("cn-beijing", "qwen3-235b-a22b-instruct-2507", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen3-235b-a22b-instruct-2507", "MU2", 8, 69.312, 33044.72),
    ("cn-beijing", "qwen3-next-80b-a3b-instruct", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3-32b", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen3-32b", "MU6", 4, 13.752, 6649.98),
    ("cn-beijing", "qwen3-30b-a3b", "MU9", 2, 14.028, 6766.048),
    ("cn-beijing", "qwen3-30b-a3b-instruct-2507", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen3-30b-a3b-instruct-2507", "MU2", 8, 69.312, 33044.72),
    ("cn-beijing", "qwen3-8b", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3-8b", "MU2", 2, 17.328, 8261.18),
    ("cn-beijing", "qwen3-8b", "MU5", 1, 2.888, 1394.329),
    ("cn-beijing", "qwen3-4b", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3-4b", "MU5", 1, 2.888, 1394.329),
    ("cn-beijing", "qwen3-1.7b", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3-1.7b", "MU5", 1, 2.888, 1394.329),
    ("cn-beijing", "qwen3-max-2025-09-23", "MU2", 8, 69.312, 33044.72),
    ("cn-beijing", "qwen3-max-2025-09-23", "MU3", 8, 150.72, 72577.152),
    ("cn-beijing", "qwen2.5-72b-instruct", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen2.5-32b-instruct", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen2.5-14b-instruct", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen2.5-7b-instruct", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen2.5-7b-instruct", "MU5", 1, 2.888, 1394.329),
    ("cn-beijing", "qwen2.5-3b-instruct", "MU5", 1, 2.888, 1394.329),
    ("cn-beijing", "qwen-flash-2025-07-28", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen-plus-2025-07-28", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen-plus-2025-12-01", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "glm-5", "MU3", 8, 150.72, 72577.152),
    ("cn-beijing", "glm-4.7", "MU6", 16, 55.008, 26599.92),
    ("cn-beijing", "deepseek-v4-flash", "MU1", 8, 59.408, 28734.256),
    ("cn-beijing", "deepseek-v3.2", "MU2", 8, 69.312, 33044.72),
    ("cn-beijing", "MiniMax-M2.5", "MU1", 8, 59.408, 28734.256),
    ("cn-beijing", "kimi-k2.5", "MU2", 8, 69.312, 33044.72),
    ("cn-beijing", "qwen3-vl-235b-a22b-instruct", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen3-vl-235b-a22b-thinking", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen3-vl-32b-instruct", "MU2", 8, 69.312, 33044.72),
    ("cn-beijing", "qwen3-vl-8b-instruct", "MU1", 2, 14.852, 7183.564),
    ("cn-beijing", "qwen3-vl-flash-2025-10-15", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen3-vl-plus-2025-09-23", "MU1", 4, 29.704, 14367.128),
    ("cn-beijing", "qwen-vl-max-2025-08-13", "MU6", 4, 13.752, 6649.98),
    ("cn-beijing", "qwen-vl-ocr-2025-11-20", "MU6", 4, 13.752, 6649.98),
    ("cn-beijing", "qwen3.5-omni-flash", "MU8", 1, 6.464, 3080.477),
    ("cn-beijing", "qwen3.5-omni-flash", "MU9", 1, 7.014, 3383.024),
    ("cn-beijing", "qwen3.5-omni-plus", "MU9", 8, 56.112, 27064.192),
]

# (region, model code, input per 10K TPM/h, output per 1K TPM/h, thinking output per 1K TPM/h,
#  input per 10K TPM/day, output per 1K TPM/day, thinking output per 1K TPM/day)
PTU_ROWS: list[tuple[str, str, float, float, float | None, float, float, float | None]] = [
    ("ap-southeast-1", "qwen3.6-plus-2026-04-02", 1.2, 0.72, None, 14.4, 8.64, None),
    ("ap-southeast-1", "qwen3.5-plus-2026-04-20", 0.96, 0.576, None, 11.52, 6.912, None),
    ("ap-southeast-1", "qwen3-vl-plus-2025-09-23", 0.48, 0.384, None, 5.76, 4.608, None),
    ("ap-southeast-1", "deepseek-v3.2", 2.05, 0.616, None, 24.62, 7.387, None),
    ("cn-beijing", "qwen3.7-max-2026-05-20", 3.96, 1.188, None, 47.53, 14.258, None),
    ("cn-beijing", "qwen3.6-flash-2026-04-16", 0.4, 0.238, None, 4.75, 2.852, None),
    ("cn-beijing", "qwen3.6-plus-2026-04-02", 0.67, 0.397, None, 7.93, 4.753, None),
    ("cn-beijing", "qwen3.5-plus-2026-04-20", 0.26, 0.16, None, 3.17, 1.9, None),
    ("cn-beijing", "qwen3-max-2025-09-23", 1.11, 0.45, None, 13.32, 5.4, None),
    ("cn-beijing", "qwen-flash-2025-07-28", 0.06, 0.06, None, 0.72, 0.72, None),
    ("cn-beijing", "qwen-plus-2025-12-01", 0.28, 0.07, 0.28, 3.36, 0.84, 3.36),
    ("cn-beijing", "deepseek-v4-pro", 5.94, 1.188, None, 71.3, 14.26, None),
    ("cn-beijing", "deepseek-v3.2", 1.04, 0.16, None, 12.48, 1.92, None),
    ("cn-beijing", "deepseek-v3", 0.99, 0.396, None, 11.9, 4.75, None),
    ("cn-beijing", "qwen3-vl-plus-2025-09-23", 0.35, 0.35, None, 4.2, 4.2, None),
    ("cn-beijing", "glm-5.1", 2.97, 1.19, None, 35.65, 14.26, None),
]


def hourly(region: str, **attrs: Any) -> float | None:
    return modelstudio_hourly(attrs, CATALOGUE, region)[0]


def test_the_page_lists_78_model_unit_rows_and_16_ptu_rows() -> None:
    assert len(MU_ROWS) == 78 and len(set(r[:3] for r in MU_ROWS)) == 78
    assert len(PTU_ROWS) == 16


@pytest.mark.parametrize("row", MU_ROWS, ids=[f"{r[0]} {r[1]} {r[2]} x {r[3]}" for r in MU_ROWS])
def test_every_model_unit_row_of_the_page_is_in_the_catalogue(
    row: tuple[str, str, str, int, float, float],
) -> None:
    region, code, spec_name, base, hourly_price, monthly_price = row
    model = CATALOGUE.model(code)
    assert model is not None and "mu" in model.plans and region in model.regions
    spec = model.specs[spec_name]
    assert (spec.base_capacity, spec.hourly_price[region], spec.monthly_price[region]) == (
        base,
        hourly_price,
        monthly_price,
    )


def test_the_catalogue_has_no_model_unit_price_the_page_does_not_list() -> None:
    listed = {(r[0], r[1], r[2]) for r in MU_ROWS}
    priced = {
        (region, model.model_name, spec.name)
        for model in CATALOGUE.models.values()
        for spec in model.specs.values()
        for region, price in spec.hourly_price.items()
        if price is not None
    }
    assert priced == listed


def test_the_model_compression_row_keeps_spec_mu8_and_notes_the_variant() -> None:
    spec = CATALOGUE.models["qwen3.5-flash-2026-02-23"].specs["MU8"]
    assert (spec.base_capacity, spec.hourly_price[BJ], spec.monthly_price[BJ]) == (1, 6.464, 3080.477)
    assert spec.variant == {BJ: "model compression"}


@pytest.mark.parametrize("row", PTU_ROWS, ids=[f"{r[0]} {r[1]}" for r in PTU_ROWS])
def test_every_ptu_row_of_the_page_is_in_the_catalogue(row: tuple[Any, ...]) -> None:
    region, code, in_h, out_h, think_h, in_d, out_d, think_d = row
    model = CATALOGUE.model(code)
    assert model is not None and "ptu" in model.plans and region in model.regions
    price = model.ptu_price
    assert price is not None
    assert (price.input_per_10k_tpm_hour[region], price.output_per_1k_tpm_hour[region]) == (in_h, out_h)
    assert price.thinking_output_per_1k_tpm_hour[region] == think_h
    assert (price.input_per_10k_tpm_day[region], price.output_per_1k_tpm_day[region]) == (in_d, out_d)
    assert price.thinking_output_per_1k_tpm_day[region] == think_d


def test_the_catalogue_has_no_ptu_price_the_page_does_not_list() -> None:
    listed = {(r[0], r[1]) for r in PTU_ROWS}
    priced = {
        (region, model.model_name)
        for model in CATALOGUE.models.values()
        if model.ptu_price is not None
        for region, price in model.ptu_price.input_per_10k_tpm_hour.items()
        if price is not None
    }
    assert priced == listed


def test_the_token_usage_row_singapore_qwen3_14b() -> None:
    token = CATALOGUE.models["qwen3-14b"].token_price
    assert token is not None and "lora" in CATALOGUE.models["qwen3-14b"].plans
    assert token.input_per_1k_tokens[SG] == 0.00035
    assert (token.output_per_1k_tokens[SG], token.thinking_output_per_1k_tokens[SG]) == (0.0014, 0.0042)
    assert token.input_per_1k_tokens[BJ] is None


# -- cost, to the cent, with figures read off the page ---------------------------------------


@pytest.mark.parametrize(
    ("region", "attrs", "per_hour"),
    [
        # Beijing qwen3-8b: MU1 x 2 $14.852/h, MU2 x 2 $17.328/h, MU5 x 1 $2.888/h
        (BJ, {"model_name": "qwen3-8b", "deploy_spec": "MU1", "capacity": 2}, 14.852),
        (BJ, {"model_name": "qwen3-8b", "deploy_spec": "MU1", "capacity": 4}, 29.704),
        (BJ, {"model_name": "qwen3-8b", "deploy_spec": "MU2", "capacity": 2}, 17.328),
        (BJ, {"model_name": "qwen3-8b", "deploy_spec": "MU5", "capacity": 3}, 8.664),  # 3 x 2.888
        # Singapore qwen3-32b MU1 x 4 $44/h, MU2 x 8 $112/h
        (SG, {"model_name": "qwen3-32b", "deploy_spec": "MU1", "capacity": 4}, 44.0),
        (SG, {"model_name": "qwen3-32b", "deploy_spec": "MU2", "capacity": 16}, 224.0),
        # Beijing qwen3-32b MU1 x 4 $29.704/h, MU6 x 4 $13.752/h
        (BJ, {"model_name": "qwen3-32b", "deploy_spec": "MU6", "capacity": 4}, 13.752),
        # Singapore qwen3-vl-8b-instruct MU1 x 2 $22/h
        (SG, {"model_name": "qwen3-vl-8b-instruct", "deploy_spec": "MU1", "capacity": 2}, 22.0),
        # Beijing qwen3.5-397b-a17b MU6 x 16 $55.008/h
        (BJ, {"model_name": "qwen3.5-397b-a17b", "deploy_spec": "MU6", "capacity": 32}, 110.016),
        # Beijing qwen3.5-flash-2026-02-23 MU8 x 1 (model compression) $6.464/h
        (BJ, {"model_name": "qwen3.5-flash-2026-02-23", "deploy_spec": "MU8", "capacity": 2}, 12.928),
    ],
    ids=lambda v: None,
)
def test_model_unit_cost_follows_the_page(region: str, attrs: dict[str, Any], per_hour: float) -> None:
    found = hourly(region, plan="mu", **attrs)
    assert found is not None and round(found, 3) == per_hour
    assert round(found * 730, 2) == round(per_hour * 730, 2)


def test_beijing_qwen3_8b_mu1_capacity_2_per_month() -> None:
    found = hourly(BJ, plan="mu", model_name="qwen3-8b", deploy_spec="MU1", capacity=2)
    assert found is not None and round(found * 730, 2) == 10841.96  # 14.852 x 730


def test_subscription_is_the_page_monthly_price_per_bundle() -> None:
    found = hourly(
        BJ, plan="mu", model_name="qwen3-8b", deploy_spec="MU5", capacity=2, billing_method="PRE_PAY"
    )
    assert found is not None and round(found * 730, 3) == 2788.658  # 2 x $1,394.329


@pytest.mark.parametrize(
    ("region", "attrs", "per_hour"),
    [
        # Beijing qwen-flash-2025-07-28: $0.06 per 10K input TPM/h + $0.06 per 1K output TPM/h
        (
            BJ,
            {"model_name": "qwen-flash-2025-07-28", "ptu_capacity": {"input_tpm": 10000, "output_tpm": 1000}},
            0.12,
        ),
        # Singapore qwen3.6-plus-2026-04-02: $1.2 + $0.72
        (
            SG,
            {
                "model_name": "qwen3.6-plus-2026-04-02",
                "ptu_capacity": {"input_tpm": 10000, "output_tpm": 1000},
            },
            1.92,
        ),
        (
            SG,
            {
                "model_name": "qwen3.6-plus-2026-04-02",
                "ptu_capacity": {"input_tpm": 20000, "output_tpm": 3000},
            },
            4.56,
        ),
        # Beijing qwen3.6-plus-2026-04-02: $0.67 + $0.397
        (
            BJ,
            {
                "model_name": "qwen3.6-plus-2026-04-02",
                "ptu_capacity": {"input_tpm": 10000, "output_tpm": 1000},
            },
            1.067,
        ),
        # Singapore deepseek-v3.2: $2.05 + $0.616
        (
            SG,
            {"model_name": "deepseek-v3.2", "ptu_capacity": {"input_tpm": 10000, "output_tpm": 1000}},
            2.666,
        ),
        # Beijing qwen-plus-2025-12-01: $0.28 input, non-thinking $0.07, thinking $0.28 output
        (
            BJ,
            {
                "model_name": "qwen-plus-2025-12-01",
                "ptu_capacity": {"input_tpm": 10000, "output_tpm": 1000, "thinking_output_tpm": 2000},
            },
            0.91,  # 0.28 + 0.07 + 2 x 0.28
        ),
    ],
    ids=lambda v: None,
)
def test_provisioned_throughput_cost_follows_the_page(
    region: str, attrs: dict[str, Any], per_hour: float
) -> None:
    found = hourly(region, plan="ptu", **attrs)
    assert found is not None and round(found, 3) == per_hour
