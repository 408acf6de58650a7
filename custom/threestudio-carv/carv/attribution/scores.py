"""TRAK-style scores from features, rank agreement with the ground truth, and the multiplier at equal agreement."""

from __future__ import annotations

import math

import torch


def trak_scores(query: torch.Tensor, train: torch.Tensor, ridge: float = 1e-2) -> torch.Tensor:
    """TRAK's kernel score phi_q^T (Phi^T Phi + lambda I)^-1 phi_j: query [Q, P], train [N, P] -> [Q, N], float64.

    lambda = ridge * trace(Phi^T Phi) / P (damping relative to the mean eigenvalue); ridge = inf is not
    allowed, use ``query @ train.T`` for the plain inner product.
    """
    if not (math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge}")
    phi, q = train.to(torch.float64), query.to(torch.float64)
    kernel = phi.T @ phi
    damping = ridge * kernel.diagonal().sum() / kernel.shape[0]
    kernel = kernel + damping * torch.eye(kernel.shape[0], dtype=torch.float64)
    return q @ torch.linalg.solve(kernel, phi.T)


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 0..N-1 along the last dimension (ties broken by position; scores here are continuous)."""
    order = x.argsort(dim=-1)
    out = torch.empty_like(order)
    out.scatter_(-1, order, torch.arange(x.shape[-1]).expand_as(order).contiguous())
    return out.to(torch.float64)


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of a with the same row of b, [Q, N] x [Q, N] -> [Q]."""
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1))


def mean_spearman(scores: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """Mean over queries of the Spearman correlation with the ground truth, and its standard error."""
    rho = spearman_rows(scores, truth)
    se = rho.std().item() / math.sqrt(rho.numel()) if rho.numel() > 1 else math.nan
    return rho.mean().item(), se


def draws_for(correlation: float, budgets: list[int], curve: list[float]) -> tuple[float, str]:
    """Budget at which ``curve`` (correlation vs budgets) first reaches ``correlation``, linear in log2 budget.

    Returns (budget, bound): "exact" when interpolated, "at_least" the largest budget when the curve never gets
    there, "at_most" the smallest budget when it starts above.
    """
    if correlation <= curve[0]:
        return float(budgets[0]), "at_most"
    for i in range(len(budgets) - 1):
        (k0, c0), (k1, c1) = (budgets[i], curve[i]), (budgets[i + 1], curve[i + 1])
        if c0 < correlation <= c1:
            share = (correlation - c0) / (c1 - c0)
            return 2.0 ** (math.log2(k0) + share * (math.log2(k1) - math.log2(k0))), "exact"
    return float(budgets[-1]), "at_least"


def budget_multipliers(
    budgets: list[int], curve: list[float], reference_budgets: list[int], reference_curve: list[float]
) -> list[dict]:
    """Per budget K of an estimator: draws the reference needs for the same correlation / K, with its bound."""
    out = []
    for k, correlation in zip(budgets, curve, strict=True):
        needed, bound = draws_for(correlation, reference_budgets, reference_curve)
        out.append({"budget": k, "reference_draws": needed, "multiplier": needed / k, "bound": bound})
    return out
