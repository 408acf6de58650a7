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

    Raw density and colour logits live on [1, G, G, G] and [3, G, G, G] grids over the cube
    [-radius, radius]^3 (two parameters, so that colour may learn at its own rate); the density
    activation is applied to raw + the Magic3D blob, the colour is a sigmoid. View-independent.
    """

    def __init__(self, config: GeometryConfig):
        super().__init__()
        self.config = config
        g = config.grid_resolution
        self.density_grid = nn.Parameter(torch.zeros(1, 1, g, g, g))
        self.colour_grid = nn.Parameter(torch.zeros(1, 3, g, g, g))

    def raw(self, positions: torch.Tensor) -> torch.Tensor:
        """Interpolated grid values [..., 4] (raw density, colour logits) at positions [..., 3]; zero outside."""
        shape = positions.shape[:-1]
        grid = torch.cat([self.density_grid, self.colour_grid], dim=1)
        # grid_sample's (x, y, z) index the grid's (W, H, D) axes, i.e. our positions' (0, 1, 2) map to (W, H, D).
        normalised = (positions / self.config.radius).reshape(1, -1, 1, 1, 3)
        values = F.grid_sample(grid, normalised, mode="bilinear", padding_mode="zeros", align_corners=True)
        return values.reshape(4, -1).t().reshape(*shape, 4)

    def density_gradient_grid(self) -> torch.Tensor:
        """Finite-difference gradient of the raw density grid, channels (d/dx, d/dy, d/dz) [1, 3, G, G, G]."""
        spacing = 2.0 * self.config.radius / (self.config.grid_resolution - 1)
        d_dz, d_dy, d_dx = torch.gradient(self.density_grid[0, 0], spacing=spacing)  # grid axes are (z, y, x)
        return torch.stack([d_dx, d_dy, d_dz])[None]

    def normals(self, positions: torch.Tensor) -> torch.Tensor:
        """Outward unit normals [..., 3]: minus the normalised gradient of raw density + the Magic3D blob."""
        c = self.config
        shape = positions.shape[:-1]
        normalised = (positions / c.radius).reshape(1, -1, 1, 1, 3)
        grid_part = F.grid_sample(self.density_gradient_grid(), normalised, align_corners=True)
        gradient = grid_part.reshape(3, -1).t().reshape(*shape, 3)
        gradient = gradient - c.density_blob_scale / c.density_blob_std * F.normalize(positions, dim=-1)
        return -F.normalize(gradient, dim=-1)

    def shaded(self, positions: torch.Tensor, light: torch.Tensor, ambient: float):
        """(density, albedo * (ambient + (1 - ambient) max(0, n . l))) with unit light directions light [N, 3]."""
        density, albedo = self(positions, positions)
        lambert = (self.normals(positions) * light[:, None, :]).sum(-1, keepdim=True).clamp(min=0.0)
        return density, albedo * (ambient + (1.0 - ambient) * lambert)

    def density(self, raw_density: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        c = self.config
        biased = raw_density + magic3d_blob(positions, c.density_blob_scale, c.density_blob_std)
        return F.softplus(biased) if c.density_activation == "softplus" else torch.exp(biased)

    def forward(self, positions: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.raw(positions)
        return self.density(values[..., 0], positions), torch.sigmoid(values[..., 1:])
