"""An analytic toy expectation E_t,eps[F(t, eps)] whose per-draw norm peaks mid-schedule (for benchmarks).

F(t, eps) = m(t) (u + noise_scale * eps) in R^dim, eps ~ N(0, I), u a fixed unit
vector, and m(t) = floor + exp(-((t/T - peak) / width)^2 / 2): like the
latent-space SDS direction in CARV sec. 2.2, its norm is non-monotonic in t
and peaks mid-schedule, so E[||F||^2 | t] = m(t)^2 (1 + noise_scale^2 dim) is
known exactly and so is the oracle proposal q* proportional to p m(t).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .timesteps import TimestepSampler


@dataclass(frozen=True)
class PeakedNormToy:
    """The toy's parameters; t is in schedule steps, peak and width are fractions of the schedule."""

    num_train_timesteps: int = 1000
    peak: float = 0.45
    width: float = 0.08
    floor: float = 0.02
    noise_scale: float = 0.5
    dim: int = 4

    def norm_profile(self, t: torch.Tensor) -> torch.Tensor:
        """m(t), float64."""
        x = t.to(torch.float64) / self.num_train_timesteps
        return self.floor + torch.exp(-0.5 * ((x - self.peak) / self.width) ** 2)

    def direction_of_mean(self) -> torch.Tensor:
        """The unit vector u, float64 [dim]."""
        return torch.ones(self.dim, dtype=torch.float64) / self.dim**0.5

    def draws(self, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """F(t, eps) for each t, float64 [n, dim]."""
        eps = torch.randn(t.shape[0], self.dim, generator=generator, dtype=torch.float64)
        return self.norm_profile(t).unsqueeze(1) * (self.direction_of_mean() + self.noise_scale * eps)

    def second_moment(self, t: torch.Tensor) -> torch.Tensor:
        """E[||F||^2 | t] = m(t)^2 (1 + noise_scale^2 dim)."""
        return self.norm_profile(t) ** 2 * (1.0 + self.noise_scale**2 * self.dim)

    def exact_mean(self, sampler: TimestepSampler) -> torch.Tensor:
        """E_{t~p}[F] = E_p[m] u on the sampler's range, float64 [dim]."""
        return (sampler.target_pmf() * self.norm_profile(sampler.support)).sum() * self.direction_of_mean()

    def oracle_table(self) -> torch.Tensor:
        """q* over the whole schedule: proportional to p sqrt(E[||F||^2 | t]) (CARV sec. 2.2)."""
        return self.second_moment(torch.arange(self.num_train_timesteps)).sqrt()


def exact_single_draw_variance(sampler: TimestepSampler, toy: PeakedNormToy) -> float:
    """trace Var of one IID draw's weighted F under the sampler's q: sum_t p^2/q E[||F||^2|t] - ||mu||^2."""
    p, q = sampler.target_pmf(), sampler.proposal_pmf()
    second = (p**2 / q * toy.second_moment(sampler.support)).sum()
    return (second - toy.exact_mean(sampler).pow(2).sum()).item()


def estimate_means(
    sampler: TimestepSampler, toy: PeakedNormToy, n: int, repeats: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`repeats` independent n-draw importance-weighted estimates of E_p[F], float64 [repeats, dim]."""
    estimates = []
    for _ in range(repeats):
        draw = sampler.sample(n, generator=generator)
        estimates.append((draw.weight.double().unsqueeze(1) * toy.draws(draw.t, generator)).mean(dim=0))
    return torch.stack(estimates)
