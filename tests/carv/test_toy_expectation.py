"""The benchmark toy: exact variances agree with repetition, and the oracle beats uniform."""

import torch

import carv
from carv.stratified_variance import repeated_variance
from carv.toy_expectation import PeakedNormToy, estimate_means, exact_single_draw_variance

from ..helpers import two_sided_z

TOY = PeakedNormToy()


def sampler(proposal, **kwargs):
    return carv.make_timestep_sampler(proposal, min_step=20, max_step=980, **kwargs)


def test_estimates_are_unbiased_and_match_the_exact_variance():
    for proposal in ["uniform", "sds", TOY.oracle_table()]:
        s = sampler(proposal)
        n, repeats = 8, 3000
        estimates = estimate_means(s, TOY, n, repeats, torch.Generator().manual_seed(0))
        standard_error = estimates.std(dim=0) / repeats**0.5
        mean_error = (estimates.mean(dim=0) - TOY.exact_mean(s)).abs()
        assert (mean_error <= two_sided_z(comparisons=TOY.dim) * standard_error).all()
        variance, variance_se = repeated_variance(estimates)
        exact = exact_single_draw_variance(s, TOY) / n
        assert abs(variance - exact) <= two_sided_z(comparisons=3) * variance_se


def test_oracle_has_the_lowest_single_draw_variance():
    oracle = exact_single_draw_variance(sampler(TOY.oracle_table()), TOY)
    for proposal in ["uniform", "sds", "fantasia3d", "gaussian"]:
        assert oracle < exact_single_draw_variance(sampler(proposal), TOY)
