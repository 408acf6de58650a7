"""The measured cost model C(R, K) = R a + c(R K): synthetic curves with known optima, and the ladder on a fake clock."""

import itertools
import random

import pytest

from carv.accounting import CostModel, configuration_ecm, optimal_k
from carv.cost_curve import (
    MeasuredCostModel,
    TeacherCostCurve,
    affordable,
    best_configuration,
    best_k,
    doubling_ladder,
    interleaved_medians,
    measure_teacher_curve,
    reuse_limit_measured,
    variance_times_cost,
)


def knee_curve(n0: int, flat: float, slope: float, top: int = 256) -> TeacherCostCurve:
    """c(n) = flat up to n0 (the device is not yet busy), then flat + (n - n0) slope."""
    ladder = doubling_ladder(top)
    return TeacherCostCurve(ladder, tuple(flat + max(n - n0, 0) * slope for n in ladder))


def test_ladder_doubles_up_to_its_bound():
    assert doubling_ladder(1) == (1,)
    assert doubling_ladder(16) == (1, 2, 4, 8, 16)
    assert doubling_ladder(12) == (1, 2, 4, 8, 12)
    with pytest.raises(ValueError, match="max_draws >= 1"):
        doubling_ladder(0)


def test_curve_interpolates_through_its_points_and_the_origin():
    curve = TeacherCostCurve((1, 2, 4), (1.0, 1.5, 3.5))
    assert curve(0) == 0.0
    assert curve(1) == 1.0 and curve(2) == 1.5 and curve(4) == 3.5
    assert curve(3) == pytest.approx(2.5)
    assert curve(6) == pytest.approx(5.5)  # the last segment's slope (1 per draw) beyond the ladder


def test_curve_is_made_monotone():
    curve = TeacherCostCurve((1, 2, 4, 8), (1.0, 0.8, 1.2, 1.1))
    assert curve.seconds == (1.0, 1.0, 1.2, 1.2)
    values = [curve(n) for n in range(0, 20)]
    assert values == sorted(values)


@pytest.mark.parametrize(
    "draws, seconds, message",
    [((), (), "as many seconds"), ((1, 1), (1.0, 2.0), "strictly increasing"), ((1,), (0.0,), "positive")],
)
def test_bad_curves_are_refused(draws, seconds, message):
    with pytest.raises(ValueError, match=message):
        TeacherCostCurve(draws, seconds)


def test_linear_curve_is_the_linear_cost_model():
    linear = CostModel(0.7, 0.3)
    measured = MeasuredCostModel(0.7, TeacherCostCurve.linear(0.3, doubling_ladder(8)))
    for renders, k in itertools.product(range(1, 6), range(1, 40)):
        assert measured.step_cost(renders, k) == pytest.approx(linear.step_cost(renders, k), rel=1e-12)
    assert measured.linear() == linear


def test_a_step_sends_all_its_draws_as_one_batch():
    costs = MeasuredCostModel(1.0, knee_curve(n0=8, flat=10.0, slope=1.0))
    assert costs.step_cost(2, 4) == 2 * 1.0 + 10.0  # c(R K) = c(8), not R c(K)
    assert costs.step_cost(4, 4) == 4 * 1.0 + 10.0 + 8 * 1.0


def test_linear_curve_reproduces_the_closed_form_k_star():
    rng = random.Random(0)
    for _ in range(200):
        a, b = rng.uniform(0.01, 10), rng.uniform(0.01, 10)
        sigma_b2, sigma_w2 = rng.uniform(1e-3, 10), rng.uniform(0, 100)
        expected = optimal_k(a, b, sigma_b2, sigma_w2, k_max=512)
        assert best_k(CostModel(a, b), sigma_b2, sigma_w2, k_max=512) == expected
        curve = TeacherCostCurve.linear(b, doubling_ladder(512))
        assert best_k(MeasuredCostModel(a, curve), sigma_b2, sigma_w2, k_max=512) == expected


def test_a_flat_curve_moves_k_star_to_the_knee():
    # c(1) = 10 with a = 1: the linear model says K* = sqrt(a sigma_w^2 / (b sigma_b^2)) < 1, so K = 1; but the
    # first 8 draws cost the same as one, and past the knee c(n) = A + n with A = a + 10 - 8 = 3, whose own
    # optimum sqrt(A sigma_w^2 / sigma_b^2) = 3.5 lies before the knee: K* is the knee.
    costs = MeasuredCostModel(1.0, knee_curve(n0=8, flat=10.0, slope=1.0))
    assert optimal_k(1.0, 10.0, 1.0, 4.0) == 1
    assert best_k(costs, 1.0, 4.0) == 8
    # A very noisy within-render term goes past the knee, to the optimum of the line beyond it: sqrt(3e4) = 173.
    assert best_k(costs, 1.0, 10_000.0) in (173, 174)


def test_a_memory_bound_caps_k():
    ladder = doubling_ladder(64)
    curve = TeacherCostCurve(ladder, tuple(0.01 * n for n in ladder), peak_bytes=tuple(100.0 * n for n in ladder))
    free = MeasuredCostModel(1.0, curve)
    bounded = MeasuredCostModel(1.0, curve, memory_limit=500.0)
    assert best_k(free, 1.0, 100.0) > 5
    assert best_k(bounded, 1.0, 100.0) == 5
    assert best_k(bounded, 1.0, 100.0, renders=2) == 2  # R K <= 5
    assert all(r * k <= 5 for r, k in affordable(bounded, budget=1e9, k_max=64))


def test_best_configuration_is_the_brute_force_best_ecm_within_the_budget():
    costs = MeasuredCostModel(2.0, knee_curve(n0=16, flat=0.5, slope=0.2))
    baseline = (4, 1)
    budget = costs.step_cost(*baseline)
    for sigma_b2, sigma_w2 in [(1.0, 1.0), (1.0, 30.0), (0.05, 8.0), (2.0, 0.1)]:
        grid = [(r, k) for r in range(1, 12) for k in range(1, 200) if costs.step_cost(r, k) <= budget * (1 + 1e-9)]
        ecms = {
            pair: configuration_ecm(costs, (sigma_b2, sigma_w2), (sigma_b2, sigma_w2), *pair, baseline_renders=4)
            for pair in grid
        }
        chosen = best_configuration(costs, sigma_b2, sigma_w2, budget, baseline, k_max=200)
        assert ecms[chosen] == pytest.approx(max(ecms.values()), rel=1e-12)
        assert ecms[chosen] >= 1.0 - 1e-12


def test_best_configuration_falls_back_to_the_baseline():
    costs = CostModel(1.0, 1.0)
    assert best_configuration(costs, 1.0, 1.0, budget=0.5) == (4, 1)  # nothing fits: run the baseline


def test_reuse_limit_under_a_flat_curve_exceeds_the_linear_one():
    linear = CostModel(1.0, 1.0)
    flat = MeasuredCostModel(1.0, knee_curve(n0=8, flat=1.0, slope=1.0))  # K = 8 costs what K = 1 does
    assert reuse_limit_measured(flat, 1.0, 4.0) > reuse_limit_measured(linear, 1.0, 4.0)
    assert variance_times_cost(flat, 1.0, 4.0, 1, 8) < variance_times_cost(linear, 1.0, 4.0, 1, 2)


class FakeClock:
    """A clock that only moves when the fake teacher runs."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_curve_measurement_on_a_fake_clock():
    clock, calls = FakeClock(), []

    def evaluate(n):
        calls.append(n)
        # the warm-up call is slow, and the second timed call of each size is disturbed: the median ignores both
        clock.now += 0.010 + 0.001 * n + {1: 0.5, 3: 0.2}.get(calls.count(n), 0.0)

    curve = measure_teacher_curve(evaluate, (1, 2, 4, 8), repeats=3, clock=clock)
    assert curve.draws == (1, 2, 4, 8)
    assert curve.seconds == pytest.approx(tuple(0.010 + 0.001 * n for n in (1, 2, 4, 8)), rel=1e-9)
    # warm-ups in ladder order, then three rounds over all sizes, each round starting one size later
    assert calls == [1, 2, 4, 8] + [1, 2, 4, 8] + [2, 4, 8, 1] + [4, 8, 1, 2]
    assert curve.peak_bytes is None


def test_interleaved_rounds_spread_a_load_change_over_every_call():
    """A slowdown that starts half way through the measurement must not fall on the calls timed last."""
    clock, timed = FakeClock(), []
    slow_from = 6  # the 7th timed call on runs at 3x

    def call(cost):
        def run():
            clock.now += cost * (3.0 if len(timed) >= slow_from else 1.0)
            timed.append(cost)

        return run

    medians = interleaved_medians({"a": call(1.0), "b": call(2.0)}, repeats=6, clock=clock)
    assert medians["b"] / medians["a"] == pytest.approx(2.0)  # sequential timing would give 6.0
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        interleaved_medians({"a": call(1.0)}, repeats=0)


def test_interleaved_rounds_spread_each_call_over_the_round():
    """A slowdown over the first half of every round (a background job in step with the rounds) must fall on every
    call alike: with 8 calls and 4 rounds each call is timed at 4 places spread over the round, 2 in each half. A
    rotation by one place per round would time call 3 in the slow half every round and call 7 never (ratio 3)."""
    clock, timed = FakeClock(), []
    calls_per_round = 8

    def run():
        clock.now += 3.0 if len(timed) % calls_per_round < calls_per_round // 2 else 1.0
        timed.append(1)

    medians = interleaved_medians({key: run for key in range(calls_per_round)}, repeats=4, clock=clock)
    assert set(medians.values()) == {2.0}


def test_curve_measurement_stops_at_the_memory_bound():
    clock = FakeClock()

    def evaluate(n):
        if n >= 16:
            raise MemoryError("out of memory")
        clock.now += 0.001 * n

    curve = measure_teacher_curve(
        evaluate,
        doubling_ladder(64),
        repeats=1,
        clock=clock,
        peak_memory=lambda n: 10.0 * n,
        out_of_memory=(MemoryError,),
    )
    assert curve.draws == (1, 2, 4, 8)
    assert curve.peak_bytes == (10.0, 20.0, 40.0, 80.0)
    assert curve.as_records()[-1] == {"draws": 8, "seconds": pytest.approx(0.008), "peak_bytes": 80.0}
