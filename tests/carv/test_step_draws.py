"""One rule draws a step's timesteps (carv.timesteps.draw_timesteps): training, the probes and the components."""

import math

import torch

import carv
from carv.accounting import CostMeter
from carv.probe import probe_directions
from carv.score_distillation import ScoreDistillation, ScoreDistillationConfig, TextConditioning
from carv.stratified_variance import grid_components
from carv.timesteps import draw_timesteps

from ..helpers import planted_grid, two_sided_z
from ..score_distillation.helpers import AnalyticTeacher, seeded

STEPS = 1000


def uniform_sampler(stratified: bool = True):
    return carv.make_timestep_sampler("uniform", min_step=0, max_step=STEPS - 1, stratified=stratified)


def test_stratified_draws_put_one_draw_of_each_render_in_each_of_its_k_strata():
    r, k = 6, 4
    for seed in range(5):
        draws = draw_timesteps(uniform_sampler(), r, k, seeded(seed))
        strata = (draws.t.view(r, k) * k) // STEPS  # the uniform q: stratum h holds t in [h T / K, (h+1) T / K)
        assert torch.equal(strata.sort(dim=1).values, torch.arange(k).expand(r, k))


def test_strata_per_render_is_a_call_argument():
    r, k = 3, 4
    draws = draw_timesteps(uniform_sampler(), r, k, seeded(1), strata=2)
    halves = (draws.t.view(r, k) * 2) // STEPS
    assert torch.equal(halves.sum(dim=1), torch.full((r,), 2))  # two draws per half, in every render


def test_iid_draws_are_one_call_of_the_sampler():
    sampler = uniform_sampler(stratified=False)
    assert torch.equal(draw_timesteps(sampler, 3, 4, seeded(2)).t, sampler.sample(12, seeded(2)).t)


def test_training_draws_by_the_rule_and_the_probe_draws_as_training():
    """Same generator: renoise_k's timesteps are draw_timesteps', and the probe's whole direction is training's."""
    teacher = AnalyticTeacher(native_resolution=4)
    config = ScoreDistillationConfig(timestep_proposal="sds", timestep_stratified=True, noise_samples_per_render=4)
    distillation = ScoreDistillation(teacher, config)
    latents = torch.rand(3, 3, 4, 4, generator=seeded(3))
    text = TextConditioning(torch.randn(3, 5, 6, generator=seeded(4)), torch.randn(1, 5, 6, generator=seeded(5)))
    training = distillation.direction(latents, text, generator=seeded(6))
    assert torch.equal(training.t.flatten(), draw_timesteps(distillation.sampler, 3, 4, seeded(6)).t)
    probed = probe_directions(distillation, latents, text, 4, seeded(6), CostMeter())
    assert torch.equal(probed.t, training.t) and torch.equal(probed.direction, training.direction)


def test_components_of_a_probe_grid_describe_the_per_render_stratified_estimator():
    """g = planted + c u(t) with per-render strata: Var(mean_r) = sigma_b^2 + sigma_w^2 / K + c^2 / (12 K^3).

    Stratifying across renders instead (one call for all R K draws) leaves each render's draws nearly IID in t:
    Var(mean_r) is then near sigma_b^2 + (sigma_w^2 + c^2 / 12) / K, far outside the tolerance.
    """
    r, k, d, c, sigma_b2, sigma_w2 = 500, 4, 4, 8.0, 1.0, 2.0
    t = draw_timesteps(uniform_sampler(), r, k, seeded(7)).t.view(r, k)
    u = (t.double() + 0.5) / STEPS
    g = planted_grid(r, k, d, sigma_b2, sigma_w2, seed=8) + c * u.unsqueeze(-1) / math.sqrt(d)
    components = grid_components(g, t, stratified=True)
    exact = sigma_b2 + sigma_w2 / k + c**2 / (12 * k**3)  # u's discretisation adds c^2 / (12 T^2 K): negligible
    total = components.sigma_b2 + components.sigma_w2 / k
    total_se = components.sigma_b2_se + components.sigma_w2_se / k  # no covariance term: conservative
    assert abs(total - exact) <= two_sided_z() * total_se
