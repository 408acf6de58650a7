"""Compute-aware variance accounting for the hierarchical estimator (CARV sec. 3).

Var(G_hat) = (sigma_b^2 + sigma_w^2 / K) / R and C(R, K) = R (a + K b), where
sigma_b^2 is the between-render (camera) variance and sigma_w^2 the
within-render variance from (t, eps); variances are traces over parameters.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class VarianceComponents:
    """Unbiased nested-ANOVA estimates with jackknife-over-renders standard errors."""

    sigma_b2: float  # trace Var_c(E[G | c]); may be negative by chance when small
    sigma_w2: float  # E_c[trace Var(G | c)]
    sigma_b2_se: float
    sigma_w2_se: float
    renders: int
    draws_per_render: int


@dataclass(frozen=True)
class CostModel:
    """Cost of one step C(R, K) = R (a + K b): a per render (render, encode, backward), b per teacher evaluation."""

    a: float
    b: float

    def __post_init__(self):
        if not (self.a >= 0 and self.b > 0 and math.isfinite(self.a) and math.isfinite(self.b)):
            raise ValueError(f"costs need a >= 0 and b > 0 (finite), got a={self.a}, b={self.b}")

    def step_cost(self, renders: int, draws_per_render: int) -> float:
        """C(R, K)."""
        return renders * (self.a + draws_per_render * self.b)


@dataclass
class CostMeter:
    """Measured seconds and counts of the phases behind a CostModel: render (+ encode) and the backward through
    one render's graph, each counted per render, and the guided teacher evaluation, counted per draw."""

    seconds: dict = field(default_factory=lambda: {"render": 0.0, "backward": 0.0, "teacher": 0.0})
    counts: dict = field(default_factory=lambda: {"render": 0, "backward": 0, "teacher": 0})

    def add(self, phase: str, seconds: float, count: int) -> None:
        self.seconds[phase] += seconds
        self.counts[phase] += count

    @contextmanager
    def timed(self, phase: str, count: int):
        """Add the seconds of the block to phase, counted count times."""
        started = time.perf_counter()
        yield
        self.add(phase, time.perf_counter() - started, count)

    def per(self, phase: str) -> float:
        return self.seconds[phase] / max(self.counts[phase], 1)

    @property
    def a(self) -> float:
        """Render + encode + one backward through both, per render."""
        return self.per("render") + self.per("backward")

    @property
    def b(self) -> float:
        """One guided teacher evaluation (all CFG passes), per draw."""
        return self.per("teacher")


def check_grid(g: torch.Tensor) -> torch.Tensor:
    """Validate a per-draw gradient grid [R, K, D] with R, K >= 2 and return it in float64."""
    if g.ndim != 3:
        raise ValueError(f"per-draw gradients must be [R, K, D], got shape {tuple(g.shape)}")
    if g.shape[0] < 2 or g.shape[1] < 2:
        raise ValueError(
            f"variance components need R >= 2 renders and K >= 2 draws each, got R={g.shape[0]}, K={g.shape[1]}"
        )
    if not torch.isfinite(g).all():
        raise ValueError("per-draw gradients contain NaN or Inf")
    return g.detach().to(torch.float64)


def anova_sums_of_squares(g: torch.Tensor) -> tuple[float, float, float]:
    """(between, within, total) sums of squared deviations of g [R, K, D]; between + within = total exactly."""
    g = g.detach().to(torch.float64)
    render_means = g.mean(dim=1, keepdim=True)
    grand_mean = g.mean(dim=(0, 1), keepdim=True)
    between = g.shape[1] * (render_means - grand_mean).pow(2).sum()
    within = (g - render_means).pow(2).sum()
    total = (g - grand_mean).pow(2).sum()
    return between.item(), within.item(), total.item()


def component_estimates(g: torch.Tensor) -> tuple[float, float]:
    """Unbiased (sigma_b^2, sigma_w^2) from g [R, K, D] in float64."""
    r, k = g.shape[0], g.shape[1]
    between, within, _ = anova_sums_of_squares(g)
    sigma_w2 = within / (r * (k - 1))
    variance_of_render_means = between / (k * (r - 1))
    return variance_of_render_means - sigma_w2 / k, sigma_w2


def leave_one_render_out_estimates(g: torch.Tensor) -> torch.Tensor:
    """(sigma_b^2, sigma_w^2) of g [R, K, D] without each render in turn, [R, 2], in O(R K D) from running sums."""
    r, k = g.shape[0], g.shape[1]
    render_means = g.mean(dim=1)  # [R, D]
    within = (g - render_means.unsqueeze(1)).pow(2).sum(dim=(1, 2))  # [R]
    sigma_w2 = (within.sum() - within) / ((r - 1) * (k - 1))
    return torch.stack([variance_of_means_without_each(render_means) - sigma_w2 / k, sigma_w2], dim=1)


def variance_of_means_without_each(render_means: torch.Tensor) -> torch.Tensor:
    """Trace of the sample covariance of render_means [R, D] without each render in turn, [R], from running sums."""
    r = render_means.shape[0]
    mean_without = (render_means.sum(dim=0) - render_means) / (r - 1)
    squares_without = render_means.pow(2).sum() - render_means.pow(2).sum(dim=1)
    return (squares_without - (r - 1) * mean_without.pow(2).sum(dim=1)) / (r - 2)


def jackknife_spread(without: torch.Tensor) -> torch.Tensor:
    """Jackknife standard error of each column of leave-one-out estimates [R, m]: sqrt((R-1)/R sum (x - mean)^2)."""
    r = without.shape[0]
    return ((r - 1) / r * (without - without.mean(dim=0)).pow(2).sum(dim=0)).sqrt()


def jackknife_se(g: torch.Tensor) -> tuple[float, float]:
    """Leave-one-render-out jackknife standard errors of (sigma_b^2, sigma_w^2); NaN below 3 renders."""
    if g.shape[0] < 3:
        return math.nan, math.nan
    se = jackknife_spread(leave_one_render_out_estimates(g))
    return se[0].item(), se[1].item()


def variance_components(g: torch.Tensor) -> VarianceComponents:
    """sigma_b^2 and sigma_w^2 from one R x K batch of per-draw gradients g [R, K, D] (one-way nested ANOVA).

    E[within mean square] = sigma_w^2 and E[variance of render means] = sigma_b^2 + sigma_w^2 / K.
    """
    g = check_grid(g)
    sigma_b2, sigma_w2 = component_estimates(g)
    se_b, se_w = jackknife_se(g)
    return VarianceComponents(sigma_b2, sigma_w2, se_b, se_w, g.shape[0], g.shape[1])


def predicted_variance(sigma_b2: float, sigma_w2: float, renders: int, draws_per_render: int) -> float:
    """Var(G_hat) = (sigma_b^2 + sigma_w^2 / K) / R."""
    if renders < 1 or draws_per_render < 1:
        raise ValueError(f"need R >= 1 and K >= 1, got R={renders}, K={draws_per_render}")
    return (sigma_b2 + sigma_w2 / draws_per_render) / renders


def work_normalised_variance(sigma_b2: float, sigma_w2: float, costs: CostModel, draws_per_render: int) -> float:
    """Var * C = (sigma_b^2 + sigma_w^2 / K)(a + K b), independent of R."""
    return predicted_variance(sigma_b2, sigma_w2, 1, draws_per_render) * costs.step_cost(1, draws_per_render)


def continuous_optimal_k(costs: CostModel, sigma_b2: float, sigma_w2: float) -> float:
    """K* = sqrt(a sigma_w^2 / (b sigma_b^2)); inf when sigma_b^2 <= 0."""
    if sigma_w2 < 0:
        raise ValueError(f"sigma_w^2 must be >= 0, got {sigma_w2}")
    if sigma_b2 <= 0:
        return math.inf
    return math.sqrt(costs.a * sigma_w2 / (costs.b * sigma_b2))


def optimal_k(a: float, b: float, sigma_b2: float, sigma_w2: float, k_max: int = 1024) -> int:
    """The integer K in [1, k_max] minimising (sigma_b^2 + sigma_w^2/K)(a + K b) (CARV sec. 3)."""
    costs = CostModel(a, b)
    k_star = min(continuous_optimal_k(costs, sigma_b2, sigma_w2), float(k_max))
    candidates = {max(1, min(k_max, math.floor(k_star))), max(1, min(k_max, math.ceil(k_star)))}
    return min(sorted(candidates), key=lambda k: work_normalised_variance(sigma_b2, sigma_w2, costs, k))


def ecm(baseline_variance: float, baseline_cost: float, variance: float, cost: float) -> float:
    """Effective compute multiplier (Var_B C_B) / (Var_X C_X): how much more compute the baseline needs."""
    if variance <= 0 or cost <= 0:
        raise ValueError(f"ECM needs a positive variance and cost, got variance={variance}, cost={cost}")
    return (baseline_variance * baseline_cost) / (variance * cost)


def configuration_ecm(
    costs: CostModel,
    baseline: tuple[float, float],
    components: tuple[float, float],
    renders: int,
    draws_per_render: int,
    baseline_renders: int = 1,
) -> float:
    """ECM of (R, K) with components (sigma_b^2, sigma_w^2) against the K = 1 baseline with its own components."""
    base_var = predicted_variance(*baseline, baseline_renders, 1)
    var = predicted_variance(*components, renders, draws_per_render)
    return ecm(base_var, costs.step_cost(baseline_renders, 1), var, costs.step_cost(renders, draws_per_render))


def reuse_limit(costs: CostModel, sigma_b2: float, sigma_w2: float) -> float:
    """The best ECM any K reaches against K = 1 with the same components:
    (sigma_b^2 + sigma_w^2)(a + b) / (sqrt(a sigma_b^2) + sqrt(b sigma_w^2))^2."""
    sigma_b2 = max(sigma_b2, 0.0)
    best = (math.sqrt(costs.a * sigma_b2) + math.sqrt(costs.b * sigma_w2)) ** 2
    if best <= 0:
        raise ValueError("the reuse limit needs a positive variance")
    return (sigma_b2 + sigma_w2) * (costs.a + costs.b) / best


def most_renders(costs, budget: float, draws_per_render: int, r_max: int = 1024) -> int:
    """The largest R in [1, r_max] with C(R, K) <= budget whose R K draws fit in memory where the cost model has
    a bound, or 0 if none; for any cost model with step_cost(R, K) non-decreasing in R: the linear R (a + K b) or
    the measured A(R) + c(R K) (carv.cost_curve)."""
    from .cost_curve import fits  # the memory check of any cost model (cost_curve imports this module)

    best = 0
    for renders in range(1, r_max + 1):
        if costs.step_cost(renders, draws_per_render) > budget * (1 + 1e-9):
            break
        if fits(costs, renders, draws_per_render):
            best = renders
    return best


def equal_cost_configurations(
    costs, budget: float, k_values=(1, 2, 4, 8, 16, 32), r_max: int = 1024
) -> list[tuple[int, int]]:
    """(R, K) pairs with the most renders R >= 1 whose cost C(R, K) stays within a per-step budget, one per K,
    under any cost model with step_cost(R, K) (most_renders)."""
    pairs = []
    for k in k_values:
        renders = most_renders(costs, budget, k, r_max)
        if renders >= 1:
            pairs.append((renders, k))
    return pairs
