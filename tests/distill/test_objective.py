"""The DMD gradient through carv.renoise_k: exactly DMD2's direction per draw, and unbiased for its expectation."""

import subprocess
import sys

import pytest
import torch

import carv
from carv.distill.objective import dmd_direction, dmd_gradient, recovered_noise

from ..helpers import two_sided_z

R, K, STEPS = 2, 4, 100
LOW, HIGH = 100, 163  # a 64-timestep range keeps the exact sum over t cheap


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def direct_direction(scores, x, t, eps):
    """DMD2's g written out (x0 predictions, not eps): (x0_fake - x0_real) / mean|x - x0_real|, float64."""
    abar = scores.teacher.alphas_cumprod.double()[t].view(-1, 1, 1, 1)
    x_t = abar.sqrt() * x + (1 - abar).sqrt() * eps
    eps_real, eps_fake = scores.scores(x_t, t, torch.arange(x.shape[0]))
    x0_real = (x_t - (1 - abar).sqrt() * eps_real.double()) / abar.sqrt()
    x0_fake = (x_t - (1 - abar).sqrt() * eps_fake.double()) / abar.sqrt()
    return (x0_fake - x0_real) / (x - x0_real).abs().mean(dim=(1, 2, 3), keepdim=True)


def latents_and_noise(scores):
    shape = scores.teacher_shape
    return torch.randn(R, *shape, generator=seeded(3)), torch.randn(R, *shape, generator=seeded(4))


def test_one_draw_is_dmd2s_direction(scores):
    """K = 1 with given (t, eps): the estimator's direction is DMD2's x0-space formula for the same draw."""
    scores.for_samples(torch.tensor([0, 1]))
    x, eps = latents_and_noise(scores)
    t = torch.tensor([30, 900])
    sampler = carv.make_timestep_sampler("uniform", min_step=20, max_step=980)
    draws = carv.TimestepDraw(t=t, weight=torch.ones(2))
    result = dmd_gradient(
        x, scores.scores, sampler, k=1, alphas_cumprod=scores.teacher.alphas_cumprod, draws=draws, noise=eps[:, None]
    )
    torch.testing.assert_close(
        result.direction, direct_direction(scores, x.double(), t, eps.double()), rtol=1e-6, atol=1e-9
    )


def test_recovered_noise_inverts_add_noise():
    alphas = carv.stable_diffusion_alphas_cumprod()
    x, eps, t = torch.randn(3, 4, 2, 2).double(), torch.randn(3, 4, 2, 2).double(), torch.tensor([0, 500, 999])
    torch.testing.assert_close(recovered_noise(carv.add_noise(x, eps, t, alphas), x, t, alphas), eps)


def exact_expectation(scores, x, eps0, low, high):
    """E_{t ~ U{low..high}}[g(x_r, t, eps0_r)] per sample r, by the exact sum over t (common noise eps0)."""
    support = torch.arange(low, high + 1)
    exact = []
    for r in range(x.shape[0]):
        scores.for_samples(torch.full((support.numel(),), r))
        n = support.numel()
        g = direct_direction(
            scores, x[r : r + 1].double().expand(n, -1, -1, -1), support, eps0[r : r + 1].double().expand(n, -1, -1, -1)
        )
        exact.append(g.mean(dim=0))
    scores.for_samples(torch.arange(x.shape[0]))
    return torch.stack(exact)


@pytest.mark.parametrize("proposal", ["sds", torch.linspace(1.0, 4.0, HIGH - LOW + 1) ** 2], ids=["sds", "table"])
def test_carv_estimate_is_unbiased_for_the_baseline_expectation(scores, proposal):
    """Stratified, importance-weighted R x K draws average to DMD2's one-uniform-t expectation (99%, Bonferroni)."""
    x, eps0 = latents_and_noise(scores)
    exact = exact_expectation(scores, x, eps0, LOW, HIGH)
    sampler = carv.make_timestep_sampler(proposal, stratified=True, min_step=LOW, max_step=HIGH)
    generator, estimates, weights = seeded(5), [], []
    common = eps0[:, None].expand(R, K, *eps0.shape[1:])
    for _ in range(STEPS):
        result = dmd_gradient(
            x,
            scores.scores,
            sampler,
            k=K,
            alphas_cumprod=scores.teacher.alphas_cumprod,
            generator=generator,
            noise=common,
        )
        estimates.append(result.direction)
        weights.append(result.weight)
    assert torch.cat(weights).std() > 0.02  # the importance weights varied: IS was active
    projections = torch.randn(4, *exact.shape, generator=seeded(6), dtype=torch.float64)
    values = torch.einsum("nrchw,prchw->np", torch.stack(estimates), projections)
    expected = torch.einsum("rchw,prchw->p", exact, projections)
    z = (values.mean(dim=0) - expected) / (values.std(dim=0) / STEPS**0.5)
    assert z.abs().max() < two_sided_z(comparisons=4), z


def test_dmd_direction_is_normalised_by_the_real_residual():
    eps = torch.zeros(2, 1, 2, 2)
    real, fake = torch.full((2, 1, 2, 2), 2.0), torch.ones(2, 1, 2, 2)
    torch.testing.assert_close(dmd_direction(real, fake, eps), torch.full((2, 1, 2, 2), 0.5))


def test_objective_is_pure_math():
    """carv.distill.objective imports neither diffusers nor transformers (STYLE.md's math layer)."""
    code = "import sys, carv.distill.objective\nassert 'diffusers' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def reference_frechet(a, b):
    """The textbook formula with matrix square roots by eigendecomposition."""

    def root(c):
        values, vectors = torch.linalg.eigh(c)
        return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T

    ca, cb = torch.cov(a.T), torch.cov(b.T)
    inner = root(ca) @ cb @ root(ca)
    return ((a.mean(0) - b.mean(0)).pow(2).sum() + ca.trace() + cb.trace() - 2 * root(inner).trace()).item()


@pytest.mark.parametrize("n, m, d", [(7, 9, 20), (30, 25, 5)])
def test_frechet_distance_equals_the_textbook_formula(n, m, d):
    from carv.distill.quality import frechet_distance

    a = torch.randn(n, d, generator=seeded(7), dtype=torch.float64)
    b = torch.randn(m, d, generator=seeded(8), dtype=torch.float64) * 1.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(reference_frechet(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_trace_variance_is_the_sum_of_coordinate_variances():
    from carv.distill.step import trace_variance

    g = torch.randn(12, 5, generator=seeded(9), dtype=torch.float64) * torch.arange(1.0, 6.0, dtype=torch.float64)
    result = trace_variance(g)
    assert result.value == pytest.approx(g.var(dim=0).sum().item(), rel=1e-12)
    assert 0 < result.se < result.value and result.repeats == 12
    with pytest.raises(ValueError, match="at least 3 repeats"):
        trace_variance(g[:2])
