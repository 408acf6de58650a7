"""The run folder's figures: variance and Frechet distance over training, and the grid of samples per prompt."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

LABELS = {"baseline": "DMD2 baseline (R K samples, 1 uniform t each)", "carv": "CARV (R x K, IS + stratified)"}


def plot_variance(checkpoints: list[dict], path: Path, title: str) -> None:
    """trace Var of the step's parameter gradient per estimator (+- 2 SE) against the step, log scale."""
    figure, axis = plt.subplots(figsize=(6, 4))
    steps = [c["step"] for c in checkpoints]
    others = (("matched_iid", "matched IID (R x K, uniform t)"), ("same_samples", "DMD2 at R samples (K = 1)"))
    for name, label in (*LABELS.items(), *others):
        values = np.array([c[name]["value"] for c in checkpoints])
        errors = np.array([2 * c[name]["se"] for c in checkpoints])
        axis.errorbar(steps, values, yerr=errors, marker="o", capsize=3, label=label)
    axis.set(yscale="log", xlabel="training step (CARV run)", ylabel="trace Var of the step gradient", title=title)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_quality(histories: dict[str, list[dict]], path: Path, title: str) -> None:
    """Frechet distance to the teacher's samples and prompt fidelity (+- 2 SE) against the step, per estimator."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, history in histories.items():
        steps = [h["step"] for h in history]
        left.plot(steps, [h["frechet"] for h in history], marker="o", label=LABELS.get(name, name))
        means = np.array([h["fidelity"]["mean"] for h in history])
        right.errorbar(steps, means, yerr=[2 * h["fidelity"]["se"] for h in history], marker="o", capsize=3)
    left.set(xlabel="training step", ylabel="Frechet distance (judge features)", title=title)
    right.set(xlabel="training step", ylabel="prompt fidelity (judge)", ylim=(0, 1), title="prompt fidelity, +- 2 SE")
    left.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def sample_grid(rows: dict[str, dict[str, torch.Tensor]], path: Path, per_side: int = 4) -> None:
    """One row per prompt: `per_side` images of each source (teacher, baseline, CARV), labelled; images [n, 3, H, W]."""
    prompts = list(rows)
    sources = list(rows[prompts[0]])
    side = next(iter(rows[prompts[0]].values())).shape[-1]
    label_w, head_h, gap = 110, 16, 6
    width = label_w + len(sources) * (per_side * side + gap)
    canvas = Image.new("RGB", (width, head_h + len(prompts) * side), "white")
    draw = ImageDraw.Draw(canvas)
    for j, source in enumerate(sources):
        draw.text((label_w + j * (per_side * side + gap), 2), source, fill="black")
    for i, prompt in enumerate(prompts):
        draw.text((4, head_h + i * side + side // 2 - 5), prompt, fill="black")
        for j, source in enumerate(sources):
            images = rows[prompt][source][:per_side]
            for n, image in enumerate(images):
                pixels = (image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)
                x = label_w + j * (per_side * side + gap) + n * side
                canvas.paste(Image.fromarray(pixels), (x, head_h + i * side))
    canvas.save(path)
