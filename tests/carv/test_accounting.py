"""Variance components, cost model, K* and ECM (CARV sec. 3)."""

import pytest
import torch

import carv
from carv.accounting import (
    anova_sums_of_squares,
    component_estimates,
    leave_one_render_out_estimates,
    work_normalised_variance,
)

from ..helpers import chi2_lower_quantile, planted_grid, two_sided_z


def test_components_recover_planted_values_within_their_standard_error():
    components = carv.variance_components(planted_grid(300, 6, 8, sigma_b2=2.0, sigma_w2=5.0, seed=0))
    z = two_sided_z(comparisons=2)
    assert abs(components.sigma_b2 - 2.0) <= z * components.sigma_b2_se
    assert abs(components.sigma_w2 - 5.0) <= z * components.sigma_w2_se
    assert (components.renders, components.draws_per_render) == (300, 6)


def test_components_are_unbiased_on_small_grids():
    estimates = torch.tensor(
        [
            [c.sigma_b2, c.sigma_w2]
            for c in (carv.variance_components(planted_grid(4, 3, 5, 1.0, 3.0, seed=s)) for s in range(2000))
        ]
    )
    standard_error = estimates.std(dim=0) / estimates.shape[0] ** 0.5
    z = two_sided_z(comparisons=2)
    assert ((estimates.mean(dim=0) - torch.tensor([1.0, 3.0])).abs() <= z * standard_error).all()


def test_law_of_total_variance_is_exact_in_float64():
    g = planted_grid(7, 5, 11, 1.3, 0.7, seed=1)
    between, within, total = anova_sums_of_squares(g)
    assert between + within == pytest.approx(total, rel=1e-12)


def test_predicted_variance_matches_the_variance_of_the_mean_by_repetition():
    r, k, sigma_b2, sigma_w2, repeats = 3, 4, 2.0, 6.0, 3000
    means = torch.stack([planted_grid(r, k, 4, sigma_b2, sigma_w2, seed=s).mean(dim=(0, 1)) for s in range(repeats)])
    measured = means.var(dim=0).sum().item()  # trace over 4 coordinates, each (repeats - 1) dof
    predicted = carv.predicted_variance(sigma_b2, sigma_w2, r, k)
    dof = 4 * (repeats - 1)
    low = measured * dof / chi2_lower_quantile(dof, 0.995)
    high = measured * dof / chi2_lower_quantile(dof, 0.005)
    assert low <= predicted <= high


@pytest.mark.parametrize(
    "a, b, sigma_b2, sigma_w2",
    [(1.0, 1.0, 1.0, 1.0), (16.0, 1.0, 1.0, 1.0), (30.0, 1.0, 0.5, 8.0), (1.0, 5.0, 4.0, 1.0)],
)
def test_optimal_k_minimises_work_normalised_variance(a, b, sigma_b2, sigma_w2):
    costs = carv.CostModel(a, b)
    best = min(range(1, 200), key=lambda k: work_normalised_variance(sigma_b2, sigma_w2, costs, k))
    assert carv.optimal_k(a, b, sigma_b2, sigma_w2) == best


def test_optimal_k_known_values():
    assert carv.optimal_k(16.0, 1.0, 1.0, 1.0) == 4
    assert carv.optimal_k(1.0, 1.0, 0.0, 1.0, k_max=64) == 64


def test_ecm_of_the_baseline_against_itself_is_one():
    costs = carv.CostModel(10.0, 1.0)
    assert carv.configuration_ecm(costs, (1.0, 4.0), (1.0, 4.0), renders=1, draws_per_render=1) == pytest.approx(1.0)
    assert carv.configuration_ecm(costs, (1.0, 4.0), (1.0, 4.0), 4, 1, baseline_renders=4) == pytest.approx(1.0)


def test_ecm_matches_the_definition():
    costs = carv.CostModel(12.0, 2.0)
    value = carv.configuration_ecm(costs, (1.0, 9.0), (1.0, 3.0), renders=1, draws_per_render=6, baseline_renders=4)
    baseline = (1.0 + 9.0) / 4 * 4 * (12 + 2)
    configuration = (1.0 + 3.0 / 6) * (12 + 6 * 2)
    assert value == pytest.approx(baseline / configuration)


def test_reuse_limit_is_the_best_ecm_over_k():
    costs, sigma_b2, sigma_w2 = carv.CostModel(16.0, 1.0), 1.0, 1.0  # K* = 4 exactly
    best_integer = max(
        carv.configuration_ecm(costs, (sigma_b2, sigma_w2), (sigma_b2, sigma_w2), 1, k) for k in range(1, 100)
    )
    assert carv.reuse_limit(costs, sigma_b2, sigma_w2) == pytest.approx(best_integer, rel=1e-12)
    fractional = carv.CostModel(10.0, 1.0)
    best = max(carv.configuration_ecm(fractional, (1.0, 2.0), (1.0, 2.0), 1, k) for k in range(1, 100))
    assert carv.reuse_limit(fractional, 1.0, 2.0) >= best


def test_equal_cost_configurations():
    assert carv.equal_cost_configurations(carv.CostModel(3.0, 1.0), budget=16.0, k_values=(1, 5, 13, 20)) == [
        (4, 1),
        (2, 5),
        (1, 13),
    ]


@pytest.mark.parametrize("shape, message", [((4, 5), r"\[R, K, D\]"), ((1, 5, 3), "R >= 2"), ((4, 1, 3), "K >= 2")])
def test_bad_grids(shape, message):
    with pytest.raises(ValueError, match=message):
        carv.variance_components(torch.zeros(shape))


def test_bad_costs_and_counts():
    with pytest.raises(ValueError, match="b > 0"):
        carv.CostModel(1.0, 0.0)
    with pytest.raises(ValueError, match="K >= 1"):
        carv.predicted_variance(1.0, 1.0, 1, 0)
    with pytest.raises(ValueError, match="NaN"):
        carv.variance_components(torch.full((3, 3, 2), float("nan")))


def test_leave_one_out_sums_equal_recomputing_without_each_render():
    g = planted_grid(6, 3, 4, 1.0, 2.0, seed=9)
    direct = torch.tensor([component_estimates(torch.cat([g[:i], g[i + 1 :]])) for i in range(6)], dtype=torch.float64)
    torch.testing.assert_close(leave_one_render_out_estimates(g), direct, rtol=1e-10, atol=1e-12)


def test_equal_cost_configurations_under_a_measured_curve_are_the_brute_force_most_renders():
    from carv.cost_curve import MeasuredCostModel, TeacherCostCurve, doubling_ladder

    ladder = doubling_ladder(64)
    knee = TeacherCostCurve(ladder, tuple(0.5 + max(n - 16, 0) * 0.2 for n in ladder))  # flat up to 16 draws
    memory = tuple(100.0 * n for n in ladder)
    for costs in (
        MeasuredCostModel(0.3, knee),
        MeasuredCostModel(0.3, TeacherCostCurve(ladder, knee.seconds, memory), memory_limit=2400.0),
    ):
        for budget in (0.8, 1.7, 3.1, 9.0):
            k_values = (1, 2, 3, 5, 8, 16, 40)
            expected = []
            for k in k_values:
                allowed = [
                    r
                    for r in range(1, 200)
                    if costs.step_cost(r, k) <= budget and (costs.memory_limit is None or 100.0 * r * k <= 2400.0)
                ]
                if allowed:
                    expected.append((max(allowed), k))
            assert carv.equal_cost_configurations(costs, budget, k_values) == expected
    # flat up to 16 draws: at 1.75 s, one render buys 16 draws for the price of one, and 4 renders 4 draws each
    assert (1, 16) in carv.equal_cost_configurations(MeasuredCostModel(0.3, knee), 1.75, (16,))
    assert carv.equal_cost_configurations(MeasuredCostModel(0.3, knee), 1.75, (4,)) == [(4, 4)]
