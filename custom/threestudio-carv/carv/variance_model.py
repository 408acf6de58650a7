"""From per-draw gradient grids and phase costs to components, the equal-cost ECM table and a recommendation.

Model (CARV sec. 3): Var(G_hat) = (sigma_b^2 + sigma_w^2 / K) / R and a step cost C(R, K): the measured
R a + c(R K) (carv.cost_curve; the report's recommendation) or the linear R (a + K b); every K, R and ECM is a
search over integers under the model given. sigma_b^2 is pooled over all
settings (it does not depend on the proposal), sigma_w^2 is per setting. IID settings use the
nested ANOVA; stratified ones the collapsed-strata components at the probe's K (exact there, conservative at a
larger K where more strata only help), and at K = 1 their IID components (one stratum is IID draws).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .accounting import CostModel, VarianceComponents, equal_cost_configurations
from .accounting import predicted_variance as model_variance
from .autotune import AutoKOptions, SearchSpace, least_variance_cost
from .cost_curve import MeasuredCostModel, best_k, reuse_limit_measured
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
    sigma_w^2 is each setting's own. costs: any model with step_cost(R, K) (CostModel, MeasuredCostModel).
    """

    def __init__(self, fitted: dict[Setting, VarianceComponents], costs: CostModel | MeasuredCostModel):
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
    """What `noise_samples_per_render: auto` picks with these components: carv.autotune's rule, the (R, K) of least
    Var C within the budget and auto's default bounds (R <= auto_r_max, K <= k_max, R K <= auto_max_draws_per_step),
    the baseline (R = baseline_renders, K = 1) winning ties."""
    options = AutoKOptions()
    space = SearchSpace(model.costs, options.auto_r_max, k_max, 1, options.auto_max_draws_per_step)
    sigma_b2, sigma_w2 = model.components(setting, 2)
    renders, k = least_variance_cost(space, sigma_b2, sigma_w2, budget, (baseline_renders, 1))
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
                "k_star": best_k(model.costs, sigma_b2, sigma_w2, k_max=1024),
                "reuse_limit": reuse_limit_measured(model.costs, sigma_b2, sigma_w2)
                if sigma_b2 + sigma_w2 > 0
                else math.nan,
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
        "costs": cost_summary(model.costs),
        "budget_seconds": budget,
        "baseline": {"setting": BASELINE.name, "R": baseline_renders, "K": 1},
        "components": components_table(model),
        "sigma_b2_pooled": model.sigma_b2,
        "sigma_b2_pooled_se": model.sigma_b2_se,
        "table": rows,
        "reuse_only": reuse,
        "recommended": overall,
        "ecm_share_from_is_and_stratification": overall["ecm"] / reuse["ecm"] - 1.0,
        "reuse_limit": reuse_limit_measured(model.costs, sigma_b2, sigma_w2),
        "auto": {**auto, "fraction_of_best_fixed": auto["ecm"] / overall["ecm"]},
    }


def frontier(model: VarianceModel, setting: Setting, budgets: list[float], k_max: int = 64) -> list[float]:
    """Best ECM of the setting over K at R = 1 with C(1, K) within each per-step budget, vs uniform K = 1."""
    costs, values = model.costs, []
    for budget in budgets:
        feasible = [k for k in range(1, k_max + 1) if costs.step_cost(1, k) <= budget * (1 + 1e-9)]
        values.append(max((model.ecm(setting, 1, k, 1) for k in feasible), default=math.nan))
    return values


def cost_summary(costs) -> dict:
    """a, b, a / b of a cost model; for a measured one also its name, c(1) and the curve [{"draws", "seconds"}]."""
    summary = {"model": "linear", "a": costs.a, "b": costs.b, "a_over_b": costs.a / costs.b}
    if isinstance(costs, MeasuredCostModel):
        summary.update(model="measured", c1=costs.curve.single, curve=costs.curve.as_records())
        summary["memory_limit_bytes"] = costs.memory_limit
    return summary


LINEAR_FIGURES = ("costs", "budget_seconds", "table", "reuse_only", "recommended", "reuse_limit", "auto")


def summarise_models(
    fitted: dict[Setting, VarianceComponents],
    measured: MeasuredCostModel,
    linear: CostModel,
    budget_renders: float,
    baseline_renders: int,
    k_values=K_VALUES,
) -> tuple[VarianceModel, dict]:
    """The summary under the measured cost model (the recommendation), with the linear model's figures under
    "linear" (and each setting's linear K* and reuse limit in its components row). Each model's per-step budget
    is its own C(budget_renders, 1): what it says B renders at K = 1 cost. costs.b and costs.a_over_b stay the
    linear model's (the probe's b, per draw of its own batched calls, need not be c(1)); costs.c1 is c(1)."""
    model = VarianceModel(fitted, measured)
    summary = summarise(model, measured.step_cost(budget_renders, 1), baseline_renders, k_values)
    linear_summary = summarise(
        VarianceModel(fitted, linear), linear.step_cost(budget_renders, 1), baseline_renders, k_values
    )
    summary["linear"] = {key: linear_summary[key] for key in LINEAR_FIGURES}
    summary["costs"].update(b=linear.b, a_over_b=linear.a / linear.b)  # the linear model's b, not c(1)
    for row, linear_row in zip(summary["components"], linear_summary["components"], strict=True):
        row.update(k_star_linear=linear_row["k_star"], reuse_limit_linear=linear_row["reuse_limit"])
    return model, summary


def table_reach(table: list[dict]) -> int:
    """The most teacher draws one step of the ECM table sends at once: max R K."""
    return max(row["R"] * row["K"] for row in table)


def summarise_measured(
    fitted: dict[Setting, VarianceComponents],
    measure: Callable[[int], MeasuredCostModel],
    linear: CostModel,
    budget_renders: float,
    baseline_renders: int,
    top: int = 0,
    k_values=K_VALUES,
) -> tuple[VarianceModel, dict]:
    """summarise_models with the teacher curve measured by measure(n) on a ladder up to n draws: n = the largest
    R K of the linear model's table (at least the budget's renders), measured again up to the measured table's
    largest R K while that reaches past the ladder (unless the ladder stopped short: out of memory); top > 0 fixes
    n instead."""
    linear_pairs = equal_cost_configurations(linear, linear.step_cost(budget_renders, 1), k_values)
    draws = top or max(math.ceil(budget_renders), *(r * k for r, k in linear_pairs))
    while True:
        costs = measure(draws)
        model, summary = summarise_models(fitted, costs, linear, budget_renders, baseline_renders, k_values)
        reach, measured_top = table_reach(summary["table"]), costs.curve.draws[-1]
        if top or reach <= measured_top or measured_top < draws:
            return model, summary
        draws = reach
