"""The ground-truth race: seconds each side needs to reach a quality target, their ratio, and a batch's summary.

A curve is [(training seconds, quality)] of checks made off the clock at fixed step intervals. Both sides
start from the same scene (same seed, same initialisation), so they share the first value q0. The target
is TARGET_FRACTION of the way from q0 to the better side's final value: target = q0 + f * (best final - q0).
(With q0 = 0 that is f times the better final value; measured from q0 it ignores the part of the score
the initial blob already has, which a silhouette IoU gives it.) Checks come every N steps, so the side with
cheaper steps looks more often per second; two rules keep that from counting. Both curves are raced on the same
checks: the seconds of the side that checked less often, up to the end both reached, with the other side's
quality interpolated linearly there (a noisy curve looked at more often crosses a target sooner by chance
alone). And a side reaches the target where the straight line between its last check below the target and its
first check at or above it crosses it (the first check itself would give the denser side up to one interval);
one that never does is censored (it loses to one that did, and has no speedup).
If neither side ends above the start, there is no target and neither wins. With a budget, both curves are
first cut at it (checks made within that many training seconds), so a side that got more steps in, from a
clock that ran slow or a run that stopped late, gains nothing from them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

TARGET_FRACTION = 0.9
BOOTSTRAP_RESAMPLES = 10_000
LABELS = ("baseline", "carv")


def quality_curve(history: list[dict], figure: str) -> list[tuple[float, float]]:
    """[(train_seconds, ground-truth figure)] of the fidelity_history entries that carry a ground truth."""
    return [(h["train_seconds"], h["ground_truth"][figure]) for h in history if "ground_truth" in h]


def seconds_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    """Training seconds where the curve first reaches the target, interpolated linearly between the check before
    and the first check at or above it (that check's seconds if it is the first); None if never."""
    first = next((i for i, (_, value) in enumerate(curve) if value >= target), None)
    if first is None:
        return None
    if first == 0:
        return curve[0][0]
    (s0, v0), (s1, v1) = curve[first - 1], curve[first]
    return s0 + (target - v0) / (v1 - v0) * (s1 - s0)


def value_at(curve: list[tuple[float, float]], seconds: float) -> float:
    """The curve's quality at `seconds` (within its checks), interpolated linearly between the checks around it."""
    times, values = zip(*curve, strict=True)
    return float(np.interp(seconds, times, values))


def check_rate(curve: list[tuple[float, float]]) -> float:
    """Checks per training second after the first (infinite for a curve of one check, or all at one time)."""
    span = curve[-1][0] - curve[0][0]
    return (len(curve) - 1) / span if span > 0 else float("inf")


def on_common_checks(curves: dict[str, list[tuple[float, float]]]) -> dict[str, list[tuple[float, float]]]:
    """Every side at the checks of the side with the lowest check rate, up to the last time every side reached;
    the others' values interpolated there (value_at). The sparser side's own checks are kept as they are."""
    sparse = min(curves, key=lambda label: check_rate(curves[label]))
    end = min(curve[-1][0] for curve in curves.values())
    times = [seconds for seconds, _ in curves[sparse] if seconds <= end]
    if not times:
        raise ValueError(f"the sides' checks do not overlap in time: {sparse}'s first is after {end} s, another's last")
    return {label: [(seconds, value_at(curve, seconds)) for seconds in times] for label, curve in curves.items()}


def cut_at(curve: list[tuple[float, float]], budget: float | None) -> list[tuple[float, float]]:
    """The checks of a curve made within `budget` training seconds (all of them when budget is None)."""
    return [point for point in curve if budget is None or point[0] <= budget]


def race(
    curves: dict[str, list[tuple[float, float]]], fraction: float = TARGET_FRACTION, budget: float | None = None
) -> dict:
    """Target, each side's curve (cut at `budget` seconds), its last value, its values on the common checks
    (on_common_checks), the last of those and the seconds to target on them, and speedup = baseline s / CARV s.
    The target is measured from the common checks' start to the better of their last values."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the target fraction must be in (0, 1], got {fraction}")
    curves = {label: cut_at(curves[label], budget) for label in LABELS}
    if any(not curves[label] for label in LABELS):
        raise ValueError("each side needs at least one ground-truth check within the budget")
    checks = on_common_checks(curves)
    start = float(np.mean([checks[label][0][1] for label in LABELS]))
    best_final = max(checks[label][-1][1] for label in LABELS)
    target = start + fraction * (best_final - start) if best_final > start else None  # None: neither improved
    sides = {
        label: {
            "curve": [list(point) for point in curves[label]],
            "checks": [list(point) for point in checks[label]],
            "final": curves[label][-1][1],
            "final_on_checks": checks[label][-1][1],
            "seconds_to_target": seconds_to_reach(checks[label], target) if target is not None else None,
        }
        for label in LABELS
    }
    b, c = (sides[label]["seconds_to_target"] for label in LABELS)
    return {
        "fraction": fraction,
        "budget_seconds": budget,
        "start": start,
        "target": target,
        **sides,
        "speedup": b / c if b is not None and c is not None and c > 0 else None,
        "winner": winner(b, c),
    }


def winner(baseline_seconds: float | None, carv_seconds: float | None) -> str:
    """Which side reached the target first: carv, baseline, tie or neither."""
    if baseline_seconds is None and carv_seconds is None:
        return "neither"
    if carv_seconds is not None and (baseline_seconds is None or carv_seconds < baseline_seconds):
        return "carv"
    if baseline_seconds is not None and (carv_seconds is None or baseline_seconds < carv_seconds):
        return "baseline"
    return "tie"


def geometric_mean(values) -> float:
    return float(np.exp(np.mean(np.log(values))))


def bootstrap_interval(values: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float]:
    """Percentile 95% interval of the geometric mean of values, resampled with replacement (fixed seed)."""
    logs = np.log(np.asarray(values, dtype=float))
    draws = np.random.default_rng(seed).integers(0, len(logs), size=(resamples, len(logs)))
    means = np.exp(logs[draws].mean(axis=1))
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def summarise_races(races: list[dict], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Over many races: each side's share of wins, and the geometric-mean speedup (with its bootstrap 95%
    interval) over the races where both sides reached the target."""
    speedups = [r["speedup"] for r in races if r["speedup"] is not None]
    n = len(races)
    shares = {f"{side}_won": sum(r["winner"] == side for r in races) / n if n else None for side in LABELS}
    return {
        "comparisons": n,
        **shares,
        "tie_or_neither": sum(r["winner"] in ("tie", "neither") for r in races) / n if n else None,
        "both_reached": len(speedups),
        "geometric_mean_speedup": geometric_mean(speedups) if speedups else None,
        "bootstrap_95": bootstrap_interval(speedups, resamples, seed) if speedups else None,
    }


def plot_race(result: dict, figure: str, settings: dict[str, str], path: Path, title: str) -> None:
    """Ground-truth quality against training seconds for each side, the target and where each reached it."""
    fig, axis = plt.subplots(figsize=(6, 4))
    for label in LABELS:
        side = result[label]
        seconds, values = zip(*side["curve"], strict=True)
        (line,) = axis.plot(seconds, values, marker="o", ms=3, label=f"{label} ({settings[label]})")
        if side["seconds_to_target"] is not None:
            axis.axvline(side["seconds_to_target"], color=line.get_color(), linestyle=":", linewidth=1)
    speedup = result["speedup"]
    if result["target"] is not None:
        target = result["target"]
        axis.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.3f}")
    verdict = f"speedup {speedup:.2f}x" if speedup is not None else f"first: {result['winner']}"
    axis.set(xlabel="training seconds", ylabel=f"ground truth: {figure}", title=f"{title}, {verdict}")
    axis.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
