"""The DMD gradient on generated latents, estimated by the same render-once / re-noise-K estimator as SDS.

Distribution matching distillation (Yin et al., "One-step Diffusion with Distribution Matching
Distillation", 2023; DMD2: Yin et al., "Improved Distribution Matching Distillation for Fast Image
Synthesis", 2024, github.com/tianweiy/DMD2 main/sd_guidance.py) moves a generated latent x along

    E_{t ~ U[min, max], eps}[ g(x, t, eps) ],  g = (x0_fake - x0_real) / mean|x - x0_real|,

with x0_* the clean-latent predictions of the fake and the real (teacher, CFG) scores at
x_t = a_t x + s_t eps. In noise units x0_fake - x0_real = (s_t / a_t)(eps_real - eps_fake) and
x - x0_real = (s_t / a_t)(eps_real - eps), so g = (eps_real - eps_fake) / mean|eps_real - eps|:
DMD2's weighting, which needs the draw's own eps.

`carv.renoise_k` averages rho(t) w(t) (eps_hat(z_t, t, i) - eps) over K draws per generated sample
and never passes eps to eps_hat, so `dmd_eps_hat` hands it eps_hat = eps + g with eps recovered
from (z_t - a_t x_i) / s_t; the estimator runs in float64 so that eps_hat - eps = g to about 1e-15.
(A renoise_k that passed eps to its callable would make the recovery unnecessary.) With
weighting "uniform", E_q[rho g] = E_p[g]: unbiased for DMD2's one-(t, eps)-per-sample expectation
whatever the proposal, stratification and K.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..estimator import RenoiseResult, add_noise, renoise_k
from ..timesteps import TimestepDraw, TimestepSampler, make_timestep_sampler

ScoreFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""scores(z_t [n, C, h, w], t [n], sample_index [n]) -> (eps_real, eps_fake), each [n, C, h, w]."""


def recovered_noise(z_t: torch.Tensor, x: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """eps = (z_t - sqrt(abar_t) x) / sqrt(1 - abar_t), per row: the noise that made z_t from x."""
    abar = alphas_cumprod.to(z_t.device, z_t.dtype)[t.to(z_t.device)].view(-1, *(1,) * (z_t.ndim - 1))
    return (z_t - abar.sqrt() * x) / (1.0 - abar).sqrt()


def dmd_direction(eps_real: torch.Tensor, eps_fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """DMD2's per-draw direction (eps_real - eps_fake) / mean|eps_real - eps| (mean over each row), [n, ...]."""
    dims = tuple(range(1, eps.ndim))
    scale = (eps_real - eps).abs().mean(dim=dims, keepdim=True)
    return torch.nan_to_num((eps_real - eps_fake) / scale)


def dmd_eps_hat(scores: ScoreFn, latents: torch.Tensor, alphas_cumprod: torch.Tensor):
    """eps_hat(z_t, t, i) = eps + g for renoise_k, with eps recovered from z_t and latents [R, ...] (float64)."""

    def eps_hat(z_t: torch.Tensor, t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        eps = recovered_noise(z_t, latents[index.to(latents.device)], t, alphas_cumprod)
        eps_real, eps_fake = scores(z_t, t, index)
        return eps + dmd_direction(eps_real.to(eps.dtype), eps_fake.to(eps.dtype), eps)

    return eps_hat


@dataclass(frozen=True)
class EstimatorSetting:
    """One way to estimate the DMD gradient of a step: `samples` generated latents x `k` (t, eps) draws each."""

    name: str
    samples: int  # R: generated samples per step
    k: int  # K: re-noisings per sample
    proposal: str = "uniform"  # q(t), a carv.make_timestep_sampler proposal
    stratified: bool = False  # stratified inverse-CDF draws over the step's R K timesteps

    @property
    def teacher_evaluations(self) -> int:
        return self.samples * self.k


def estimator_settings(samples: int, k: int, proposal: str) -> dict[str, EstimatorSetting]:
    """DMD2's baseline at R K teacher evaluations (R K samples, one uniform (t, eps) each), CARV (R x K, IS +
    stratified), the matched IID setting (R x K, uniform IID t: reuse alone) and DMD2 at CARV's R samples (K = 1)."""
    return {
        "baseline": EstimatorSetting("baseline", samples * k, 1),
        "carv": EstimatorSetting("carv", samples, k, proposal, stratified=True),
        "matched_iid": EstimatorSetting("matched_iid", samples, k),
        "same_samples": EstimatorSetting("same_samples", samples, 1),
    }


def setting_sampler(
    setting: EstimatorSetting, alphas_cumprod: torch.Tensor, min_step_percent: float, max_step_percent: float
) -> TimestepSampler:
    """The setting's (t, p/q) sampler on DMD2's range [int(T min%), int(T max%)]."""
    t = alphas_cumprod.shape[0]
    return make_timestep_sampler(
        setting.proposal,
        stratified=setting.stratified,
        alphas_cumprod=alphas_cumprod,
        min_step=int(t * min_step_percent),
        max_step=int(t * max_step_percent),
    )


@torch.no_grad()
def dmd_gradient(
    latents: torch.Tensor,
    scores: ScoreFn,
    sampler: TimestepSampler,
    *,
    k: int,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator | None = None,
    draws: TimestepDraw | None = None,
    noise: torch.Tensor | None = None,
    keep_draws: bool = False,
) -> RenoiseResult:
    """The K-averaged DMD direction per generated latent (float64), [R, C, h, w]: carv.renoise_k on DMD2's g.

    Unbiased for E_{t ~ U[min, max], eps}[g(x_r, t, eps)] for each r (rho = p / q on every draw).
    """
    latents64 = latents.detach().double()
    return renoise_k(
        latents64,
        dmd_eps_hat(scores, latents64, alphas_cumprod.double()),
        sampler,
        k=k,
        alphas_cumprod=alphas_cumprod.double(),
        weighting="uniform",
        generator=generator,
        draws=draws,
        noise=None if noise is None else noise.double(),
        keep_draws=keep_draws,
    )


def dmd_loss(latents: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """DMD2's surrogate 0.5 mse(x, sg(x - g)) (mean over elements): its gradient in x is g / numel."""
    target = (latents - direction.to(latents.dtype)).detach()
    return 0.5 * torch.nn.functional.mse_loss(latents, target, reduction="mean")


def fake_score_loss(
    fake_eps: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    student_latents: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DMD2's fake-score (critic) loss on student samples only: mean (eps_fake(x_t, t, i) - eps)^2, t ~ U{0..T-1}.

    The latents are detached: the critic learns the student's distribution and never moves the student.
    """
    x = student_latents.detach()
    t = torch.randint(0, alphas_cumprod.shape[0], (x.shape[0],), generator=generator).to(x.device)
    eps = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    x_t = add_noise(x, eps, t, alphas_cumprod)
    return (fake_eps(x_t, t, torch.arange(x.shape[0], device=x.device)) - eps).pow(2).mean()
