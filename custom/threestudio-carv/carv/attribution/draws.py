"""The (t, weight, eps) draws of each estimator of E_{t ~ U{0..T-1}, eps}[grad L] per example (CARV sec. 4b).

- "iid" (Journey-TRAK): K uniform timesteps with replacement and fresh noise, independently per example.
- "grid" (D-TRAK): the fixed grid t_k = k * (T // K), k < K, with one noise tensor per grid point shared by every
  example. No random offset, so it is a biased estimate of the expectation.
- "carv": K stratified inverse-CDF draws from a proposal q with weights p/q (`carv.make_timestep_sampler`), one
  set of (t, eps) shared by every example, train and query alike (common random numbers).

A Draws holds [N, K] rows, or [1, K] rows shared by all N examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..timesteps import TimestepSampler

ESTIMATORS = ("iid", "grid", "carv")


@dataclass(frozen=True)
class Draws:
    """K draws per example; a leading size of 1 means the same draws for every example (common random numbers)."""

    t: torch.Tensor  # int64 [N or 1, K]
    weight: torch.Tensor  # float32 [N or 1, K], p(t) / q(t)
    noise: torch.Tensor  # [N or 1, K, C, H, W]

    @property
    def k(self) -> int:
        return self.t.shape[1]

    def rows(self, index: torch.Tensor) -> Draws:
        """The draws of examples ``index`` [B] (shared draws are repeated)."""
        if self.t.shape[0] == 1:
            index = torch.zeros_like(index)
        return Draws(self.t[index], self.weight[index], self.noise[index])


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"draws per example must be a positive integer, got {k!r}")


def iid_draws(
    n: int, k: int, latent_shape: tuple[int, ...], uniform: TimestepSampler, generator: torch.Generator
) -> Draws:
    """Journey-TRAK: t ~ U (the unstratified uniform sampler) and eps ~ N(0, I), fresh for each of n examples."""
    check_k(k)
    draw = uniform.sample(n * k, generator=generator)
    noise = torch.randn((n, k, *latent_shape), generator=generator)
    return Draws(draw.t.view(n, k), draw.weight.view(n, k), noise)


def grid_draws(k: int, latent_shape: tuple[int, ...], num_train_timesteps: int, generator: torch.Generator) -> Draws:
    """D-TRAK: t_k = k * (T // K) for k < K (weights 1) and one common eps per grid point, [1, K] rows."""
    check_k(k)
    if k > num_train_timesteps:
        raise ValueError(f"a grid of {k} timesteps does not fit a schedule of {num_train_timesteps}")
    t = torch.arange(k) * (num_train_timesteps // k)
    noise = torch.randn((1, k, *latent_shape), generator=generator)
    return Draws(t.view(1, k), torch.ones(1, k), noise)


def stratified_draws(
    k: int, latent_shape: tuple[int, ...], sampler: TimestepSampler, generator: torch.Generator, n: int = 1
) -> Draws:
    """CARV: K stratified inverse-CDF (t, p/q) from ``sampler`` and eps per row; n = 1 shares them (CRN)."""
    check_k(k)
    if not sampler.stratified:
        raise ValueError("the CARV draws need a stratified sampler (make_timestep_sampler(..., stratified=True))")
    rows = [sampler.sample(k, generator=generator) for _ in range(n)]
    noise = torch.randn((n, k, *latent_shape), generator=generator)
    return Draws(torch.stack([r.t for r in rows]), torch.stack([r.weight for r in rows]), noise)
