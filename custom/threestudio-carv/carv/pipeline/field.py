"""The scene: a dense voxel grid of density and colour, read by trilinear interpolation (no CUDA-only parts)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import GeometryConfig


def magic3d_blob(positions: torch.Tensor, scale: float, std: float) -> torch.Tensor:
    """Magic3D's density bias scale * (1 - |x| / std) [...]: a dense ball at the centre at initialisation."""
    return scale * (1.0 - positions.norm(dim=-1) / std)


class VoxelGridField(nn.Module):
    """field(positions [N, S, 3], directions [N, S, 3]) -> (density [N, S], rgb [N, S, 3]) for carv.render.

    Raw density and colour logits live on a [4, G, G, G] grid over the cube [-radius, radius]^3; the
    density activation is applied to raw + the Magic3D blob, the colour is a sigmoid. View-independent.
    """

    def __init__(self, config: GeometryConfig):
        super().__init__()
        self.config = config
        g = config.grid_resolution
        self.grid = nn.Parameter(torch.zeros(1, 4, g, g, g))

    def raw(self, positions: torch.Tensor) -> torch.Tensor:
        """Interpolated grid values [..., 4] at positions [..., 3] (zero outside the cube)."""
        shape = positions.shape[:-1]
        # grid_sample's (x, y, z) index the grid's (W, H, D) axes, i.e. our positions' (0, 1, 2) map to (W, H, D).
        normalised = (positions / self.config.radius).reshape(1, -1, 1, 1, 3)
        values = F.grid_sample(self.grid, normalised, mode="bilinear", padding_mode="zeros", align_corners=True)
        return values.reshape(4, -1).t().reshape(*shape, 4)

    def density(self, raw_density: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        c = self.config
        biased = raw_density + magic3d_blob(positions, c.density_blob_scale, c.density_blob_std)
        return F.softplus(biased) if c.density_activation == "softplus" else torch.exp(biased)

    def forward(self, positions: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.raw(positions)
        return self.density(values[..., 0], positions), torch.sigmoid(values[..., 1:])
