"""Per-draw projected gradients of the denoising loss and their weighted averages per example (CARV sec. 4b).

phi_hat(x) = (1/K) sum_k w_k P^T grad_theta L(x, t_k, eps_k), unbiased for P^T E_{t ~ p, eps}[grad L] because
E_q[(p/q) g] = E_p[g] for each draw. P is linear, so projecting each draw and then averaging is the same as
averaging first; keeping the projected draws [N, K, P] lets nested budgets reuse them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch.func import grad, vmap

from ..estimator import add_noise
from .draws import Draws

Denoiser = Callable[[dict, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(params, z_t [B, C, H, W], t [B], context [B, L, F]) -> eps_hat [B, C, H, W]."""
Projector = Callable[[torch.Tensor], torch.Tensor]
"""[B, D] gradients -> [B, P] projected features."""


def denoising_loss(denoise: Denoiser, params: dict, z, context, t, eps, alphas_cumprod) -> torch.Tensor:
    """L(x, t, eps) = mean over elements of (eps_hat(a_t z + s_t eps, t, c) - eps)^2, one draw (z [C, H, W])."""
    z_t = add_noise(z[None], eps[None], t[None], alphas_cumprod)
    return (denoise(params, z_t, t[None], context[None]) - eps[None]).square().mean()


def flatten_gradients(gradients: dict, names: list[str]) -> torch.Tensor:
    """Concatenate per-row gradients {name: [B, ...]} in the order of ``names``: [B, D]."""
    return torch.cat([gradients[name].flatten(1) for name in names], dim=1)


def per_draw_gradients(
    denoise: Denoiser,
    params: dict,
    latents: torch.Tensor,
    context: torch.Tensor,
    draws: Draws,
    alphas_cumprod: torch.Tensor,
    *,
    project: Projector,
    chunk: int = 64,
    progress=None,
) -> torch.Tensor:
    """P^T grad_params L(x_n, t_nk, eps_nk) for latents [N, C, H, W], context [N, L, F]: [N, K, P], unweighted.

    ``params`` holds the parameters differentiated (the others stay inside ``denoise``); one vmap'd gradient
    per (example, draw), ``chunk`` rows at a time; ``progress`` (a tqdm bar) advances by one per draw.
    """
    n, k = latents.shape[0], draws.k
    rows = draws.rows(torch.arange(n))
    z, c = latents.repeat_interleave(k, dim=0), context.repeat_interleave(k, dim=0)
    t, eps = rows.t.flatten(), rows.noise.flatten(0, 1).to(latents.dtype)
    loss = partial(denoising_loss, denoise)
    gradient = vmap(grad(loss), in_dims=(None, 0, 0, 0, 0, None))
    names = list(params)
    out = []
    for start in range(0, n * k, chunk):
        part = slice(start, start + chunk)
        g = gradient(params, z[part], c[part], t[part], eps[part], alphas_cumprod)
        out.append(project(flatten_gradients(g, names)))
        if progress is not None:
            progress.update(out[-1].shape[0])
    return torch.cat(out).view(n, k, -1)


def average_features(per_draw: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(1/K) sum_k w_k phi_k per example: per_draw [N, K, P], weight [N or 1, K] -> [N, P], float64."""
    w = weight.to(torch.float64).expand(per_draw.shape[0], -1)
    return (w.unsqueeze(-1) * per_draw.to(torch.float64)).mean(dim=1)
