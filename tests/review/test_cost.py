"""Cost estimates checked against the seed's published Model Studio prices (API.md section 2).

Seed figures (the platform's "Create deployment" page; rows "MUn x k" price a
bundle of k units): China (Beijing) qwen3-8b MU5 x 1 at $2.888/h and MU1 x 2 at
$14.852/h; Singapore qwen3-32b MU1 x 4 at $44/h; provisioned throughput per
10K input / 1K output TPM per hour: Beijing qwen-flash-2025-07-28 $0.06 /
$0.06, Singapore qwen3.6-plus-2026-04-02 $1.2 / $0.72. Monthly = hourly x 730.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler import cost
from reconciler.assessment import (
    Assessment,
    CostBasis,
    CostEstimate,
    CostLine,
    assessment_from_dict,
    assessment_to_dict,
)
from reconciler.errors import UsageError
from reconciler.plan import Action, Change, Plan
from reconciler.schemas import PlanFile
from tests.review.test_policy import run

CATALOGUE = cost.load_pricing()


def hourly(region: str, **attrs: Any) -> float | None:
    return cost.modelstudio_hourly(attrs, CATALOGUE, region)[0]


@pytest.mark.parametrize(
    ("region", "attrs", "expected"),
    [
        ("cn-beijing", {"model_name": "qwen3-8b", "deploy_spec": "MU5", "capacity": 1}, 2.888),
        ("cn-beijing", {"model_name": "qwen3-8b", "deploy_spec": "MU1", "capacity": 2}, 14.852),
        ("ap-southeast-1", {"model_name": "qwen3-32b", "deploy_spec": "MU1", "capacity": 4}, 44.0),
    ],
    ids=["qwen3-8b MU5 x 1 Beijing", "qwen3-8b MU1 x 2 Beijing", "qwen3-32b MU1 x 4 Singapore"],
)
def test_model_unit_prices_match_the_seed(region: str, attrs: dict[str, Any], expected: float) -> None:
    assert hourly(region, plan="mu", **attrs) == pytest.approx(expected)


def test_the_seed_deployment_costs_2888_an_hour_and_730_hours_a_month() -> None:
    found, detail = cost.modelstudio_hourly(
        {"model_name": "qwen3-8b", "plan": "mu", "deploy_spec": "MU5", "capacity": 1}, CATALOGUE, "cn-beijing"
    )
    assert found == pytest.approx(2.888)
    assert detail == "qwen3-8b MU5 capacity 1 in cn-beijing: 1 x $2.888/h (MU5 x 1)"
    line = CostLine("deployments.q", "modelstudio", "deployment", 0.0, found)
    assert line.monthly_after == pytest.approx(2108.24)


def test_provisioned_throughput_prices_match_the_seed() -> None:
    flash = {"model_name": "qwen-flash-2025-07-28", "plan": "ptu"}
    assert hourly("cn-beijing", **flash, ptu_capacity={"input_tpm": 10_000, "output_tpm": 1_000}) == (
        pytest.approx(0.06 + 0.06)
    )
    assert hourly("cn-beijing", **flash, ptu_capacity={"input_tpm": 50_000, "output_tpm": 2_000,
                                                       "thinking_output_tpm": 1_000}) == pytest.approx(
        5 * 0.06 + 3 * 0.06
    )  # fmt: skip
    plus = {"model_name": "qwen3.6-plus-2026-04-02", "plan": "ptu"}  # defaults: 10,000 in / 1,000 out
    assert hourly("ap-southeast-1", **plus) == pytest.approx(1.2 + 0.72)


@pytest.mark.parametrize(
    ("region", "attrs", "why"),
    [
        ("ap-southeast-1", {"model_name": "qwen3-8b", "deploy_spec": "MU5", "capacity": 1},
         "no published price for qwen3-8b MU5 in ap-southeast-1"),
        ("cn-beijing", {"model_name": "qwen3-14b", "deploy_spec": "MU1", "capacity": 4},
         "no published price for qwen3-14b MU1 in cn-beijing"),
        ("cn-beijing", {"model_name": "no-such-model", "deploy_spec": "MU1", "capacity": 4},
         "no-such-model is not in the pricing catalogue"),
        ("cn-beijing", {"model_name": "emo", "plan": "cu", "capacity": 1}, "plan cu: no published prices"),
        ("eu-central-1", {"model_name": "qwen3-8b", "deploy_spec": "MU5", "capacity": 1},
         "no prices for region eu-central-1 in the pricing catalogue"),
    ],
)  # fmt: skip
def test_a_missing_price_is_unknown_never_zero(region: str, attrs: dict[str, Any], why: str) -> None:
    assert cost.modelstudio_hourly({"plan": "mu", **attrs}, CATALOGUE, region) == (None, why)


def test_the_region_comes_from_the_block_then_the_url_host() -> None:
    assert cost.region_of("modelstudio", {"url": "https://x", "region": "ap-southeast-1"}) == "ap-southeast-1"
    assert cost.region_of("modelstudio", {"url": "https://dashscope.aliyuncs.com/api/v1"}) == "cn-beijing"
    assert cost.region_of("modelstudio", {"url": "https://dashscope-intl.aliyuncs.com/api/v1"}) == (
        "ap-southeast-1"
    )
    assert cost.region_of("modelstudio", {"url": "embedded"}) is None
    assert cost.region_of("fabric", {"url": "https://fabric.cn-north-4.myhuaweicloud.com"}) == "cn-north-4"
    assert cost.region_of("zstack", {"url": "http://zs:8080", "region": "x"}) is None


def test_fabric_and_zstack_are_unknown_and_stay_out_of_the_totals() -> None:
    changes = (
        Change("endpoints.e", "fabric", "endpoint", Action.CREATE, after={"name": "e"}),
        Change("models.s", "zstack", "model_service", Action.NOOP, before={"name": "s"}, after={"name": "s"}),
        Change("deployments.q", "modelstudio", "deployment", Action.DELETE,
               before={"model_name": "qwen3-8b", "plan": "mu", "deploy_spec": "MU5", "capacity": 1}),
    )  # fmt: skip
    plan = Plan("t", "t.yaml", "d", None, None, changes)
    estimate = cost.estimate(plan, CATALOGUE, "cn-beijing")
    by = {line.address: line for line in estimate.lines}
    assert (by["endpoints.e"].hourly_before, by["endpoints.e"].hourly_after) == (0.0, None)
    assert by["endpoints.e"].detail == "DataArts Fabric publishes no prices"
    assert (by["models.s"].hourly_before, by["models.s"].hourly_after) == (None, None)
    assert by["models.s"].detail == "ZStack runs on-premises and has no prices"
    assert (by["deployments.q"].monthly_before, by["deployments.q"].monthly_after) == (
        pytest.approx(2108.24),
        0.0,
    )
    assert [line.address for line in estimate.unpriced] == ["endpoints.e", "models.s"]
    assert estimate.monthly_difference == pytest.approx(-2108.24)
    again = assessment_from_dict(assessment_to_dict(Assessment(cost=estimate)))
    assert again.cost == CostEstimate(estimate.lines, "cn-beijing")


def test_pricing_files_are_merged_over_the_shipped_catalogue(tmp_path: Path) -> None:
    extra = tmp_path / "prices.yaml"
    extra.write_text(
        "models:\n"
        "  - model_name: qwen3-14b\n"
        "    specs: {MU1: {hourly_price: {cn-beijing: 9.5}}}\n"
        "  - model_name: my-ft\n"
        "    plans: [mu]\n"
        "    regions: [cn-shanghai]\n"
        "    specs: {MU2: {base_capacity: 2, hourly_price: {cn-shanghai: 3.0}}}\n"
        "regions: [cn-shanghai]\n"
    )
    merged = cost.load_pricing([str(extra)])
    assert cost.modelstudio_hourly(
        {"model_name": "qwen3-14b", "plan": "mu", "deploy_spec": "MU1", "capacity": 8}, merged, "cn-beijing"
    )[0] == pytest.approx(19.0)
    assert cost.modelstudio_hourly(
        {"model_name": "my-ft", "plan": "mu", "deploy_spec": "MU2", "capacity": 4}, merged, "cn-shanghai"
    )[0] == pytest.approx(6.0)
    assert hourly("cn-beijing", model_name="qwen3-8b", plan="mu", deploy_spec="MU5", capacity=1) == 2.888
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"models": [{"model_name": "qwen3-8b", "specs": {"MU5": {"hourly_price": {"cn-beijing": -1}}}}]}'
    )
    with pytest.raises(
        UsageError, match=r"pricing file .*bad.json: qwen3-8b.MU5.hourly_price.cn-beijing must be"
    ):
        cost.load_pricing([str(bad)])
    with pytest.raises(UsageError, match="cannot read it"):
        cost.load_pricing([str(tmp_path / "missing.json")])


SEED_STACK = """\
stack: seed
providers:
  modelstudio: {url: embedded, provision_seconds: 0, region: cn-beijing}
  fabric: {url: embedded, provision_seconds: 0}
backend: {local: {path: state/seed.json}}
workspaces:
  main: {name: ml}
deployments:
  qwen:
    platform: modelstudio
    model_name: qwen3-8b
    name: qwen-chat
    plan: mu
    deploy_spec: MU5
    capacity: 1
    billing_method: POST_PAY
    suffix: chat01
"""


def test_plan_shows_the_seed_deployment_at_2888_an_hour(tmp_path: Path) -> None:
    (tmp_path / "seed.yaml").write_text(SEED_STACK)
    code, out, _ = run(tmp_path, "plan", "seed.yaml", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    PlanFile.model_validate(doc)
    c = doc["assessment"]["cost"]
    (line,) = [r for r in c["resources"] if r["address"] == "deployments.qwen"]
    assert (line["hourly_before"], line["hourly_after"], line["monthly_after"]) == (0.0, 2.888, 2108.24)
    assert line["basis"] == {
        "model": "qwen3-8b", "region": "cn-beijing", "spec": "MU5", "capacity": "1",
        "billing": "pay-as-you-go",
    }  # fmt: skip
    assert (c["hours_per_month"], c["region"], c["monthly_after"], c["unpriced"]) == (
        730, "cn-beijing", 2108.24, ["workspaces.main"]
    )  # fmt: skip

    code, text, _ = run(tmp_path, "plan", "seed.yaml")
    assert "Monthly cost estimate (USD; monthly = hourly price x 730 hours):" in text
    assert (
        "deployments.qwen  $2.888/h, $0.00 -> $2,108.24 (+$2,108.24)/month  "
        "qwen3-8b in cn-beijing, MU5 x 1, pay-as-you-go" in text
    )
    code, markdown, _ = run(tmp_path, "plan", "seed.yaml", "--format", "markdown")
    assert (
        "| `deployments.qwen` | qwen3-8b | cn-beijing | MU5 | 1 | pay-as-you-go | $2.888 "
        "| $0.00 | $2,108.24 | +$2,108.24 |" in markdown
    )
    assert "Unknown, not in the totals (DataArts Fabric publishes no prices): workspaces.main" in text

    prices = tmp_path / "cheaper.json"
    prices.write_text(
        '{"models": [{"model_name": "qwen3-8b", "specs": {"MU5": {"hourly_price": {"cn-beijing": 1}}}}]}'
    )
    code, out, _ = run(tmp_path, "plan", "seed.yaml", "--format", "json", "--pricing", "cheaper.json")
    assert json.loads(out)["assessment"]["cost"]["monthly_after"] == 730.0
    code, out, _ = run(
        tmp_path, "plan", "seed.yaml", "--format", "json", env={"RECONCILER_PRICING": str(prices)}
    )
    assert json.loads(out)["assessment"]["pricing_files"] == [str(prices)]
    assert json.loads(out)["assessment"]["cost"]["monthly_after"] == 730.0


def test_the_cost_block_names_model_region_spec_capacity_and_billing_of_each_deployment() -> None:
    ptu = {"model_name": "qwen-flash-2025-07-28", "plan": "ptu",
           "ptu_capacity": {"input_tpm": 20000, "output_tpm": 2000}}  # fmt: skip
    subscription = {"model_name": "qwen3-8b", "plan": "mu", "deploy_spec": "MU1", "capacity": 4,
                    "billing_method": "PRE_PAY"}  # fmt: skip

    def line(address: str, action: Action, region: str, **attrs: Any) -> CostLine:
        return cost.cost_line(
            Change(address, "modelstudio", "deployment", action, **attrs), CATALOGUE, region
        )

    lines = {
        "ptu": line("d.ptu", Action.CREATE, "ap-southeast-1", after=ptu),
        "sub": line("d.sub", Action.CREATE, "cn-beijing", after=subscription),
        "gone": line("d.gone", Action.DELETE, "cn-beijing", before=subscription),
    }
    assert lines["ptu"].basis == CostBasis(
        "qwen-flash-2025-07-28", "ap-southeast-1", "PTU", "20,000 input + 2,000 output TPM", "pay-as-you-go"
    )
    assert lines["sub"].basis == CostBasis("qwen3-8b", "cn-beijing", "MU1", "4", "subscription")
    assert lines["gone"].basis == lines["sub"].basis  # a deletion shows what it removes
    # subscription: the monthly price of two MU1 x 2 bundles, 730 hours to the month
    assert round(lines["sub"].monthly_after or 0, 2) == round(2 * 7183.564, 2)
    back = assessment_from_dict(assessment_to_dict(Assessment(cost=CostEstimate(tuple(lines.values())))))
    assert back.cost is not None and [line.basis for line in back.cost.lines] == [
        line.basis for line in lines.values()
    ]


def test_a_plan_with_nothing_priced_has_no_cost_block_and_new_outputs_read_known_after_apply(
    tmp_path: Path,
) -> None:
    import shutil

    shutil.copy(Path(__file__).resolve().parents[2] / "stacks" / "quickstart.yaml", tmp_path / "q.yaml")
    code, text, _ = run(tmp_path, "plan", "q.yaml")
    assert code == 0
    assert "Monthly cost" not in text  # Fabric publishes no prices: nothing to estimate
    outputs = "Changes to outputs:\n  + chat_id = (known after apply)\n  + chat_url = (known after apply)\n"
    assert outputs in text
    code, markdown, _ = run(tmp_path, "plan", "q.yaml", "--format", "markdown")
    assert code == 0
    assert "Monthly cost" not in markdown
    assert "+ chat_id = (known after apply)" in markdown
