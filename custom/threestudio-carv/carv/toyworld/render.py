"""Sphere-traced renders of toy-world objects: geometry buffers once per view, colours applied afterwards.

Rendering is split so the costly part runs once per (shape, camera): a
``GeometryBuffer`` holds the coverage, Lambert shading and material of each
pixel; ``compose`` paints it in any colour on the white background.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cameras import Cameras, rays
from .shapes import BOUNDING_RADIUS, DARK, Shape

BACKGROUND = (1.0, 1.0, 1.0)
DARK_ALBEDO = (0.12, 0.12, 0.12)
AMBIENT = 0.3
HIT_TOLERANCE = 1e-3
TETRAHEDRON = torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])


@dataclass
class GeometryBuffer:
    """Per-pixel coverage in [0, 1], shading in [0, 1] and DARK-material fraction, each [n, H, W]."""

    coverage: torch.Tensor
    shading: torch.Tensor
    dark: torch.Tensor


def _sphere_trace(shape: Shape, origins: torch.Tensor, directions: torch.Tensor, steps: int):
    """Hit mask [N] and hit points [N, 3] of rays (origins, unit directions [N, 3]) against the shape."""
    b = (origins * directions).sum(-1)
    disc = b * b - ((origins * origins).sum(-1) - (BOUNDING_RADIUS + 0.05) ** 2)
    hit = torch.zeros(origins.shape[0], dtype=torch.bool)
    points = torch.zeros_like(origins)
    active = torch.nonzero(disc > 0).squeeze(-1)
    root = disc[active].sqrt()
    t, t_exit = -b[active] - root, -b[active] + root
    o, d = origins[active], directions[active]
    for step in range(steps):
        dist = shape.sdf(o + t[:, None] * d)
        t = t + dist
        done = (dist < HIT_TOLERANCE) | (t > t_exit)
        if step % 8 == 7 or step == steps - 1:
            converged = done & (t <= t_exit) & (dist < HIT_TOLERANCE)
            hit[active[converged]] = True
            points[active[converged]] = o[converged] + t[converged, None] * d[converged]
            keep = ~done
            active, t, t_exit, o, d = active[keep], t[keep], t_exit[keep], o[keep], d[keep]
            if active.numel() == 0:
                break
    return hit, points


def _normals(shape: Shape, points: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Unit SDF gradients at points [N, 3] by the tetrahedron finite-difference rule."""
    grad = sum(k * shape.sdf(points + eps * k)[:, None] for k in TETRAHEDRON)
    return torch.nn.functional.normalize(grad, dim=-1)


def light_directions(cameras: Cameras) -> torch.Tensor:
    """A light above and to the left of each camera, [n, 3] unit vectors."""
    c2w = cameras.c2w
    direction = c2w[:, :3, 3] / cameras.distance[:, None] + 0.6 * c2w[:, :3, 1] - 0.4 * c2w[:, :3, 0]
    return torch.nn.functional.normalize(direction, dim=-1)


def render_geometry(
    shape: Shape, cameras: Cameras, height: int = 64, width: int = 64, supersample: int = 1, steps: int = 40
) -> GeometryBuffer:
    """Sphere-trace ``shape`` from each camera at ``supersample``x resolution, then box-filter down."""
    if supersample < 1:
        raise ValueError(f"render_geometry: supersample must be >= 1, got {supersample}")
    n, sh, sw = len(cameras), height * supersample, width * supersample
    origins, directions = rays(cameras.c2w, cameras.fovy, sh, sw)
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    hit, points = _sphere_trace(shape, origins, directions, steps)
    shading = torch.zeros(origins.shape[0])
    dark = torch.zeros(origins.shape[0])
    idx = torch.nonzero(hit).squeeze(-1)
    if idx.numel():
        normals = _normals(shape, points[idx])
        light = light_directions(cameras).repeat_interleave(sh * sw, dim=0)[idx]
        shading[idx] = AMBIENT + (1.0 - AMBIENT) * (normals * light).sum(-1).clamp(min=0.0)
        dark[idx] = (shape.materials(points[idx]) == DARK).float()
    coverage = hit.float()

    def down(x):
        x = x.reshape(n, 1, sh, sw)
        return torch.nn.functional.avg_pool2d(x, supersample).reshape(n, height, width)

    cov = down(coverage)
    safe = cov.clamp(min=1e-6)
    return GeometryBuffer(cov, down(shading * coverage) / safe, down(dark * coverage) / safe)


def compose(geometry: GeometryBuffer, colours: torch.Tensor) -> torch.Tensor:
    """Images [n, 3, H, W] in [0, 1]: each buffer painted in its colour (colours [n, 3]) on white."""
    dark_albedo = torch.tensor(DARK_ALBEDO)[None, :, None, None]
    albedo = colours[:, :, None, None] * (1.0 - geometry.dark[:, None]) + dark_albedo * geometry.dark[:, None]
    surface = albedo * geometry.shading[:, None]
    cov = geometry.coverage[:, None]
    background = torch.tensor(BACKGROUND)[None, :, None, None]
    return (cov * surface + (1.0 - cov) * background).clamp(0.0, 1.0)
