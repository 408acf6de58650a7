"""From per-draw gradient grids and phase costs to components, the equal-cost ECM table and a recommendation.

Model (CARV sec. 3): Var(G_hat) = (sigma_b^2 + sigma_w^2 / K) / R, C = R (a + K b); sigma_b^2 is pooled over all
settings (it does not depend on the proposal), sigma_w^2 is per setting. IID settings use the
nested ANOVA; stratified ones the collapsed-strata components at the probe's K (exact there, conservative at a
larger K where more strata only help), and at K = 1 their IID components (one stratum is IID draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .accounting import CostModel, VarianceComponents, equal_cost_configurations, optimal_k, reuse_limit
from .accounting import predicted_variance as model_variance
from .stratified_variance import grid_components, pooled_between_render_variance

PROPOSALS = ("uniform", "sds", "gaussian", "adaptive")


@dataclass(frozen=True)
class Setting:
    """A timestep proposal with IID or per-render stratified draws (K strata per render)."""

    proposal: str
    stratified: bool

    @property
    def name(self) -> str:
        return self.proposal + ("+strat" if self.stratified else "")


SETTINGS = tuple(Setting(p, s) for p in PROPOSALS for s in (False, True))
BASELINE = Setting("uniform", False)


@dataclass
class Grid:
    """Per-draw results of one setting: g [R, K, D] (float32), t [R, K], weights, latent and parameter norms."""

    g: torch.Tensor
    t: torch.Tensor
    weight: torch.Tensor
    latent_sq_norm: torch.Tensor  # ||w (eps_hat - eps)||^2, before the importance weight
    parameter_sq_norm: torch.Tensor  # ||J^T w (eps_hat - eps)||^2, before the importance weight


K_VALUES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def fit(grid: Grid, stratified: bool) -> VarianceComponents:
    return grid_components(grid.g, grid.t, stratified)


class VarianceModel:
    """Components of every setting; (sigma_b^2 >= 0, sigma_w^2) of a setting at a K.

    sigma_b^2 is pooled over the settings' independent grids (it does not depend on the proposal);
    sigma_w^2 is each setting's own.
    """

    def __init__(self, fitted: dict[Setting, VarianceComponents], costs: CostModel):
        self.fitted, self.costs = fitted, costs
        self.sigma_b2, self.sigma_b2_se = pooled_between_render_variance(list(fitted.values()))

    def source(self, setting: Setting, k: int) -> VarianceComponents:
        if setting.stratified and k == 1:
            return self.fitted[Setting(setting.proposal, False)]
        return self.fitted[setting]

    def components(self, setting: Setting, k: int) -> tuple[float, float]:
        return max(self.sigma_b2, 0.0), max(self.source(setting, k).sigma_w2, 0.0)

    def variance(self, setting: Setting, renders: int, k: int) -> float:
        return model_variance(*self.components(setting, k), renders, k)

    def variance_se(self, setting: Setting, renders: int, k: int) -> float:
        """Standard error of the predicted variance from those of the two components (taken independent)."""
        return math.hypot(self.sigma_b2_se, self.source(setting, k).sigma_w2_se / k) / renders

    def ecm(self, setting: Setting, renders: int, k: int, baseline_renders: int) -> float:
        """(Var_B C_B) / (Var_X C_X) against the uniform K = 1 baseline with baseline_renders renders."""
        baseline = self.variance(BASELINE, baseline_renders, 1) * self.costs.step_cost(baseline_renders, 1)
        return baseline / (self.variance(setting, renders, k) * self.costs.step_cost(renders, k))


def ecm_table(model: VarianceModel, budget: float, baseline_renders: int, k_values=K_VALUES) -> list[dict]:
    """One row per setting and equal-cost (R, K) within the per-step budget (seconds)."""
    rows = []
    for setting in model.fitted:
        for renders, k in equal_cost_configurations(model.costs, budget, k_values):
            rows.append(
                {
                    "setting": setting.name,
                    "R": renders,
                    "K": k,
                    "step_seconds": model.costs.step_cost(renders, k),
                    "predicted_variance": model.variance(setting, renders, k),
                    "predicted_variance_se": model.variance_se(setting, renders, k),
                    "ecm": model.ecm(setting, renders, k, baseline_renders),
                }
            )
    return rows


def best(rows: list[dict], settings=None) -> dict:
    return max((r for r in rows if settings is None or r["setting"] in settings), key=lambda r: r["ecm"])


def auto_choice(model: VarianceModel, setting: Setting, budget: float, baseline_renders: int, k_max: int) -> dict:
    """What `noise_samples_per_render: auto` picks: K* of the cost model, then the most renders in the budget."""
    k = optimal_k(model.costs.a, model.costs.b, *model.components(setting, 2), k_max=k_max)
    renders = max(1, math.floor(budget / model.costs.step_cost(1, k) + 1e-9))
    return {"setting": setting.name, "R": renders, "K": k, "ecm": model.ecm(setting, renders, k, baseline_renders)}


def components_table(model: VarianceModel) -> list[dict]:
    rows = []
    for setting, c in model.fitted.items():
        sigma_b2, sigma_w2 = model.components(setting, 2)
        rows.append(
            {
                "setting": setting.name,
                "sigma_b2": c.sigma_b2,
                "sigma_b2_se": c.sigma_b2_se,
                "sigma_w2": c.sigma_w2,
                "sigma_w2_se": c.sigma_w2_se,
                "k_star": optimal_k(model.costs.a, model.costs.b, sigma_b2, sigma_w2, k_max=1024),
                "reuse_limit": reuse_limit(model.costs, sigma_b2, sigma_w2) if sigma_b2 + sigma_w2 > 0 else math.nan,
            }
        )
    return rows


def summarise(model: VarianceModel, budget: float, baseline_renders: int, k_values=K_VALUES) -> dict:
    """ECM table, reuse-only and overall best, the share IS + stratification adds, `auto` and the reuse limit."""
    rows = ecm_table(model, budget, baseline_renders, k_values)
    reuse, overall = best(rows, {BASELINE.name}), best(rows)
    recommended = next(s for s in model.fitted if s.name == overall["setting"])
    auto = auto_choice(model, recommended, budget, baseline_renders, max(k_values))
    sigma_b2, sigma_w2 = model.components(BASELINE, 1)
    return {
        "costs": {"a": model.costs.a, "b": model.costs.b, "a_over_b": model.costs.a / model.costs.b},
        "budget_seconds": budget,
        "baseline": {"setting": BASELINE.name, "R": baseline_renders, "K": 1},
        "components": components_table(model),
        "sigma_b2_pooled": model.sigma_b2,
        "sigma_b2_pooled_se": model.sigma_b2_se,
        "table": rows,
        "reuse_only": reuse,
        "recommended": overall,
        "ecm_share_from_is_and_stratification": overall["ecm"] / reuse["ecm"] - 1.0,
        "reuse_limit": reuse_limit(model.costs, sigma_b2, sigma_w2),
        "auto": {**auto, "fraction_of_best_fixed": auto["ecm"] / overall["ecm"]},
    }


def frontier(model: VarianceModel, setting: Setting, budgets: list[float], k_max: int = 64) -> list[float]:
    """Best ECM of the setting over K with a + K b within each per-step budget (R free), vs uniform K = 1."""
    costs, values = model.costs, []
    for budget in budgets:
        feasible = [k for k in range(1, k_max + 1) if costs.step_cost(1, k) <= budget * (1 + 1e-9)]
        values.append(max((model.ecm(setting, 1, k, 1) for k in feasible), default=math.nan))
    return values
