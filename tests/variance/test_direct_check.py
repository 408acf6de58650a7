"""The direct check of `carv variance` at the report's sizes on planted two-level models, and why its probe grid
draws independent cameras.

Under the model (independent renders, Var = (sigma_b^2 + sigma_w^2 / K) / R) the prediction (four 16 x 8 grids,
sigma_b^2 pooled) and the measurement (64 repeated R = 4, K = 1 steps) are both unbiased and their z-score is
centred: a measured variance above the prediction is a coin flip, so 5 of 6 above (p = 7/64) is within chance.
Renders drawn one per azimuth stratum are not independent: the nested ANOVA then overstates sigma_b^2.
"""

import math

import pytest
import torch

import carv
from carv.accounting import component_estimates
from carv.pipeline.cameras import batch_azimuths
from carv.stratified_variance import repeated_variance
from carv.variance_model import BASELINE, Setting, VarianceModel

from ..helpers import two_sided_z

SIGMA_B2, SIGMA_W2, D = 0.2, 0.8, 4


def draws(shape: tuple, variance: float, generator: torch.Generator, heavy: bool) -> torch.Tensor:
    """[*shape, D] with trace variance `variance`; heavy: a per-draw exponential scale (squared norms then have
    E[x^2] / E[x]^2 about 2 times a Gaussian's, as the parameter gradients of draws.csv have)."""
    x = torch.randn(*shape, D, generator=generator, dtype=torch.float64) * math.sqrt(variance / D)
    if heavy:
        scale = -torch.log1p(-torch.rand(*shape, 1, generator=generator, dtype=torch.float64))  # Exp(1): mean 1
        x = x * scale.sqrt()
    return x


def direct_check(generator: torch.Generator, heavy: bool) -> tuple[float, float, float]:
    """(predicted, measured, z) of the baseline R = 4, K = 1 as report.validate computes them."""
    fitted = {}
    for proposal in ("uniform", "sds", "gaussian", "adaptive"):
        grid = draws((16, 1), SIGMA_B2, generator, heavy) + draws((16, 8), SIGMA_W2, generator, heavy)
        fitted[Setting(proposal, False)] = carv.variance_components(grid)
    model = VarianceModel(fitted, carv.CostModel(1.0, 1.0))
    predicted, predicted_se = model.variance(BASELINE, 4, 1), model.variance_se(BASELINE, 4, 1)
    steps = (draws((64, 4), SIGMA_B2, generator, heavy) + draws((64, 4), SIGMA_W2, generator, heavy)).mean(dim=1)
    measured, measured_se = repeated_variance(steps)
    return predicted, measured, (measured - predicted) / math.hypot(measured_se, predicted_se)


@pytest.mark.parametrize("heavy", [False, True])
def test_the_direct_check_is_centred_when_the_model_holds(heavy):
    trials, generator = 400, torch.Generator().manual_seed(11 + heavy)
    predicted, measured, z = torch.tensor([direct_check(generator, heavy) for _ in range(trials)]).T
    truth = carv.predicted_variance(SIGMA_B2, SIGMA_W2, 4, 1)
    bound = two_sided_z(comparisons=2 * 4)  # two cases x (two means, the sign, the mean z)
    for values in (predicted, measured):  # both sides unbiased
        assert abs(values.mean().item() - truth) < bound * values.std().item() / math.sqrt(trials)
    above = (measured > predicted).double().mean().item()
    assert abs(above - 0.5) < bound * math.sqrt(0.25 / trials)
    assert abs(z.mean().item()) < bound / math.sqrt(trials) * z.std().item()


def test_one_render_per_azimuth_stratum_overstates_sigma_b2():
    """Render means cos(azimuth) v plus noise: with independent azimuths the ANOVA's sigma_b^2 is unbiased for
    Var(cos) = 1/2; with one jittered azimuth per each of 16 strata it is high by (1/15 - 1/16) sum_i mu_i^2."""
    r, k, grids, generator = 16, 2, 2000, torch.Generator().manual_seed(5)
    stratum = math.pi / r
    bias = (1 / (r - 1) - 1 / r) * r * 0.5 * (math.sin(stratum) / stratum) ** 2  # sum of squared stratum means
    bound = two_sided_z(comparisons=3)
    for jittered, expected in ((False, 0.5), (True, 0.5 + bias)):
        estimates = []
        for _ in range(grids):
            azimuth = batch_azimuths(r, (-180.0, 180.0), jittered, generator).double()
            between = torch.cos(torch.deg2rad(azimuth)).view(r, 1, 1)
            grid = between + 0.3 * torch.randn(r, k, 1, generator=generator, dtype=torch.float64)
            estimates.append(component_estimates(grid)[0])
        estimates = torch.tensor(estimates)
        se = estimates.std().item() / math.sqrt(grids)
        assert abs(estimates.mean().item() - expected) < bound * se, jittered
    assert bias > 3 * bound * se  # the test tells the two apart


def test_the_reports_grids_draw_independent_cameras():
    from carv.variance.report import ReportOptions, measure_grids
    from carv.variance_model import SETTINGS, Grid

    from ..helpers import planted_grid

    class RecordingProbe:
        rules = []

        def warm_up(self, *args):
            pass

        def grid(self, setting, renders, k, generator, progress=None, camera_rule="training"):
            self.rules.append(camera_rule)
            ones = torch.ones(renders, k)
            t = torch.arange(k).repeat(renders, 1)
            return Grid(planted_grid(renders, k, 3, 1.0, 1.0, seed=len(self.rules)), t, ones, ones, ones)

    class Progress:
        def set_description(self, text):
            pass

        def update(self, n):
            pass

    probe = RecordingProbe()
    measure_grids(probe, ReportOptions(renders=4, draws=2), torch.Generator().manual_seed(0), Progress())
    assert probe.rules == ["iid"] * len(SETTINGS)
