"""Stratified and golden-ratio azimuths (carv.cameras): each camera marginally uniform, one per stratum, lower
variance of the mean of a smooth function of the camera than independent draws, and no bias."""

import math

import pytest
import torch

from carv.cameras import AZIMUTH_SAMPLING, GOLDEN, lattice_offset, stratified_azimuths

from ..helpers import two_sided_z

RANGE = (-180.0, 180.0)
ALPHA = 0.01


def dkw_bound(n: int, alpha: float) -> float:
    """sup |F_n - F| exceeds this with probability at most alpha for n IID draws (Dvoretzky-Kiefer-Wolfowitz)."""
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


def ks_distance_from_uniform(u: torch.Tensor) -> float:
    """Kolmogorov-Smirnov distance of draws u in [0, 1) from U[0, 1)."""
    u, n = u.double().sort().values, u.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - u).max().item(), (u - (i - 1) / n).max().item())


def azimuths_of(sampling: str, renders: int, step: int, generator: torch.Generator) -> torch.Tensor:
    """One step's azimuths with a fresh run start and a fresh per-step draw (both uniform)."""
    start, fresh = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
    return stratified_azimuths(renders, RANGE, lattice_offset(sampling, renders, step, start, fresh))


def fraction(azimuth: torch.Tensor) -> torch.Tensor:
    return (azimuth.double() - RANGE[0]) / (RANGE[1] - RANGE[0])


@pytest.mark.parametrize("sampling", AZIMUTH_SAMPLING[1:])
def test_each_camera_is_marginally_uniform(sampling):
    renders, n, g = 4, 2000, torch.Generator().manual_seed(0)
    draws = torch.stack([azimuths_of(sampling, renders, 37, g) for _ in range(n)])  # [n, R], independent runs
    bound = dkw_bound(n, ALPHA / (renders * len(AZIMUTH_SAMPLING[1:])))  # Bonferroni over cameras and rules
    for camera in range(renders):
        assert ks_distance_from_uniform(fraction(draws[:, camera])) < bound, camera


@pytest.mark.parametrize("renders", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("sampling", AZIMUTH_SAMPLING[1:])
def test_a_steps_azimuths_fall_one_in_each_stratum(sampling, renders):
    g = torch.Generator().manual_seed(renders)
    for step in range(50):
        strata = (fraction(azimuths_of(sampling, renders, step, g)) * renders).floor().long()
        assert sorted(strata.tolist()) == list(range(renders))


def test_golden_offsets_rotate_the_strata_by_the_golden_ratio():
    offsets = [lattice_offset("golden", 4, step, 0.3, 0.0) for step in range(5)]
    strata_offsets = [4 * o % 1.0 for o in offsets]
    steps = [(b - a) % 1.0 for a, b in zip(strata_offsets, strata_offsets[1:], strict=False)]
    assert steps == pytest.approx([GOLDEN] * 4, abs=1e-12)


def test_an_unknown_rule_or_offset_is_refused():
    with pytest.raises(ValueError, match="stratified, golden"):
        lattice_offset("threestudio", 4, 0, 0.1, 0.2)
    with pytest.raises(ValueError, match="offset in"):
        stratified_azimuths(4, RANGE, 1.0)


def integrand(azimuth: torch.Tensor) -> torch.Tensor:
    """A smooth function of the camera with every harmonic (so no lattice integrates it exactly)."""
    a = torch.deg2rad(azimuth.double())
    return torch.exp(torch.cos(a - 0.4)) + 0.5 * torch.sin(3.0 * a) ** 2


def true_mean() -> float:
    grid = torch.arange(8192, dtype=torch.float64) / 8192 * 360.0 - 180.0  # periodic trapezoid: exact to 1e-15
    return integrand(grid).mean().item()


def means_and_variance(values: torch.Tensor) -> tuple[float, float, float, float]:
    """(mean, its SE, variance, its SE) of independent estimates [M]."""
    m = values.numel()
    mean, var = values.mean().item(), values.var().item()
    squares = (values - values.mean()).pow(2)
    return mean, math.sqrt(var / m), var, squares.std().item() / math.sqrt(m)


@pytest.mark.parametrize(
    ("renders", "steps", "sampling"),
    [(4, 1, "stratified"), (4, 1, "golden"), (1, 16, "golden"), (2, 8, "golden")],
)
def test_strata_lower_the_variance_of_the_mean_without_bias(renders, steps, sampling):
    """Mean of the integrand over `steps` consecutive steps of `renders` cameras: IID against `sampling`."""
    m, g = 600, torch.Generator().manual_seed(renders * 100 + steps)
    iid, strata = [], []
    for _ in range(m):
        iid.append(integrand(torch.rand(renders * steps, generator=g) * 360.0 - 180.0).mean())
        start = torch.rand(1, generator=g, dtype=torch.float64).item()
        cameras = [
            stratified_azimuths(
                renders,
                RANGE,
                lattice_offset(sampling, renders, s, start, torch.rand(1, generator=g, dtype=torch.float64).item()),
            )
            for s in range(steps)
        ]
        strata.append(integrand(torch.cat(cameras)).mean())
    z = two_sided_z(comparisons=8)  # 4 cases x (variance, bias)
    iid_mean, iid_se, iid_var, iid_var_se = means_and_variance(torch.stack(iid))
    mean, mean_se, var, var_se = means_and_variance(torch.stack(strata))
    assert iid_var - var > z * math.hypot(iid_var_se, var_se)
    assert abs(mean - true_mean()) < z * mean_se
    assert abs(iid_mean - true_mean()) < z * iid_se
