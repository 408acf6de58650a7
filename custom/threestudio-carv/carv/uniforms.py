"""Uniform draws on [0, 1): IID, or stratified with equal-probability strata (CARV sec. 2.3)."""

from __future__ import annotations

import torch

LARGEST_BELOW_ONE = 1.0 - 2.0**-53


def generator_device(generator: torch.Generator | None) -> torch.device:
    """Where a generator draws (CPU without one)."""
    return generator.device if generator is not None else torch.device("cpu")


def iid_uniforms(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n IID U[0, 1) draws on the CPU, float64 [n] (drawn on the generator's device, CUDA included)."""
    return torch.rand(n, generator=generator, dtype=torch.float64, device=generator_device(generator)).cpu()


def stratified_uniforms(n: int, strata: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws with n / strata per stratum [b/B, (b+1)/B), in random order, float64 [n].

    Each draw is marginally U[0, 1), so inverse-CDF draws stay q-distributed.
    """
    if strata < 1:
        raise ValueError(f"strata must be >= 1, got {strata}")
    if n % strata:
        raise ValueError(f"{n} draws cannot be split evenly over {strata} strata; use a divisor of {n}")
    if strata == 1:
        return iid_uniforms(n, generator=generator)
    stratum = torch.arange(strata, dtype=torch.float64).repeat(n // strata)
    u = (stratum + iid_uniforms(n, generator=generator)) / strata
    order = torch.randperm(n, generator=generator, device=generator_device(generator)).cpu()
    return u[order].clamp_(max=LARGEST_BELOW_ONE)
