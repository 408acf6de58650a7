"""Variance components of stratified per-render draws, and jackknife errors of predicted variances (CARV sec. 3).

With K draws per render, one in each of K equal-probability strata of q(t)
(CARV sec. 2.3), the within-render draws are no longer independent and the
nested-ANOVA within mean square overstates the variance of a render's mean.
The collapsed-strata estimator pairs the draws of adjacent strata (sorted by
t): E[||y_h - y_h'||^2] = V_h + V_h' + ||mu_h - mu_h'||^2, so
v_r = sum_pairs ||y_h - y_h'||^2 / K^2 estimates Var(mean_r | c) with a small
upward bias ||mu_h - mu_h'||^2 / K^2 (adjacent strata have close means).
"""

from __future__ import annotations

import math

import torch

from .accounting import (
    VarianceComponents,
    check_grid,
    jackknife_spread,
    leave_one_render_out_estimates,
    variance_components,
    variance_of_means_without_each,
)


def check_strata_timesteps(g: torch.Tensor, t: torch.Tensor) -> None:
    """t [R, K] must match the grid and K must be even (strata are paired)."""
    if tuple(t.shape) != tuple(g.shape[:2]):
        raise ValueError(f"timesteps must be [R, K] = {tuple(g.shape[:2])}, got {tuple(t.shape)}")
    if g.shape[1] % 2:
        raise ValueError(f"collapsed strata pair the draws of a render: K must be even, got K={g.shape[1]}")


def collapsed_strata_variances(g: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v_r [R]: collapsed-strata estimate of Var(mean over k of g_rk | render r), draws paired in order of t."""
    k = g.shape[1]
    order = t.argsort(dim=1, stable=True)
    ordered = torch.take_along_dim(g, order.unsqueeze(-1), dim=1)
    differences = ordered[:, 0::2] - ordered[:, 1::2]
    return differences.pow(2).sum(dim=(1, 2)) / k**2


def stratified_estimates(g: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma_b^2, effective sigma_w^2) from all renders and [R, 2] without each render."""
    r, k = g.shape[0], g.shape[1]
    within = collapsed_strata_variances(g, t)  # [R]
    render_means = g.mean(dim=1)
    variance_of_means = (render_means - render_means.mean(dim=0)).pow(2).sum() / (r - 1)
    full = torch.stack([variance_of_means - within.mean(), k * within.mean()])
    within_without = (within.sum() - within) / (r - 1)
    without = torch.stack([variance_of_means_without_each(render_means) - within_without, k * within_without], 1)
    return full, without


def stratified_variance_components(g: torch.Tensor, t: torch.Tensor) -> VarianceComponents:
    """sigma_b^2 and the effective sigma_w^2 at this K of stratified draws g [R, K, D] at timesteps t [R, K].

    Var(mean_r) = sigma_b^2 + sigma_w_eff^2 / K, estimated without bias by the spread of the render means.
    """
    g = check_grid(g)
    check_strata_timesteps(g, t)
    if g.shape[0] < 3:
        raise ValueError(f"stratified components need R >= 3 renders (jackknife), got R={g.shape[0]}")
    full, without = stratified_estimates(g, t.to(g.device))
    se = jackknife_spread(without)
    return VarianceComponents(full[0].item(), full[1].item(), se[0].item(), se[1].item(), g.shape[0], g.shape[1])


def leave_one_render_out(g: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
    """(sigma_b^2, sigma_w^2) without each render [R, 2]: nested ANOVA (t None) or collapsed strata."""
    g = check_grid(g)
    if t is None:
        return leave_one_render_out_estimates(g)
    check_strata_timesteps(g, t)
    return stratified_estimates(g, t.to(g.device))[1]


def predicted_variance_se(without: torch.Tensor, renders: int, draws_per_render: int) -> float:
    """Jackknife standard error of (sigma_b^2 + sigma_w^2 / K) / R from leave-one-render-out components [R, 2]."""
    if renders < 1 or draws_per_render < 1:
        raise ValueError(f"need R >= 1 and K >= 1, got R={renders}, K={draws_per_render}")
    if without.shape[0] < 3:
        return math.nan
    predictions = (without[:, 0] + without[:, 1] / draws_per_render) / renders
    return jackknife_spread(predictions.unsqueeze(1))[0].item()


def repeated_variance(estimates: torch.Tensor) -> tuple[float, float]:
    """Trace of the covariance of M repeated estimates [M, D], and its standard error (delta method), M >= 3."""
    if estimates.ndim != 2 or estimates.shape[0] < 3:
        raise ValueError(f"need M >= 3 repeated estimates [M, D], got shape {tuple(estimates.shape)}")
    estimates = estimates.detach().to(torch.float64)
    m = estimates.shape[0]
    deviations = (estimates - estimates.mean(dim=0)).pow(2).sum(dim=1) * m / (m - 1)  # each unbiased for the trace
    return deviations.mean().item(), (deviations.std() / math.sqrt(m)).item()


def grid_components(g: torch.Tensor, t: torch.Tensor, stratified: bool) -> VarianceComponents:
    """Components of a per-draw grid g [R, K, D]: collapsed strata for per-render stratified draws, else ANOVA."""
    return stratified_variance_components(g, t) if stratified else variance_components(g)


def pooled_between_render_variance(estimates: list[VarianceComponents]) -> tuple[float, float]:
    """Mean of independent sigma_b^2 estimates and its standard error.

    sigma_b^2 = trace Var_c(E[G | c]) is the same for every unbiased proposal and stratification (E[G | c] is
    the SDS gradient of render c), so estimates from grids on independent renders may be averaged.
    """
    if not estimates:
        raise ValueError("pooling needs at least one estimate")
    n = len(estimates)
    mean = sum(c.sigma_b2 for c in estimates) / n
    return mean, math.sqrt(sum(c.sigma_b2_se**2 for c in estimates)) / n


def between_render_part(measured: float, measured_se: float, sigma_w2: float, sigma_w2_se: float, renders: int, k: int):
    """(value, SE) of the between-render variance of the R-render mean: a step's measured variance less the within
    part sigma_w^2 / (R K) (Var = Var(mean_r E[G | c_r]) + sigma_w^2 / (R K) for any joint law of the R cameras)."""
    if renders < 1 or k < 1:
        raise ValueError(f"need R >= 1 and K >= 1, got R={renders}, K={k}")
    within = sigma_w2 / (renders * k)
    return measured - within, math.hypot(measured_se, sigma_w2_se / (renders * k))


def measured_ecm_at_costs(check: dict, baseline: dict, check_cost: float, baseline_cost: float) -> dict:
    """Var_baseline C_baseline / (Var_check C_check) from measured variances ("measured", "measured_se") at the given
    per-step costs (taken as exact: the standard error is the variances' delta method)."""
    value = (baseline["measured"] * baseline_cost) / (check["measured"] * check_cost)
    relative = (baseline["measured_se"] / baseline["measured"]) ** 2 + (check["measured_se"] / check["measured"]) ** 2
    return {"ecm": value, "se": value * relative**0.5}
