"""The report's figures: the ECM frontier against per-step compute, the gradient norm against t, and the measured
teacher cost c(n) against the linear model."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import torch

from ..cost_curve import curve_from_records
from ..variance_model import BASELINE, VarianceModel, frontier

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

BINS = 20


def plot_frontier(model: VarianceModel, budget: float, recommended: dict, path: Path, title: str) -> None:
    """ECM against the per-step compute (seconds) for uniform reuse and for IS + stratification (CARV fig.)."""
    unit = model.costs.step_cost(1, 1)
    budgets = [unit * 2 ** (i / 4) for i in range(0, 4 * 7 + 1)]  # 1 to 128 times one baseline render
    reuse = frontier(model, BASELINE, budgets)
    curves = {s.name: frontier(model, s, budgets) for s in model.fitted if s != BASELINE}
    best = [max(values) for values in zip(*curves.values(), strict=True)] if curves else reuse
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(budgets, reuse, label="uniform t, reuse K only", color="tab:blue")
    axis.plot(budgets, best, label="IS + stratification + reuse (best proposal)", color="tab:red")
    axis.axvline(budget, color="grey", linestyle=":", label="report budget")
    axis.scatter([budget], [recommended["ecm"]], color="black", zorder=3, label=f"recommended {recommended['setting']}")
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set(xscale="log", xlabel="per-step compute (s)", ylabel="ECM vs uniform K = 1", title=title)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def binned_rms(t: torch.Tensor, sq_norm: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """sqrt of the mean squared norm in each t bin (NaN for empty bins)."""
    index = (torch.bucketize(t.double(), edges[1:-1], right=True)).clamp(0, len(edges) - 2)
    sums = torch.zeros(len(edges) - 1, dtype=torch.float64).index_add_(0, index, sq_norm.double())
    counts = torch.zeros(len(edges) - 1, dtype=torch.float64).index_add_(0, index, torch.ones_like(sq_norm.double()))
    return (sums / counts).sqrt()


def norms_by_t(t: torch.Tensor, latent: torch.Tensor, parameter: torch.Tensor, low: int, high: int) -> dict:
    """Bin centres and the latent / parameter RMS norms per bin, each scaled to a maximum of 1."""
    edges = torch.linspace(low, high + 1, BINS + 1, dtype=torch.float64)
    curves = {name: binned_rms(t, values, edges) for name, values in (("latent", latent), ("parameter", parameter))}
    scaled = {name: values / values[torch.isfinite(values)].max() for name, values in curves.items()}
    return {"t": ((edges[1:] + edges[:-1]) / 2).tolist(), **{k: v.tolist() for k, v in scaled.items()}}


def plot_norms(binned: dict, alphas_cumprod: torch.Tensor, path: Path, title: str) -> None:
    """Gradient norm against t in latent and parameter space, beside sigma_t^2 = 1 - abar_t (all max 1)."""
    t = torch.tensor(binned["t"])
    sigma2 = 1.0 - alphas_cumprod.double().cpu()[t.long().clamp(max=alphas_cumprod.shape[0] - 1)]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(t, binned["latent"], marker="o", label="latent ||w (eps_hat - eps)||")
    axis.plot(t, binned["parameter"], marker="s", label="parameter ||J^T w (eps_hat - eps)||")
    axis.plot(t, sigma2 / sigma2.max(), linestyle="--", color="grey", label="sigma_t^2 = 1 - abar_t")
    axis.set(xlabel="timestep t", ylabel="RMS norm (scaled to max 1)", title=title)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_cost_curves(checkpoints: list[dict], path: Path, title: str) -> Path:
    """Seconds of n guided teacher draws in one call (left) and per draw (right), for each checkpoint: the measured
    ladder (points), its monotone interpolation (line), and the linear model c(n) = n b with the report's b, the
    per-draw seconds of the probe's own teacher calls (dashed), and with b = c(1) (dotted)."""
    figure, (total, per_draw) = plt.subplots(1, 2, figsize=(10, 4))
    for index, checkpoint in enumerate(checkpoints):
        costs, color = checkpoint["costs"], f"C{index}"
        curve = curve_from_records(costs["curve"])
        n = torch.linspace(1, curve.draws[-1], 200).tolist()
        c = [curve(x) for x in n]
        label = checkpoint["checkpoint"]
        total.scatter(curve.draws, curve.seconds, color=color, zorder=3, label=f"{label}: measured c(n)")
        total.plot(n, c, color=color, label=f"{label}: interpolated")
        per_draw.scatter(curve.draws, [s / d for s, d in zip(curve.seconds, curve.draws, strict=True)], color=color)
        per_draw.plot(n, [y / x for x, y in zip(n, c, strict=True)], color=color)
        for b, style, name in ((costs["b"], "--", "b of the probe's calls"), (curve.single, ":", "b = c(1)")):
            total.plot(n, [x * b for x in n], color=color, linestyle=style, label=f"{label}: linear n b, {name}")
            per_draw.axhline(b, color=color, linestyle=style)
    total.set(xlabel="teacher draws n in one call", ylabel="seconds c(n)", title=title)
    per_draw.set(xscale="log", yscale="log", xlabel="teacher draws n in one call", ylabel="seconds per draw c(n) / n")
    per_draw.set_title("per draw (flat = linear model)")
    total.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
