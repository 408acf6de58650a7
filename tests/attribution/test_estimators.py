"""The estimators of E_{t, eps}[P^T grad L] on a linear denoiser whose expectation over eps is in closed form.

eps_hat = W z_t with z_t = a z + s eps and L = mean (W z_t - eps)^2 over the C x H x W elements, so
E_eps[grad_W L] = 2 / (C H W) * (a^2 W S + H W s (s W - I)), S = sum over pixels of z z^T; the full expectation is
its exact average over all T timesteps.
"""

import math

import pytest
import torch

from carv import make_timestep_sampler, stable_diffusion_alphas_cumprod
from carv.attribution import average_features, grid_draws, iid_draws, per_draw_gradients, stratified_draws
from carv.attribution.projection import random_projector

C, H, W_ = 3, 2, 2
ALPHAS = stable_diffusion_alphas_cumprod().float()
STEPS = ALPHAS.shape[0]
REPLICATES = 300
K = 4


def linear_denoiser(params, z_t, t, context):
    return torch.einsum("ij,bjhw->bihw", params["W"], z_t)


def problem():
    g = torch.Generator().manual_seed(0)
    weight = torch.eye(C) * 0.5 + 0.3 * torch.randn(C, C, generator=g)
    latents = torch.randn(2, C, H, W_, generator=g)
    return {"W": weight}, latents, torch.zeros(2, 1, 1)


def exact_features(params, latents, t, project):
    """P^T E_eps[grad_W L] averaged over the timesteps t (all of them for the full expectation), [N, P]."""
    w = params["W"].double()
    a2 = ALPHAS[t].double()
    s = (1 - a2).sqrt()
    rows = []
    for z in latents.double():
        pixels = z.flatten(1)
        s_matrix = pixels @ pixels.T
        per_t = a2[:, None, None] * (w @ s_matrix) + H * W_ * s[:, None, None] * (s[:, None, None] * w - torch.eye(C))
        rows.append(2.0 / (C * H * W_) * per_t.mean(0))
    return project(torch.stack(rows).flatten(1).float()).double()


def replicate_means(make_draws, seed=1):
    """Mean and standard error over REPLICATES independent estimates of the averaged projected gradient, [N, P]."""
    params, latents, context = problem()
    project = random_projector(C * C, 5, seed=0)
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(REPLICATES):
        draws = make_draws(generator, latents.shape[0])
        per_draw = per_draw_gradients(
            linear_denoiser, params, latents, context, draws, ALPHAS, project=project, chunk=256
        )
        estimates.append(average_features(per_draw, draws.weight))
    stacked = torch.stack(estimates)
    return stacked.mean(0), stacked.std(0) / math.sqrt(REPLICATES), params, latents, project


def bonferroni_z(count: int, level: float = 0.01) -> float:
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(1 - level / (2 * count))).item()


def carv_design(proposal):
    sampler = make_timestep_sampler(proposal, stratified=True, alphas_cumprod=ALPHAS, min_step=0, max_step=STEPS - 1)
    return lambda g, n: stratified_draws(K, (C, H, W_), sampler, g)


def iid_design(g, n):
    sampler = make_timestep_sampler("uniform", alphas_cumprod=ALPHAS, min_step=0, max_step=STEPS - 1)
    return iid_draws(n, K, (C, H, W_), sampler, g)


def grid_design(g, n):
    return grid_draws(K, (C, H, W_), STEPS, g)


@pytest.mark.parametrize(
    "design", [carv_design("uniform"), carv_design("sds"), iid_design], ids=["carv-uniform", "carv-sds", "iid"]
)
def test_estimator_is_unbiased_for_the_full_expectation(design):
    mean, se, params, latents, project = replicate_means(design)
    exact = exact_features(params, latents, torch.arange(STEPS), project)
    assert ((mean - exact).abs() <= bonferroni_z(mean.numel()) * se).all(), (mean - exact) / se


def test_fixed_grid_is_biased_and_centred_on_its_own_grid():
    """D-TRAK's grid has no random offset: its mean over eps is the grid average, not the full expectation."""
    mean, se, params, latents, project = replicate_means(grid_design)
    full = exact_features(params, latents, torch.arange(STEPS), project)
    on_grid = exact_features(params, latents, torch.arange(K) * (STEPS // K), project)
    z = bonferroni_z(mean.numel())
    assert ((mean - on_grid).abs() <= z * se).all()
    assert ((mean - full).abs() > z * se).any(), "the grid estimate should be biased"


def test_carv_draws_are_shared_by_every_example():
    sampler = make_timestep_sampler("sds", stratified=True, alphas_cumprod=ALPHAS, min_step=0, max_step=STEPS - 1)
    draws = stratified_draws(8, (C, H, W_), sampler, torch.Generator().manual_seed(0))
    rows = draws.rows(torch.arange(3))
    assert torch.equal(rows.t[0], rows.t[2]) and torch.equal(rows.noise[0], rows.noise[2])
    assert not torch.allclose(rows.weight, torch.ones_like(rows.weight))  # sds: p/q differs from 1


def test_stratified_draws_refuse_an_unstratified_sampler():
    sampler = make_timestep_sampler("uniform", alphas_cumprod=ALPHAS, min_step=0, max_step=STEPS - 1)
    with pytest.raises(ValueError, match="stratified"):
        stratified_draws(2, (C, H, W_), sampler, torch.Generator())
