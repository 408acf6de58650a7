"""`carv compare`: the threestudio baseline and CARV, same seed, same training seconds, judged as they train.

Training seconds are carv.timing's training clock (wall-clock, or CPU seconds with $CARV_CLOCK=process); the
ground-truth race cuts both curves at the budget.

Writes <exp_root_dir>/compare/<prompt>@<timestamp>/ with baseline/ and carv/ run folders, a labelled
side-by-side turntable (compare.mp4, .gif), fidelity_vs_time.png, ground_truth_vs_time.png (the race on
carv.toyworld.ground_truth, carv.pipeline.race) and compare.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

from ..timing import ClockError, clock_name
from ..toyworld import RACE_FIGURE
from .errors import UserError
from .race import LABELS, plot_race, quality_curve, race
from .runner import judge_can_score, new_folder, prepare, prompt_tag, text_to_3d
from .video import side_by_side, write_videos

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


@dataclass
class CompareResult:
    folder: Path
    summary: dict


def time_to_threshold(history: list[dict], threshold: float) -> float | None:
    """Training seconds at the first fidelity check at or above the threshold (None if never)."""
    return next((h["train_seconds"] for h in history if h["fidelity"] >= threshold), None)


def describe(metrics: dict) -> str:
    proposal = metrics["timestep_proposal"] + (" stratified" if metrics["timestep_stratified"] else "")
    return f"R={metrics['renders_per_step']} K={metrics['noise_samples_per_render']} {proposal}"


def run_summary(metrics: dict, threshold: float) -> dict:
    return {
        "setting": describe(metrics),
        "steps": metrics["steps"],
        "train_seconds": metrics["run_seconds"]["train"],
        "seconds_per_step": metrics["seconds_per_step"]["train"],
        "final_fidelity": metrics["fidelity"]["mean"],
        "seconds_to_threshold": time_to_threshold(metrics["fidelity_history"], threshold),
    }


def plot_fidelity(runs: dict[str, dict], threshold: float, path: Path, title: str) -> None:
    """Prompt fidelity against training seconds (carv.timing's clock) for each run, with the threshold."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, metrics in runs.items():
        history = metrics["fidelity_history"]
        axis.plot(
            [h["train_seconds"] for h in history],
            [h["fidelity"] for h in history],
            marker="o",
            ms=3,
            label=f"{label} ({describe(metrics)})",
        )
    axis.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold}")
    axis.set(xlabel="training seconds", ylabel="prompt fidelity (judge)", ylim=(0, 1), title=title)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def turntable_frames(metrics: dict) -> np.ndarray:
    folder = Path(metrics["files"]["frames"])
    count = len(list(folder.glob("*.png")))
    return np.stack([np.asarray(Image.open(folder / f"{i}.png").convert("RGB")) for i in range(count)])


def compare(
    prompt: str,
    *,
    baseline: str = "cpu-baseline",
    carv: str = "cpu-carv",
    seconds: float = 240.0,
    threshold: float = 0.8,
    eval_every: int = 10,
    overrides: list[str] = (),
    baseline_overrides: list[str] = (),
    carv_overrides: list[str] = (),
) -> CompareResult:
    """Train both configs for `seconds` of training each (same seed and shared overrides), then compare them."""
    if seconds <= 0 or eval_every < 1 or not 0 < threshold <= 1:
        raise UserError(
            f"need --seconds > 0, --eval-every >= 1 and 0 < --threshold <= 1; got {seconds}, {eval_every}, {threshold}"
        )
    try:
        clock_name()
    except ClockError as error:
        raise UserError(str(error)) from None
    shared = [
        f"trainer.max_train_seconds={seconds}",
        "trainer.max_steps=1000000",
        f"evaluation.every_n_steps={eval_every}",
        *overrides,
    ]
    sides = {"baseline": (baseline, [*shared, *baseline_overrides]), "carv": (carv, [*shared, *carv_overrides])}
    config = {label: checked_side(prompt, name, side_overrides) for label, (name, side_overrides) in sides.items()}
    folder = new_folder(Path(config["carv"].exp_root_dir) / "compare", prompt_tag(prompt))
    runs = {
        label: text_to_3d(prompt, name, side_overrides, run_dir=folder / label, label=f"{label} ({name})").metrics
        for label, (name, side_overrides) in sides.items()
    }
    return CompareResult(folder, write_comparison(folder, prompt, runs, seconds, threshold, config["carv"].seed))


def checked_side(prompt: str, name: str, overrides: list[str]):
    """The config of one side after every check of its run (teacher, prompt, judge, schedules), nothing written."""
    run = prepare(prompt, name, overrides)
    reason = judge_can_score(run.judge, run.config.system.prompt_processor.prompt)
    if reason is not None:
        raise UserError(f"compare needs prompt fidelity: {reason}")
    return run.config


def write_comparison(
    folder: Path, prompt: str, runs: dict[str, dict], seconds: float, threshold: float, seed: int
) -> dict:
    summaries = {label: run_summary(metrics, threshold) for label, metrics in runs.items()}
    times = [summaries[label]["seconds_to_threshold"] for label in LABELS]
    summary = {
        "prompt": prompt,
        "seed": seed,
        "train_seconds_budget": seconds,
        "clock": clock_name(),
        "threshold": threshold,
        **summaries,
        "speedup_to_threshold": times[0] / times[1] if None not in times and times[1] > 0 else None,
        "ground_truth": {
            "figure": RACE_FIGURE,
            **race({k: quality_curve(runs[k]["fidelity_history"], RACE_FIGURE) for k in LABELS}, budget=seconds),
        },
    }
    plot_fidelity(runs, threshold, folder / "fidelity_vs_time.png", f"{prompt!r}, seed {seed}")
    settings = {label: summaries[label]["setting"] for label in LABELS}
    plot_race(
        summary["ground_truth"], RACE_FIGURE, settings, folder / "ground_truth_vs_time.png", f"{prompt!r}, seed {seed}"
    )
    videos = {f"{label}: {summaries[label]['setting']}": turntable_frames(runs[label]) for label in LABELS}
    write_videos(side_by_side(videos), folder / "compare")
    (folder / "compare.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def summarise_batch(summaries: list[dict]) -> dict:
    """Over many compare summaries: who reached the threshold first, and the geometric-mean speedup where both did.

    A run that never reached the threshold within the budget is censored: it loses to one that did.
    """
    both = [s["speedup_to_threshold"] for s in summaries if s["speedup_to_threshold"] is not None]
    reached = [(s["baseline"]["seconds_to_threshold"], s["carv"]["seconds_to_threshold"]) for s in summaries]
    carv_first = sum(c is not None and (b is None or c < b) for b, c in reached)
    baseline_first = sum(b is not None and (c is None or b < c) for b, c in reached)
    return {
        "comparisons": len(summaries),
        "carv_first": carv_first,
        "baseline_first": baseline_first,
        "neither_reached": sum(b is None and c is None for b, c in reached),
        "both_reached": len(both),
        "geometric_mean_speedup": float(np.exp(np.mean(np.log(both)))) if both else None,
        "median_speedup": float(np.median(both)) if both else None,
    }
