"""The report's figures under the measured cost model R a + c(R K), on planted components and synthetic curves
(no timing): the ECM table against the brute force, the linear model's figures beside them, and the
recommendation moving where the curve is flat."""

import pytest

from carv.accounting import CostModel, VarianceComponents, predicted_variance
from carv.cost_curve import (
    MeasuredCostModel,
    TeacherCostCurve,
    doubling_ladder,
    memory_bound,
    variance_times_cost,
)
from carv.variance_model import (
    BASELINE,
    K_VALUES,
    SETTINGS,
    VarianceModel,
    summarise,
    summarise_measured,
    summarise_models,
    table_reach,
)

A, B = 1.0, 1.0
WITHIN = {"uniform": 4.0, "sds": 3.0, "gaussian": 3.5, "adaptive": 2.5}  # sigma_b^2 = 1: linear K* = 2 or less


def planted() -> dict:
    """Exact components (sigma_b^2 = 1, sigma_w^2 per proposal, stratified a little lower), no sampling."""
    return {
        s: VarianceComponents(1.0, WITHIN[s.proposal] * (0.8 if s.stratified else 1.0), 0.01, 0.01, 16, 8)
        for s in SETTINGS
    }


def flat_curve(n0: int = 32, top: int = 256) -> TeacherCostCurve:
    """c(n) = b up to n0 draws (the device is not yet busy), then b per extra draw."""
    ladder = doubling_ladder(top)
    return TeacherCostCurve(ladder, tuple(B * (1 + max(n - n0, 0)) for n in ladder))


def test_every_ecm_of_the_table_is_the_brute_force_over_the_grid():
    costs = MeasuredCostModel(A, flat_curve(n0=8))
    model, summary = summarise_models(planted(), costs, CostModel(A, B), budget_renders=4, baseline_renders=4)
    budget = costs.step_cost(4, 1)
    assert summary["budget_seconds"] == budget == 4 * A + B  # four renders' teacher draws cost one
    sigma_b2 = model.sigma_b2
    baseline = predicted_variance(sigma_b2, WITHIN["uniform"], 4, 1) * costs.step_cost(4, 1)
    expected = {}
    for setting in SETTINGS:
        for k in K_VALUES:
            renders = [r for r in range(1, 100) if costs.step_cost(r, k) <= budget]
            if renders:
                r = max(renders)
                # a stratified setting at K = 1 is its IID one
                sigma_w2 = WITHIN[setting.proposal] if k == 1 else planted()[setting].sigma_w2
                variance = predicted_variance(sigma_b2, sigma_w2, r, k)
                expected[(setting.name, r, k)] = baseline / (variance * costs.step_cost(r, k))
    table = {(row["setting"], row["R"], row["K"]): row["ecm"] for row in summary["table"]}
    assert table.keys() == expected.keys()
    for key, value in expected.items():
        assert table[key] == pytest.approx(value, rel=1e-12), key
    best = max(expected, key=expected.get)
    assert (summary["recommended"]["setting"], summary["recommended"]["R"], summary["recommended"]["K"]) == best


def test_a_linear_curve_gives_the_linear_figures():
    costs = MeasuredCostModel(A, TeacherCostCurve.linear(B, doubling_ladder(256)))
    _, summary = summarise_models(planted(), costs, CostModel(A, B), budget_renders=4, baseline_renders=4)
    linear = summary["linear"]
    for key in ("recommended", "reuse_only", "auto"):
        assert {k: summary[key][k] for k in ("setting", "R", "K")} == {k: linear[key][k] for k in ("setting", "R", "K")}
        assert summary[key]["ecm"] == pytest.approx(linear[key]["ecm"], rel=1e-12)
    assert summary["reuse_limit"] == pytest.approx(linear["reuse_limit"], rel=1e-12)
    for row in summary["components"]:
        assert row["k_star"] == row["k_star_linear"] and row["reuse_limit"] == pytest.approx(row["reuse_limit_linear"])


def test_the_linear_figures_are_those_of_the_linear_model_alone():
    linear = CostModel(A, 0.7 * B)  # the probe's b need not be c(1)
    _, summary = summarise_models(planted(), MeasuredCostModel(A, flat_curve()), linear, 4, 4)
    alone = summarise(VarianceModel(planted(), linear), linear.step_cost(4, 1), 4)
    assert summary["linear"] == {key: alone[key] for key in summary["linear"]}
    assert summary["linear"]["costs"]["model"] == "linear" and summary["costs"]["model"] == "measured"
    assert summary["costs"]["b"] == 0.7 * B and summary["costs"]["c1"] == B  # b: the linear model's; c(1) beside


def test_a_flat_curve_moves_k_star_the_reuse_limit_and_the_recommendation():
    costs = MeasuredCostModel(A, flat_curve(n0=32))
    _, summary = summarise_models(planted(), costs, CostModel(A, B), budget_renders=4, baseline_renders=4)
    linear = summary["linear"]
    uniform = next(row for row in summary["components"] if row["setting"] == BASELINE.name)
    assert uniform["k_star_linear"] == 2  # sqrt(a sigma_w^2 / (b sigma_b^2)) = 2
    assert uniform["k_star"] == 32  # up to 32 draws cost one: K* at R = 1 is the knee
    assert summary["reuse_limit"] > linear["reuse_limit"]
    assert summary["recommended"]["K"] > linear["recommended"]["K"]
    assert summary["recommended"]["R"] * summary["recommended"]["K"] <= 32 < 4 * 64
    sigma_w2, budget = summary_sigma_w2(summary), costs.step_cost(4, 1)
    auto = (summary["auto"]["R"], summary["auto"]["K"])  # auto's rule: least Var C in the budget and its bounds
    space = [(r, k) for r in range(1, 9) for k in range(1, max(K_VALUES) + 1) if r * k <= 64]
    affordable_pairs = [p for p in space if costs.step_cost(*p) <= budget * (1 + 1e-9)]
    assert auto in affordable_pairs and auto[0] > 1  # a flat curve buys renders and draws at once
    least = min(variance_times_cost(costs, 1.0, sigma_w2, *p) for p in affordable_pairs)
    assert variance_times_cost(costs, 1.0, sigma_w2, *auto) == pytest.approx(least, rel=1e-12)
    assert summary["costs"]["curve"] == costs.curve.as_records()


def summary_sigma_w2(summary) -> float:
    setting = summary["auto"]["setting"]
    proposal, stratified = setting.split("+")[0], setting.endswith("+strat")
    return WITHIN[proposal] * (0.8 if stratified else 1.0)


def test_the_curve_is_measured_up_to_the_largest_r_k_of_the_table():
    asked = []

    def measure(draws):  # a device flat up to 32 draws; measure(n) times the ladder 1, 2, 4, ... n
        asked.append(draws)
        ladder = doubling_ladder(draws)
        return MeasuredCostModel(A, TeacherCostCurve(ladder, flat_curve(n0=32, top=256).seconds[: len(ladder)]))

    model, summary = summarise_measured(planted(), measure, CostModel(A, B), budget_renders=4, baseline_renders=4)
    # the linear table's largest R K is 6 (R = 2, K = 3 at 4 (a + b) = 8 s); measured flat up to 6 draws, the
    # table reaches R = 4, K = 64; measured again up to 256, the table's steps send at most 32 draws (e.g. 4 x 8)
    assert asked == [6, 256]
    assert table_reach(summary["table"]) == 32 <= model.costs.curve.draws[-1] == 256
    asked.clear()
    summarise_measured(planted(), measure, CostModel(A, B), 4, 4, top=16)
    assert asked == [16]  # --curve-draws fixes the ladder


CUT_SHORT = TeacherCostCurve((1, 2, 4), (1.0, 1.0, 1.0), (1.0, 2.0, 4.0))  # a batch of 8 ran out of memory


def test_a_ladder_cut_short_by_memory_is_not_measured_again():
    for limit in (memory_bound(CUT_SHORT, 8, device_bytes=1e9), 100.0):  # the bound a report sets, and a loose one
        asked = []

        def out_of_memory_past_4(draws, limit=limit, asked=asked):
            asked.append(draws)
            return MeasuredCostModel(A, CUT_SHORT, memory_limit=limit)

        _, summary = summarise_measured(planted(), out_of_memory_past_4, CostModel(A, B), 4, 4)
        assert asked == [6]
    assert memory_bound(CUT_SHORT, 8, 1e9) == 4.0  # no batch larger than the largest that ran
    assert memory_bound(CUT_SHORT, 4, 1e9) == 1e9 and memory_bound(CUT_SHORT, 8, None) is None
    costs = MeasuredCostModel(A, CUT_SHORT, memory_limit=memory_bound(CUT_SHORT, 8, 1e9))
    _, summary = summarise_measured(planted(), lambda draws: costs, CostModel(A, B), 4, 4)
    assert table_reach(summary["table"]) <= 4  # no step of the table needs more memory than the device had
