"""The render-once / re-noise-K estimator of the SDS direction (CARV sec. 2.1).

For latents z_r of R renders, draw K pairs (t_rk, eps_rk) per render and return

    d_r = (1/K) sum_k rho(t_rk) w(t_rk) (eps_hat(a_t z_r + s_t eps_rk, t_rk) - eps_rk),

an unbiased estimate of E_{t~p, eps}[ w(t) (eps_hat - eps) | z_r ] because
E_q[rho h] = E_p[h] with rho = p / q. Backprop of d_r through the encoder and
renderer is the caller's single backward pass per render.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .timesteps import TimestepDraw, TimestepSampler, draw_timesteps, weighting_of_schedule

EpsHat = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RenoiseResult:
    """The averaged direction per render and per-draw diagnostics."""

    direction: torch.Tensor  # [R, ...] mean over K of weight * w(t) * (eps_hat - eps)
    t: torch.Tensor  # int64 [R, K]
    weight: torch.Tensor  # float32 [R, K], p(t) / q(t)
    sq_norm: torch.Tensor  # float32 [R, K], ||w(t) (eps_hat - eps)||^2 before the importance weight
    draws: torch.Tensor | None = None  # [R, K, ...] weight * w(t) * (eps_hat - eps), when keep_draws


def add_noise(
    latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """z_t = sqrt(abar_t) z + sqrt(1 - abar_t) eps (DDPM forward process), per row of t."""
    abar = alphas_cumprod.to(latents.device)[t.to(latents.device)].to(latents.dtype)
    shape = (-1,) + (1,) * (latents.ndim - 1)
    return abar.sqrt().view(shape) * latents + (1.0 - abar).sqrt().view(shape) * noise


def in_chunks(function, *tensors: torch.Tensor, size: int) -> torch.Tensor:
    """function over row chunks of at most size rows of all tensors (0 = one call), concatenated."""
    rows = tensors[0].shape[0]
    size = size if size > 0 else rows
    return torch.cat([function(*(x[i : i + size] for x in tensors)) for i in range(0, rows, size)], dim=0)


def check_draws(draws: TimestepDraw, noise: torch.Tensor, latents: torch.Tensor, k: int) -> None:
    """Reject given draws or noise whose sizes do not fit R renders x K draws."""
    r = latents.shape[0]
    if draws.t.shape != (r * k,) or draws.weight.shape != (r * k,):
        raise ValueError(f"draws must hold R*K = {r * k} timesteps and weights, got {tuple(draws.t.shape)}")
    if noise.shape != (r, k) + tuple(latents.shape[1:]):
        raise ValueError(f"noise must have shape {(r, k) + tuple(latents.shape[1:])}, got {tuple(noise.shape)}")


@torch.no_grad()
def renoise_k(
    latents: torch.Tensor,
    eps_hat: EpsHat,
    sampler: TimestepSampler,
    *,
    k: int,
    strata: int | None = None,
    alphas_cumprod: torch.Tensor,
    weighting: str = "sds",
    max_batch: int = 0,
    generator: torch.Generator | None = None,
    draws: TimestepDraw | None = None,
    noise: torch.Tensor | None = None,
    keep_draws: bool = False,
) -> RenoiseResult:
    """Render-once / re-noise-K estimate of the weighted SDS direction per render, [R, ...] (CARV sec. 2.1).

    Draws R*K (t, weight) from `sampler` by carv.timesteps.draw_timesteps (stratified: `strata` per render,
    None = the sampler's) and eps ~ N(0, I) from `generator`, unless `draws` / `noise` are given.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (noise samples per render) must be a positive integer, got {k!r}")
    if latents.ndim < 2:
        raise ValueError(f"latents must be [R, ...] with R >= 1, got shape {tuple(latents.shape)}")
    r = latents.shape[0]
    if draws is None:
        draws = draw_timesteps(sampler, r, k, generator, strata)
    if noise is None:
        device = generator.device if generator is not None else latents.device
        noise = torch.randn((r, k) + tuple(latents.shape[1:]), generator=generator, device=device, dtype=latents.dtype)
    check_draws(draws, noise, latents, k)
    t = draws.t.to(latents.device)
    weight = draws.weight.to(latents.device)
    noise = noise.to(latents.device, latents.dtype).flatten(0, 1)
    repeated = latents.detach().repeat_interleave(k, dim=0)
    index = torch.arange(r, device=latents.device).repeat_interleave(k)
    z_t = add_noise(repeated, noise, t, alphas_cumprod)
    predicted = in_chunks(eps_hat, z_t, t, index, size=max_batch)
    if predicted.shape != z_t.shape:
        raise ValueError(f"eps_hat returned shape {tuple(predicted.shape)} for inputs of shape {tuple(z_t.shape)}")
    if not torch.isfinite(predicted).all():
        raise ValueError("the teacher's noise prediction contains NaN or Inf")
    shape = (-1,) + (1,) * (latents.ndim - 1)
    unweighted = weighting_of_schedule(alphas_cumprod.to(latents.device), t, weighting).to(predicted.dtype).view(
        shape
    ) * (predicted - noise)
    per_draw = weight.to(unweighted.dtype).view(shape) * unweighted
    per_draw = per_draw.view((r, k) + tuple(latents.shape[1:]))
    return RenoiseResult(
        direction=per_draw.mean(dim=1),
        t=t.view(r, k),
        weight=weight.view(r, k),
        sq_norm=unweighted.flatten(1).float().pow(2).sum(dim=1).view(r, k),
        draws=per_draw if keep_draws else None,
    )
