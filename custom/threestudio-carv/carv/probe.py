"""The per-draw gradient probe: G_rk = J_r^T f_rk for each draw of an R x K grid (CARV sec. 3), timed.

Each render is rendered and encoded once; its K weighted directions f_rk = rho w (eps_hat - eps) are drawn
by the training rule (carv.timesteps.draw_timesteps, one stratum per draw) and back-propagated one at a time.
The CPU pipeline (one graph per render) and the threestudio systems (one graph per batch) supply the renders;
everything else is here. a = render + encode + one backward per render, b = one guided teacher evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .accounting import CostMeter
from .estimator import RenoiseResult
from .timesteps import draw_timesteps


def probe_directions(
    distillation, latents: torch.Tensor, text, k: int, generator, meter: CostMeter, keep_draws: bool = True
) -> RenoiseResult:
    """K draws per render of latents [R, ...] (no grad), by the training rule with one stratum per draw."""
    draws = draw_timesteps(distillation.sampler, latents.shape[0], k, generator, strata=0)
    with meter.timed("teacher", latents.shape[0] * k):
        return distillation.direction(
            latents.detach(), text, generator=generator, draws=draws, keep_draws=keep_draws, k=k
        )


def flat_gradient(output: torch.Tensor, parameters: Sequence[torch.Tensor], cotangent) -> torch.Tensor:
    """J^T cotangent over all parameters, flattened [D] (zeros where a parameter is unused; the graph is kept)."""
    grads = torch.autograd.grad(output, parameters, cotangent, retain_graph=True, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, parameters, strict=True)]
    )


def per_draw_gradients(
    outputs: Sequence[torch.Tensor],
    draws: torch.Tensor,
    parameters: Sequence[torch.Tensor],
    meter: CostMeter,
    renders_per_backward: int = 1,
    progress=None,
) -> torch.Tensor:
    """G [R, K, D]: row r of outputs back-propagated with each cotangent draws[r, j : j + 1].

    renders_per_backward: how many renders one backward traverses (a batch graph counts as its R renders).
    """
    rows = []
    for r, output in enumerate(outputs):
        row = []
        for j in range(draws.shape[1]):
            with meter.timed("backward", renders_per_backward):
                row.append(flat_gradient(output, parameters, draws[r, j : j + 1]))
        rows.append(torch.stack(row))
        if progress is not None:
            progress.update(draws.shape[1])
    return torch.stack(rows).detach()
