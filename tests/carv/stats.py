"""Tolerances for statistical tests, derived from standard errors (no hand-tuned constants)."""

import math

import torch

CONFIDENCE = 0.99


def two_sided_z(confidence: float = CONFIDENCE, comparisons: int = 1) -> float:
    """z such that |N(0,1)| < z with probability `confidence`, Bonferroni-corrected over `comparisons`."""
    tail = (1.0 - confidence) / (2 * comparisons)
    return float(torch.special.ndtri(torch.tensor(1.0 - tail, dtype=torch.float64)))


def chi2_lower_quantile(dof: int, probability: float) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile at `probability`."""
    z = float(torch.special.ndtri(torch.tensor(probability, dtype=torch.float64)))
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + z * math.sqrt(c)) ** 3


def variance_upper_bound(samples: torch.Tensor, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound of the variance of normal-ish samples."""
    m = samples.numel()
    return samples.var().item() * (m - 1) / chi2_lower_quantile(m - 1, 1.0 - confidence)
