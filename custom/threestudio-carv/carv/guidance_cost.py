"""c(n) measured the way the guidance makes its teacher evaluations: n re-noised draws of one latent through
ScoreDistillation's own path (its timestep proposal, noising, classifier-free guidance in UNet batches of at most
max_unet_batch, weighting), without gradient, without updating the proposal, and without touching the run's RNG.

The bench, `carv variance` and `auto` measure the same thing with this one function (carv.cost_curve holds the
math that uses the curve).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from .cost_curve import TeacherCostCurve, doubling_ladder, measure_teacher_curve
from .estimator import renoise_k
from .timing import synchronize


def guidance_draws(distillation, text, latent: torch.Tensor) -> Callable[[int], None]:
    """evaluate(n): n draws of the guidance's estimator on latent[:1] (the first render's text); stratified draws
    use one stratum per draw, so that any n can be measured whatever the run's timestep_strata."""
    latent = latent[:1].detach()
    eps_hat = distillation.guided_noise(text)
    generator = torch.Generator().manual_seed(0) if latent.device.type == "cpu" else None

    @torch.no_grad()
    def evaluate(n: int) -> None:
        renoise_k(
            latent,
            eps_hat,
            distillation.sampler,
            k=n,
            strata=0,  # one stratum per draw: the same teacher work as the run's strata, at any n of the ladder
            alphas_cumprod=distillation.teacher.alphas_cumprod,
            weighting=distillation.config.weighting_strategy,
            generator=generator,
        )

    return evaluate


def guidance_cost_curve(
    distillation,
    text,
    latent: torch.Tensor,
    max_draws: int = 64,
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> TeacherCostCurve:
    """c(n) on the ladder 1, 2, 4, ... max_draws; on CUDA with each batch's peak memory, the ladder ending at the
    first batch that does not fit. The run's global RNG state is restored afterwards."""
    cuda = latent.device.type == "cuda"
    evaluate = guidance_draws(distillation, text, latent)

    def peak_memory(n: int) -> float:
        torch.cuda.reset_peak_memory_stats(latent.device)
        evaluate(n)
        return float(torch.cuda.max_memory_allocated(latent.device))

    devices = [latent.device] if cuda else []
    with torch.random.fork_rng(devices=devices):
        return measure_teacher_curve(
            evaluate,
            doubling_ladder(max_draws),
            repeats,
            clock=clock,
            synchronize=synchronize,
            peak_memory=peak_memory if cuda else None,
            out_of_memory=(torch.cuda.OutOfMemoryError,) if cuda else (),
        )
