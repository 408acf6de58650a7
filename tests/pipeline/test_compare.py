import math

from carv.pipeline.compare import summarise_batch, time_to_threshold


def summary(baseline, carv):
    ratio = baseline / carv if baseline is not None and carv is not None else None
    return {
        "baseline": {"seconds_to_threshold": baseline},
        "carv": {"seconds_to_threshold": carv},
        "speedup_to_threshold": ratio,
    }


def test_time_to_threshold_is_the_first_check_at_or_above_it():
    history = [{"train_seconds": s, "fidelity": f} for s, f in [(0, 0.1), (5, 0.85), (9, 0.7), (12, 0.9)]]
    assert time_to_threshold(history, 0.8) == 5
    assert time_to_threshold(history, 0.95) is None


def test_batch_summary_counts_censored_runs_and_averages_ratios_geometrically():
    batch = summarise_batch([summary(20, 10), summary(10, 20), summary(None, 30), summary(None, None)])
    assert (batch["carv_first"], batch["baseline_first"], batch["neither_reached"]) == (2, 1, 1)
    assert batch["both_reached"] == 2 and math.isclose(batch["geometric_mean_speedup"], 1.0)
