"""The fixed random projection P of TRAK: traker's BasicProjector (seeded, CPU), scaled by 1 / sqrt(P).

traker installs from PyPI beside torch without replacing it and its BasicProjector runs on the CPU; the 1 / sqrt(P)
makes projected inner products unbiased for the full ones (Johnson-Lindenstrauss), which TRAK leaves to the kernel.
"""

from __future__ import annotations

import math

import torch

PROJECTIONS = ("rademacher", "normal")


def random_projector(grad_dim: int, proj_dim: int, seed: int, kind: str = "rademacher"):
    """A function [B, grad_dim] -> [B, proj_dim]: the same matrix for every call (one block, generated once)."""
    if kind not in PROJECTIONS:
        raise ValueError(f"unknown projection {kind!r}; valid: {', '.join(PROJECTIONS)}")
    if proj_dim < 1:
        raise ValueError(f"the projection dimension must be >= 1, got {proj_dim}")
    from trak.projectors import BasicProjector, ProjectionType

    projector = BasicProjector(
        grad_dim=grad_dim,
        proj_dim=proj_dim,
        seed=seed,
        proj_type=ProjectionType(kind),
        device=torch.device("cpu"),
        block_size=proj_dim,
        dtype=torch.float32,
    )
    scale = 1.0 / math.sqrt(proj_dim)

    def project(gradients: torch.Tensor) -> torch.Tensor:
        return projector.project(gradients.detach().float().cpu(), model_id=0) * scale

    return project
