"""Figures of `carv attribute`: correlation with the ground truth vs draws, and queries beside their top images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "iid": "IID uniform t, fresh eps (Journey-TRAK)",
    "grid": "fixed t grid, common eps (D-TRAK)",
    "carv": "CARV: stratified t + p/q, common (t, eps)",
}


def plot_correlation(result: dict, path: Path, settings) -> None:
    """Mean Spearman correlation (+- 1 SE over queries) against draws per example, one line per estimator."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, points in result["curves"].items():
        budgets = sorted(points)
        mean = [points[k]["spearman"] for k in budgets]
        se = [points[k]["se"] for k in budgets]
        ax.errorbar(budgets, mean, yerr=se, marker="o", capsize=3, label=LABELS[name])
    split = result["truth_split_half_spearman"]["mean"]
    ax.axhline(split, color="grey", linestyle=":", label=f"ground truth, half vs half ({settings.truth_draws // 2})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("gradient draws per example")
    ax.set_ylabel("mean Spearman correlation with ground truth")
    ax.set_title(f"{settings.train_images} training images, {len(settings.queries)} queries, P = {settings.proj_dim}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_top_matches(queries, train, matches: list[dict], path: Path) -> None:
    """One row per query: the query image, then its top training images by ground-truth score, captioned."""
    columns = 1 + len(matches[0]["top_index"])
    fig, axes = plt.subplots(len(matches), columns, figsize=(1.6 * columns, 1.75 * len(matches)), squeeze=False)
    for row, match in enumerate(matches):
        images = [queries[row]] + [train.images[j] for j in match["top_index"]]
        titles = [f"query:\n{match['query']}"] + [c.replace(", ", ",\n") for c in match["top"]]
        for col, (image, title) in enumerate(zip(images, titles, strict=True)):
            ax = axes[row][col]
            ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_title(title, fontsize=6, color="black" if col else "darkred")
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
