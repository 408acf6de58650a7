"""The report's files of one checkpoint (CSV tables, per-draw norms, figures) and the measured ECM."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from ..pipeline.probe import Probe
from ..stratified_variance import measured_ecm_at_costs
from .plots import norms_by_t, plot_frontier, plot_norms


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_checkpoint_files(folder: Path, summary: dict, pooled: dict, model, probe: Probe, label: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(summary["components"], folder / "components.csv")
    write_csv(summary["table"], folder / "ecm_table.csv")
    draws = [
        dict(zip(("t", "latent_sq_norm", "parameter_sq_norm"), row, strict=True))
        for row in torch.stack(
            [pooled["t"].double(), pooled["latent"].double(), pooled["parameter"].double()], 1
        ).tolist()
    ]
    write_csv(draws, folder / "draws.csv")
    title = f"{probe.system.config.system.prompt_processor.prompt} @ {label}"
    budget = summary["budget_seconds"]
    plot_frontier(model, budget, summary["recommended"], folder / "ecm_frontier.png", title)
    binned = norms_by_t(
        pooled["t"], pooled["latent"], pooled["parameter"], probe.guidance.min_step, probe.guidance.max_step
    )
    plot_norms(binned, probe.guidance.teacher.alphas_cumprod, folder / "gradient_norm_vs_t.png", title)
    return {"norms_by_t": binned, "files": sorted(str(p) for p in folder.iterdir())}


def measured_ecm(check: dict, baseline: dict, costs) -> dict:
    """ECM of a configuration from the directly measured variances (delta-method standard error), under any cost
    model with step_cost(R, K)."""
    return measured_ecm_at_costs(
        check, baseline, costs.step_cost(check["R"], check["K"]), costs.step_cost(baseline["R"], 1)
    )
