"""AutoK picks the K* of the cost model from planted components and costs."""

import math

import pytest

import carv
from carv.autotune import AutoK

from ..helpers import planted_grid


def test_auto_k_picks_the_known_k_star_from_planted_components():
    a, b, sigma_b2, sigma_w2 = 16.0, 1.0, 1.0, 4.0  # K* = sqrt(16 * 4 / 1) = 8
    auto = AutoK(k_initial=2, every=10, smoothing=0.0)
    auto.observe_costs(a, b)
    auto.observe_components(carv.variance_components(planted_grid(4000, 4, 6, sigma_b2, sigma_w2, seed=3)))
    assert auto.k_for_step(5) == 2  # not a multiple of `every`: K stays
    assert auto.k_for_step(10) == carv.optimal_k(a, b, sigma_b2, sigma_w2) == 8


def test_auto_k_keeps_k_until_it_has_estimates_and_respects_bounds():
    auto = AutoK(k_initial=4, k_min=2, k_max=6, every=1)
    assert auto.k_for_step(0) == 4
    auto.observe_costs(100.0, 1.0)
    auto.observe_components(carv.VarianceComponents(0.0, 1.0, math.nan, math.nan, 2, 2))
    assert auto.k_for_step(1) == 6
    auto = AutoK(k_initial=2, k_min=2, k_max=6, every=1)
    auto.observe_costs(0.0, 1.0)
    auto.observe_components(carv.VarianceComponents(1.0, 1.0, math.nan, math.nan, 2, 2))
    assert auto.k_for_step(1) == 2


def test_running_averages():
    auto = AutoK(smoothing=0.5)
    auto.observe_costs(2.0, 1.0)
    auto.observe_costs(4.0, 3.0)
    assert (auto.a, auto.b) == (3.0, 2.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"k_initial": 0}, "k_min <= k_initial"), ({"every": 0}, "every"), ({"smoothing": 1.0}, "smoothing")],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AutoK(**kwargs)


def test_bad_observations():
    auto = AutoK()
    with pytest.raises(ValueError, match="b > 0"):
        auto.observe_costs(1.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        auto.observe_components(carv.VarianceComponents(float("nan"), 1.0, 0.0, 0.0, 2, 2))
    with pytest.raises(ValueError, match="before choosing K"):
        auto.k_star()


@pytest.mark.parametrize("multiple", [1, 3, 4])
def test_k_star_is_the_best_multiple_of_the_strata(multiple):
    """With strata B per render, K is the multiple of B in [B, k_max] of least work-normalised variance (exact)."""
    from carv.accounting import CostModel, work_normalised_variance

    a, b, sigma_b2, sigma_w2 = 30.0, 1.0, 1.0, 2.0  # continuous K* = sqrt(60) = 7.75
    auto = AutoK(k_initial=multiple, k_max=24, every=1, smoothing=0.0, k_multiple=multiple)
    auto.observe_costs(a, b)
    auto.observe_components(carv.VarianceComponents(sigma_b2, sigma_w2, math.nan, math.nan, 2, 2))
    candidates = range(multiple, 25, multiple)
    best = min(candidates, key=lambda k: work_normalised_variance(sigma_b2, sigma_w2, CostModel(a, b), k))
    assert auto.k_star() == best and auto.k_for_step(0) % multiple == 0


def test_k_multiple_must_fit_the_bounds():
    with pytest.raises(ValueError, match="k_multiple"):
        AutoK(k_initial=4, k_max=8, k_multiple=3)


def planted_probe(a: float, b: float, sigma_b2: float, sigma_w2: float, calls: list):
    """A probe returning components of a planted grid and the costs (a, b), recording its calls."""
    from carv.autotune import ProbeResult

    components = carv.variance_components(planted_grid(4000, 4, 6, sigma_b2, sigma_w2, seed=3))

    def probe(renders, draws, step):
        calls.append((renders, draws, step))
        return ProbeResult(components, a, b)

    return probe


def test_controller_probes_before_its_steps_and_picks_the_planted_k_star():
    from carv.autotune import AutoKController, AutoKOptions

    calls = []
    probe = planted_probe(16.0, 1.0, 1.0, 4.0, calls)  # K* = sqrt(16 * 4 / 1) = 8
    controller = AutoKController(AutoKOptions(auto_every_n_steps=3, auto_k_initial=2, auto_k_max=64, auto_probe_size=3))
    ks = [controller.k_for_step(step, probe)[0] for step in range(4)]
    assert ks == [8, 8, 8, 8] and calls == [(3, 4, 0), (3, 4, 3)]  # 3 renders x 4 (even) draws, at steps 0 and 3
    controller.observe_step({"render": 64.0, "teacher": 8.0}, renders=1, k=8)  # a = 64, b = 1 from the step's clock
    assert (controller.auto.a, controller.auto.b) == (40.0, 1.0)  # running averages (smoothing 0.5)
    auto = controller.auto  # the planted grid's estimates of (1, 4), observed twice
    assert controller.k_for_step(6, probe)[0] == carv.optimal_k(40.0, 1.0, auto.sigma_b2, auto.sigma_w2) > 8
