"""The ground-truth race's bookkeeping: target, seconds to target, speedup, wins and the bootstrap interval."""

import json
import math

import pytest

from carv.pipeline.compare import compare
from carv.pipeline.race import (
    bootstrap_interval,
    cut_at,
    geometric_mean,
    on_common_checks,
    quality_curve,
    race,
    seconds_to_reach,
    summarise_races,
    winner,
)
from carv.toyworld.ground_truth import RACE_FIGURE

from ..helpers import shrunken

BASELINE = [(0.0, 0.5), (10.0, 0.6), (20.0, 0.7), (30.0, 0.75), (40.0, 0.8)]
CARV = [(0.0, 0.5), (10.0, 0.65), (20.0, 0.78), (30.0, 0.85), (40.0, 0.9)]


def test_target_is_the_fraction_of_the_way_from_the_shared_start_to_the_better_final_value():
    result = race({"baseline": BASELINE, "carv": CARV})
    assert result["start"] == 0.5 and math.isclose(result["target"], 0.5 + 0.9 * (0.9 - 0.5))  # 0.86
    assert result["carv"]["seconds_to_target"] == pytest.approx(30.0 + 10.0 * (0.86 - 0.85) / (0.9 - 0.85))
    assert result["baseline"]["seconds_to_target"] is None
    assert result["speedup"] is None and result["winner"] == "carv"
    assert result["baseline"]["curve"] == [list(p) for p in BASELINE] and result["carv"]["final"] == 0.9


def test_speedup_is_baseline_seconds_over_carv_seconds():
    result = race({"baseline": BASELINE, "carv": CARV}, fraction=0.5)  # target 0.7
    carv_seconds = 10.0 + 10.0 * (0.7 - 0.65) / (0.78 - 0.65)  # between the checks at 10 s and 20 s
    assert result["baseline"]["seconds_to_target"] == pytest.approx(20.0)  # a check exactly on the target
    assert result["carv"]["seconds_to_target"] == pytest.approx(carv_seconds)
    assert result["speedup"] == pytest.approx(20.0 / carv_seconds) and result["winner"] == "carv"
    swapped = race({"baseline": CARV, "carv": BASELINE}, fraction=0.5)
    assert swapped["speedup"] == pytest.approx(carv_seconds / 20.0) and swapped["winner"] == "baseline"


def test_no_target_when_neither_side_improves_on_the_start():
    worse = [(0.0, 0.5), (10.0, 0.45)]
    result = race({"baseline": worse, "carv": [(0.0, 0.5), (8.0, 0.4)]})
    assert result["target"] is None and result["winner"] == "neither" and result["speedup"] is None
    assert result["baseline"]["seconds_to_target"] is None and result["carv"]["seconds_to_target"] is None


def test_seconds_to_reach_interpolates_the_first_crossing_of_the_target():
    curve = [(0.0, 0.1), (5.0, 0.85), (9.0, 0.7), (12.0, 0.9)]
    assert seconds_to_reach(curve, 0.85) == 5.0 and seconds_to_reach(curve, 0.95) is None
    assert seconds_to_reach(curve, 0.475) == pytest.approx(2.5)  # half way from 0.1 to 0.85
    assert seconds_to_reach(curve, 0.05) == 0.0  # the first check already reaches it


def test_denser_checks_buy_nothing_on_the_same_curve():
    """The same straight quality line checked every 10 s and every 3 s reaches a target at the same seconds (the
    first check at or above it would give the densely checked side up to one interval)."""
    sparse = [(float(s), s / 100) for s in range(0, 101, 10)]
    dense = [(float(s), s / 100) for s in range(0, 101, 3)]
    for target in (0.05, 0.31, 0.77):
        assert seconds_to_reach(sparse, target) == pytest.approx(seconds_to_reach(dense, target))


def test_winner_of_censored_and_tied_races():
    assert [winner(1.0, 2.0), winner(2.0, 1.0), winner(None, 3.0), winner(3.0, None)] == [
        "baseline",
        "carv",
        "carv",
        "baseline",
    ]
    assert winner(None, None) == "neither" and winner(2.0, 2.0) == "tie"


def test_bad_races_are_refused():
    with pytest.raises(ValueError, match="fraction"):
        race({"baseline": BASELINE, "carv": CARV}, fraction=1.5)
    with pytest.raises(ValueError, match="at least one"):
        race({"baseline": [], "carv": CARV})


def test_quality_curve_reads_the_history_entries_that_carry_a_ground_truth():
    history = [
        {"train_seconds": 0.0, "fidelity": 0.1},
        {"train_seconds": 2.0, "fidelity": 0.5, "ground_truth": {"iou": 0.6}},
    ]
    assert quality_curve(history, "iou") == [(2.0, 0.6)]


def test_bootstrap_of_two_values_is_exact():
    """Resampling {a, b} gives aa, ab, bb with chances 1/4, 1/2, 1/4: the 2.5% and 97.5% quantiles are a and b."""
    assert bootstrap_interval([0.5, 2.0]) == pytest.approx([0.5, 2.0])
    assert bootstrap_interval([1.5] * 5) == pytest.approx([1.5, 1.5])


def test_bootstrap_interval_covers_the_geometric_mean_and_is_reproducible():
    speedups = [0.8, 1.1, 1.3, 1.7, 2.2, 2.5, 0.9, 1.4]
    low, high = bootstrap_interval(speedups)
    assert low < geometric_mean(speedups) < high and bootstrap_interval(speedups) == [low, high]
    assert math.isclose(geometric_mean([1.0, 4.0]), 2.0)


def test_batch_summary_shares_and_speedups():
    races = [
        {"speedup": 2.0, "winner": "carv"},
        {"speedup": 0.5, "winner": "baseline"},
        {"speedup": None, "winner": "carv"},
        {"speedup": None, "winner": "neither"},
    ]
    batch = summarise_races(races)
    assert (batch["carv_won"], batch["baseline_won"], batch["tie_or_neither"]) == (0.5, 0.25, 0.25)
    assert batch["both_reached"] == 2 and math.isclose(batch["geometric_mean_speedup"], 1.0)
    assert batch["bootstrap_95"] == pytest.approx([0.5, 2.0])


def test_a_shrunken_compare_races_on_the_ground_truth(toy_teacher, random_judge, tmp_path):
    overrides = shrunken(toy_teacher, random_judge, tmp_path, steps=3)
    result = compare("a red mug", seconds=60.0, eval_every=1, overrides=overrides)
    summary = json.loads((result.folder / "compare.json").read_text())
    truth = summary["ground_truth"]
    assert truth["figure"] == RACE_FIGURE and (result.folder / "ground_truth_vs_time.png").is_file()
    for label in ("baseline", "carv"):
        run = json.loads((result.folder / label / "metrics.json").read_text())
        assert truth[label]["curve"] == [list(p) for p in quality_curve(run["fidelity_history"], RACE_FIGURE)]
        assert len(truth[label]["curve"]) == 4 and truth[label]["final"] == run["ground_truth"][RACE_FIGURE]
    assert truth["baseline"]["curve"][0][1] == truth["carv"]["curve"][0][1] == truth["start"]  # the same scene
    recomputed = race({label: [tuple(p) for p in truth[label]["curve"]] for label in ("baseline", "carv")})
    assert {k: recomputed[k] for k in ("target", "speedup", "winner")} == {
        k: truth[k] for k in ("target", "speedup", "winner")
    }


def test_curves_are_cut_at_the_budget_before_the_race():
    """A side whose clock ran slow got more checks in; beyond the budget they do not count."""
    result = race({"baseline": BASELINE, "carv": CARV}, fraction=0.5, budget=24.0)
    assert result["carv"]["curve"] == [list(p) for p in CARV[:3]] and result["carv"]["final"] == 0.78
    assert result["baseline"]["curve"] == [list(p) for p in BASELINE[:3]] and result["budget_seconds"] == 24.0
    assert math.isclose(result["target"], 0.5 + 0.5 * (0.78 - 0.5))
    assert cut_at(CARV, None) == CARV and cut_at(CARV, 10.0) == CARV[:2]
    with pytest.raises(ValueError, match="within the budget"):
        race({"baseline": [(5.0, 0.5)], "carv": CARV}, budget=1.0)


def test_a_side_that_checks_more_often_gains_nothing_from_its_extra_looks():
    """The denser side (CARV, cheaper steps: checks every 5 s against 10 s) is raced at the sparser side's checks.
    Its extra looks here include a noise spike above the target at 15 s; the first crossing of its own checks
    would put it there, and the spike-free curve it shares with the baseline at 0, 10, 20, 30 s gives a tie."""
    sparse = [(0.0, 0.5), (10.0, 0.6), (20.0, 0.7), (30.0, 0.8)]
    dense = sorted([*sparse, (5.0, 0.55), (15.0, 0.9), (25.0, 0.75), (35.0, 0.85)])
    result = race({"baseline": sparse, "carv": dense})
    assert result["carv"]["checks"] == result["baseline"]["checks"] == [list(p) for p in sparse]
    assert result["carv"]["curve"] == [list(p) for p in dense]  # the raw curve is kept for the plot
    assert result["speedup"] == pytest.approx(1.0) and result["winner"] == "tie"
    assert seconds_to_reach(dense, result["target"]) < seconds_to_reach(sparse, result["target"])


def test_the_common_checks_interpolate_the_denser_side_up_to_the_end_both_reached():
    sparse = [(0.0, 0.5), (10.0, 0.6), (20.0, 0.8)]
    dense = [(0.0, 0.5), (4.0, 0.7), (8.0, 0.9), (12.0, 0.5), (16.0, 0.6)]
    checks = on_common_checks({"baseline": sparse, "carv": dense})
    assert checks["baseline"] == sparse[:2]  # 20 s is past the dense side's last check
    assert checks["carv"] == [(0.0, 0.5), (10.0, pytest.approx(0.7))]  # half way from 0.9 at 8 s to 0.5 at 12 s


def test_curves_whose_checks_do_not_overlap_are_refused():
    with pytest.raises(ValueError, match="do not overlap"):
        on_common_checks({"baseline": [(10.0, 0.5), (30.0, 0.6)], "carv": [(0.0, 0.5), (1.0, 0.5), (2.0, 0.6)]})
