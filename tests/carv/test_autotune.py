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


def knee_curve(n0: int, flat: float, slope: float, top: int = 256):
    """c(n) = flat up to n0 draws, then flat + (n - n0) slope (a device that batches until it is busy)."""
    from carv.cost_curve import TeacherCostCurve, doubling_ladder

    ladder = doubling_ladder(top)
    return TeacherCostCurve(ladder, tuple(flat + max(n - n0, 0) * slope for n in ladder))


def exact(sigma_b2: float, sigma_w2: float):
    return carv.VarianceComponents(sigma_b2, sigma_w2, math.nan, math.nan, 4, 4)


def planted_probe(a: float, b: float, sigma_b2: float, sigma_w2: float, calls: list, curve=None):
    """A probe returning components of a planted grid, the costs (a, b) and a teacher curve (linear in b unless
    given) when asked for one, recording its calls."""
    from carv.autotune import ProbeResult
    from carv.cost_curve import TeacherCostCurve, doubling_ladder

    components = carv.variance_components(planted_grid(4000, 4, 6, sigma_b2, sigma_w2, seed=3))

    def probe(renders, draws, step, curve_draws):
        calls.append((renders, draws, step, curve_draws))
        measured = (curve or TeacherCostCurve.linear(b, doubling_ladder(curve_draws))) if curve_draws else None
        return ProbeResult(components, a, b, measured)

    return probe


def options(**kwargs):
    from carv.autotune import AutoKOptions

    defaults = dict(auto_every_n_steps=3, auto_k_initial=2, auto_k_max=64, auto_probe_size=3)
    return AutoKOptions(**{**defaults, **kwargs})


def test_controller_probes_before_its_steps_and_measures_the_curve_once():
    from carv.autotune import AutoKController

    calls = []
    probe = planted_probe(16.0, 1.0, 1.0, 4.0, calls)  # linear: K* = sqrt(16 * 4 / 1) = 8, every R ties: R = 1
    controller = AutoKController(options(auto_max_draws_per_step=32), renders_initial=2)
    configurations = [controller.configuration_for_step(step, probe)[0] for step in range(4)]
    assert configurations == [(1, 8)] * 4
    assert calls == [(3, 4, 0, 32), (3, 4, 3, 0)]  # 3 renders x 4 (even) draws; the curve up to 32 at the first
    assert controller.curve.draws == (1, 2, 4, 8, 16, 32)
    controller.observe_step({"render": 64.0, "teacher": 8.0}, renders=1, k=8)  # a = 64 from the step's clock
    assert controller.auto.a == 40.0  # running average (smoothing 0.5)
    auto = controller.auto  # the planted grid's estimates of (1, 4), observed twice
    (renders, k), record = controller.configuration_for_step(6, probe)
    assert renders == 1 and k == carv.optimal_k(40.0, 1.0, auto.sigma_b2, auto.sigma_w2) > 8
    assert record["renders"] == 1 and record["k"] == k and record["k_star"] == k  # linear curve: K* of the model
    assert record["linear_renders"] == 1 and record["linear_k"] == k and record["ecm_vs_baseline"] > 1


def test_a_first_probe_without_a_curve_is_an_error():
    from carv.autotune import AutoKController, ProbeResult

    controller = AutoKController(options())
    with pytest.raises(ValueError, match="cost curve"):
        controller.configuration_for_step(0, lambda *args: ProbeResult(exact(1.0, 1.0), 1.0, 1.0))


@pytest.mark.parametrize("lag", [0, 2])
def test_the_choice_applies_lag_steps_after_its_probe_r_and_k_together(lag):
    from carv.autotune import AutoKController

    probe = planted_probe(1.0, 10.0, 1.0, 4.0, [], curve=knee_curve(n0=8, flat=10.0, slope=1.0))
    controller = AutoKController(options(auto_every_n_steps=4, auto_r_max=8), renders_initial=1, lag=lag)
    configurations = [controller.configuration_for_step(step, probe)[0] for step in range(4)]
    assert configurations == [(1, 2)] * lag + [(4, 2)] * (4 - lag)  # (R_initial, K_initial) until the choice runs
    assert [row["renders"] for row in controller.history] == [r for r, _ in configurations]
    assert controller.renders_ahead == 4


def test_the_choice_of_a_step_never_depends_on_the_draws_of_that_step():
    """Two controllers with the same past, whose step s then draws (and times) differently: the (R, K) each ran at
    step s, and every (R, K) planned for steps before the next probe, are identical."""
    import copy

    from carv.autotune import AutoKController

    for lag in (0, 2):
        probe = planted_probe(1.0, 10.0, 1.0, 4.0, [], curve=knee_curve(n0=8, flat=10.0, slope=1.0))
        one = AutoKController(options(auto_every_n_steps=5), renders_initial=1, lag=lag)
        for step in range(7):
            configuration, _ = one.configuration_for_step(step, probe)
            one.observe_step({"render": 1.0, "teacher": 10.0}, *configuration)
        other = copy.deepcopy(one)
        ran = one.configuration_for_step(7, probe)[0]
        assert other.configuration_for_step(7, probe)[0] == ran
        one.observe_step({"render": 1e-3, "teacher": 1e3}, *ran)  # step 7's own draws: wildly different clocks
        other.observe_step({"render": 1e3, "teacher": 1e-3}, *ran)
        assert one.configuration_at(7) == other.configuration_at(7) == ran
        assert [one.configuration_for_step(s, probe)[0] for s in (8, 9)] == [
            other.configuration_for_step(s, probe)[0] for s in (8, 9)
        ]


def test_between_render_variance_buys_renders_at_one_draw_each():
    from carv.autotune import choose_configuration
    from carv.cost_curve import MeasuredCostModel, TeacherCostCurve, doubling_ladder

    costs = MeasuredCostModel(1.0, TeacherCostCurve.linear(1.0, doubling_ladder(64)))
    choice = choose_configuration(costs, 100.0, 1.0, options())
    assert choice.k == 1 and choice.renders > 1  # (4, 1): the baseline itself wins the tie of all R at K = 1
    assert (choice.renders, choice.k) == (4, 1) and choice.ecm == 1.0


def test_within_render_variance_buys_draws_on_one_render():
    from carv.autotune import choose_configuration
    from carv.cost_curve import MeasuredCostModel, TeacherCostCurve, doubling_ladder

    costs = MeasuredCostModel(24.0, TeacherCostCurve.linear(1.0, doubling_ladder(128)))  # budget 4 (24 + 1) = 100
    choice = choose_configuration(costs, 1.0, 1000.0, options(auto_k_max=64, auto_max_draws_per_step=128))
    assert (choice.renders, choice.k) == (1, 64)  # K* = sqrt(24 000) = 155, capped by auto_k_max
    assert choice.budget == 100.0 and choice.ecm > 2
    choice = choose_configuration(costs, 1.0, 1000.0, options(auto_k_max=128, auto_max_draws_per_step=128))
    assert (choice.renders, choice.k) == (1, 76)  # capped by the budget: 24 + 76 = 100


def test_a_flat_then_linear_curve_sends_the_step_to_the_knee():
    """c(n) = 10 up to 8 draws, then 1 a draw; a = 1: budget C(4, 1) = 4 + 10 = 14. The brute force over the budget:
    (4, 2), R K = 8 = the knee, Var C = (1 + 4/2)/4 * 14 = 10.5 against the baseline's (1 + 4)/4 * 14 = 17.5; the
    linear model (b = c(1) = 10) sees K = 2 as dearer than K = 1 and keeps the baseline."""
    from carv.autotune import choose_configuration
    from carv.cost_curve import MeasuredCostModel

    costs = MeasuredCostModel(1.0, knee_curve(n0=8, flat=10.0, slope=1.0))
    choice = choose_configuration(costs, 1.0, 4.0, options())
    assert (choice.renders, choice.k) == (4, 2) and choice.renders * choice.k == 8
    assert choice.ecm == pytest.approx(17.5 / 10.5, rel=1e-12)
    assert (choice.linear_renders, choice.linear_k) == (4, 1) and choice.linear_ecm == 1.0


def test_the_choice_never_has_more_predicted_variance_times_cost_than_the_baseline():
    import random

    from carv.autotune import SearchSpace, choose_configuration
    from carv.cost_curve import MeasuredCostModel, TeacherCostCurve, doubling_ladder, variance_times_cost

    rng = random.Random(0)
    for _ in range(300):
        ladder = doubling_ladder(rng.choice([8, 16, 64]))
        seconds = [rng.uniform(0.01, 1.0)]
        for _ in ladder[1:]:
            seconds.append(seconds[-1] + rng.uniform(0.0, 1.0) * rng.choice([0.0, 0.1, 1.0]))
        costs = MeasuredCostModel(rng.uniform(0.0, 5.0), TeacherCostCurve(ladder, tuple(seconds)))
        o = options(
            auto_r_max=rng.randint(1, 8),
            auto_k_max=rng.randint(1, 64),
            auto_baseline_renders=rng.randint(1, 4),
            auto_baseline_k=rng.randint(1, 2),
            auto_max_draws_per_step=ladder[-1],
        )
        sigma_b2, sigma_w2 = rng.uniform(-0.1, 10) * rng.choice([0.01, 1, 100]), rng.uniform(0, 10)
        choice = choose_configuration(costs, sigma_b2, sigma_w2, o)
        baseline = (o.auto_baseline_renders, o.auto_baseline_k)
        space = SearchSpace(costs, o.auto_r_max, o.auto_k_max, 1, ladder[-1])
        assert choice.renders * choice.k <= ladder[-1] and choice.renders <= max(o.auto_r_max, baseline[0])
        assert costs.step_cost(choice.renders, choice.k) <= choice.budget * (1 + 1e-9) or not space.fits(*baseline)
        if space.fits(*baseline):
            chosen = variance_times_cost(costs, max(sigma_b2, 0.0), sigma_w2, choice.renders, choice.k)
            assert chosen <= variance_times_cost(costs, max(sigma_b2, 0.0), sigma_w2, *baseline) * (1 + 1e-12)
            assert choice.ecm >= 1.0 - 1e-12


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"auto_r_max": 0}, "auto_r_max"),
        ({"auto_baseline_k": 0}, "auto_baseline_k"),
        ({"auto_baseline_renders": 8, "auto_max_draws_per_step": 4}, "auto_max_draws_per_step"),
    ],
)
def test_bad_r_and_baseline_options(kwargs, message):
    from carv.autotune import AutoKController

    with pytest.raises(ValueError, match=message):
        AutoKController(options(**kwargs))


def test_with_strata_the_choice_is_a_multiple_of_them():
    from carv.autotune import choose_configuration
    from carv.cost_curve import MeasuredCostModel, TeacherCostCurve, doubling_ladder

    costs = MeasuredCostModel(24.0, TeacherCostCurve.linear(1.0, doubling_ladder(64)))
    for sigmas in [(100.0, 1.0), (1.0, 1000.0), (1.0, 30.0)]:
        choice = choose_configuration(costs, *sigmas, options(auto_k_initial=4), k_multiple=4)
        assert choice.k % 4 == 0 and costs.step_cost(choice.renders, choice.k) <= choice.budget


def test_renders_the_system_cannot_draw_are_never_chosen():
    """threestudio 0.2.3 cannot collate camera batches of 3: with R = 3 excluded, the choice (and the linear model's)
    is the best of the other pairs in the budget (brute force), where R = 3 would have won."""
    from carv.autotune import AutoKController, choose_configuration
    from carv.cost_curve import MeasuredCostModel, affordable, variance_times_cost

    costs = MeasuredCostModel(1.0, knee_curve(n0=8, flat=10.0, slope=1.0))
    o = options(auto_r_max=8, auto_max_draws_per_step=64)
    excluded = frozenset({3})
    for sigma_b2, sigma_w2 in ((0.1, 1.0), (1.0, 10.0), (10.0, 100.0)):
        assert choose_configuration(costs, sigma_b2, sigma_w2, o).renders == 3
        choice = choose_configuration(costs, sigma_b2, sigma_w2, o, excluded_renders=excluded)
        assert choice.renders != 3 and choice.linear_renders != 3
        others = [p for p in affordable(costs, costs.step_cost(4, 1), r_max=8, k_max=64) if p[0] != 3]
        best = min(variance_times_cost(costs, sigma_b2, sigma_w2, *p) for p in others)
        assert variance_times_cost(costs, sigma_b2, sigma_w2, choice.renders, choice.k) == best
    probe = planted_probe(1.0, 10.0, 1.0, 10.0, [], curve=knee_curve(n0=8, flat=10.0, slope=1.0))
    free = AutoKController(options(auto_r_max=8), renders_initial=1)
    assert free.configuration_for_step(0, probe)[0][0] == 3  # the planted grid's estimates pick R = 3
    controller = AutoKController(options(auto_r_max=8), renders_initial=1, excluded_renders=excluded)
    assert controller.configuration_for_step(0, probe)[0][0] != 3
