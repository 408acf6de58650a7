"""Components of stratified per-render draws, jackknife errors of predictions, variance by repetition."""

import math

import pytest
import torch

import carv
from carv.stratified_variance import predicted_variance_se, repeated_variance, stratified_variance_components

from ..helpers import planted_grid, two_sided_z


def stratified_t(r: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """One uniform draw in each of K equal strata of [0, 1) per render, in random order, [R, K] float64."""
    u = (torch.arange(k, dtype=torch.float64) + torch.rand(r, k, generator=generator, dtype=torch.float64)) / k
    order = torch.rand(r, k, generator=generator).argsort(dim=1)
    return torch.take_along_dim(u, order, dim=1)


def test_recovers_planted_components_when_t_carries_no_signal():
    g = planted_grid(400, 6, 8, sigma_b2=2.0, sigma_w2=5.0, seed=0)
    t = stratified_t(400, 6, torch.Generator().manual_seed(1))
    components = stratified_variance_components(g, t)
    z = two_sided_z(comparisons=2)
    assert abs(components.sigma_b2 - 2.0) <= z * components.sigma_b2_se
    assert abs(components.sigma_w2 - 5.0) <= z * components.sigma_w2_se


def test_variance_of_render_means_is_unbiased_with_a_signal_in_t():
    """g = planted + c t (linear in a stratified t): Var(mean_r) = sigma_b^2 + sigma_w^2 / K + c^2 / (12 K^3)."""
    r, k, d, c, sigma_b2, sigma_w2 = 600, 4, 4, 6.0, 1.0, 2.0
    t = stratified_t(r, k, torch.Generator().manual_seed(2))
    g = planted_grid(r, k, d, sigma_b2, sigma_w2, seed=3) + c * t.unsqueeze(-1) / math.sqrt(d)
    components = stratified_variance_components(g, t)
    exact = sigma_b2 + sigma_w2 / k + c**2 / (12 * k**3)
    total = components.sigma_b2 + components.sigma_w2 / k
    total_se = components.sigma_b2_se + components.sigma_w2_se / k  # no covariance term: conservative
    assert abs(total - exact) <= two_sided_z() * total_se
    iid = carv.variance_components(g)  # the IID within mean square sees the whole spread of c t
    assert components.sigma_w2 < iid.sigma_w2


def test_jackknife_error_of_a_prediction_covers_the_planted_value():
    g = planted_grid(300, 4, 6, sigma_b2=1.0, sigma_w2=3.0, seed=4)
    from carv.accounting import leave_one_render_out_estimates

    components = carv.variance_components(g)
    se = predicted_variance_se(leave_one_render_out_estimates(g.double()), renders=2, draws_per_render=8)
    predicted = carv.predicted_variance(components.sigma_b2, components.sigma_w2, 2, 8)
    assert abs(predicted - carv.predicted_variance(1.0, 3.0, 2, 8)) <= two_sided_z() * se


def test_repeated_variance_measures_the_trace_within_its_error():
    generator = torch.Generator().manual_seed(5)
    scales = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    samples = torch.randn(4000, 3, generator=generator, dtype=torch.float64) * scales
    measured, se = repeated_variance(samples)
    assert abs(measured - scales.pow(2).sum().item()) <= two_sided_z() * se


@pytest.mark.parametrize(
    "g, t, message",
    [
        (torch.zeros(4, 3, 2), torch.zeros(4, 3), "K must be even"),
        (torch.zeros(4, 2, 2), torch.zeros(4, 3), "timesteps must be"),
        (torch.zeros(2, 2, 2), torch.zeros(2, 2), "R >= 3"),
    ],
)
def test_bad_input(g, t, message):
    with pytest.raises(ValueError, match=message):
        stratified_variance_components(g, t)


def test_repeated_variance_needs_three_estimates():
    with pytest.raises(ValueError, match="M >= 3"):
        repeated_variance(torch.zeros(2, 5))


def test_stratified_variance_is_math_layer():
    import subprocess
    import sys

    from ..carv.test_layering import FORBIDDEN

    code = f"import sys\nimport carv.stratified_variance\nassert not [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pooled_between_render_variance_averages_independent_estimates():
    from carv.stratified_variance import pooled_between_render_variance

    estimates = [carv.VarianceComponents(b, 1.0, se, 0.1, 4, 2) for b, se in ((1.0, 0.3), (3.0, 0.4))]
    assert pooled_between_render_variance(estimates) == pytest.approx((2.0, 0.25))
    with pytest.raises(ValueError, match="at least one"):
        pooled_between_render_variance([])


def test_between_render_part_is_the_measured_variance_less_the_within_part():
    from carv.stratified_variance import between_render_part

    value, se = between_render_part(0.3, 0.03, 0.8, 0.16, renders=4, k=2)
    assert value == pytest.approx(0.3 - 0.8 / 8) and se == pytest.approx(math.hypot(0.03, 0.02))
    with pytest.raises(ValueError, match="R >= 1"):
        between_render_part(0.3, 0.03, 0.8, 0.16, renders=0, k=1)


def test_measured_ecm_at_costs_is_the_ratio_of_variance_times_cost_with_a_delta_method_error():
    from carv.stratified_variance import measured_ecm_at_costs

    check, baseline = {"measured": 2.0, "measured_se": 0.2}, {"measured": 6.0, "measured_se": 0.3}
    result = measured_ecm_at_costs(check, baseline, check_cost=0.5, baseline_cost=1.0)
    assert result["ecm"] == pytest.approx(6.0 * 1.0 / (2.0 * 0.5))
    assert result["se"] == pytest.approx(6.0 * math.hypot(0.2 / 2.0, 0.3 / 6.0))
