"""Batched (non-packed) volume rendering: every ray carries the same number of samples.

Built on nerfacc's batched `render_weight_from_density` and `accumulate_along_rays`,
which need no CUDA kernels, so the same renderer serves the CPU pipeline and the
threestudio adapter (`carv-batched-volume-renderer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import nerfacc
import torch
from torch import Tensor

# field(positions [N, S, 3], directions [N, S, 3]) -> (density [N, S], rgb [N, S, C])
RadianceField = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass
class RaySamples:
    """Intervals along each ray: `t_starts`, `t_ends` [N, S] in ray-parameter units."""

    t_starts: Tensor
    t_ends: Tensor

    @property
    def midpoints(self) -> Tensor:
        """Interval midpoints [N, S]."""
        return 0.5 * (self.t_starts + self.t_ends)

    def positions(self, rays_o: Tensor, rays_d: Tensor) -> Tensor:
        """World positions of the midpoints [N, S, 3]."""
        return rays_o[:, None, :] + rays_d[:, None, :] * self.midpoints[..., None]


@dataclass
class CompositeResult:
    """Composited ray colours [N, C], opacity and depth [N, 1], sample weights [N, S]."""

    rgb: Tensor
    rgb_fg: Tensor
    opacity: Tensor
    depth: Tensor
    weights: Tensor


def _check_rays(rays_o: Tensor, rays_d: Tensor) -> None:
    if rays_o.ndim != 2 or rays_o.shape[-1] != 3 or rays_o.shape != rays_d.shape:
        raise ValueError(
            f"rays_o and rays_d must both have shape [N, 3], got {tuple(rays_o.shape)} and {tuple(rays_d.shape)}"
        )


def ray_box_bounds(rays_o: Tensor, rays_d: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """Entry and exit distances [N] of each ray through the cube [-radius, radius]^3 (slab test).

    A ray that misses the cube gets near == far, i.e. no samples of positive length.
    """
    _check_rays(rays_o, rays_d)
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    safe_d = torch.where(rays_d.abs() < 1e-12, torch.full_like(rays_d, 1e-12), rays_d)
    t_low = (-radius - rays_o) / safe_d
    t_high = (radius - rays_o) / safe_d
    near = torch.minimum(t_low, t_high).amax(dim=-1).clamp_min(0.0)
    far = torch.maximum(t_low, t_high).amin(dim=-1)
    far = torch.maximum(far, near)
    return near, far


def stratified_samples(
    near: Tensor,
    far: Tensor,
    num_samples: int,
    *,
    stratified: bool = True,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """Split [near, far] into `num_samples` equal bins; with `stratified`, jitter one point per bin.

    Bin edges are the midpoints between consecutive jittered points (NeRF's stratified sampling).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if near.shape != far.shape or near.ndim != 1:
        raise ValueError(f"near and far must both be [N], got {tuple(near.shape)}, {tuple(far.shape)}")
    steps = torch.arange(num_samples + 1, device=near.device, dtype=near.dtype) / num_samples
    edges = near[:, None] + (far - near)[:, None] * steps  # [N, S + 1]
    if not stratified:
        return RaySamples(edges[:, :-1], edges[:, 1:])
    draw_on = generator.device if generator is not None else near.device  # a CPU generator may drive CUDA rays
    jitter = torch.rand(edges.shape[0], num_samples, generator=generator, device=draw_on, dtype=near.dtype)
    jitter = jitter.to(near.device)
    points = edges[:, :-1] + (edges[:, 1:] - edges[:, :-1]) * jitter  # [N, S]
    inner = 0.5 * (points[:, 1:] + points[:, :-1])
    t_starts = torch.cat([edges[:, :1], inner], dim=-1)
    t_ends = torch.cat([inner, edges[:, -1:]], dim=-1)
    return RaySamples(t_starts, t_ends)


def composite(samples: RaySamples, density: Tensor, rgb: Tensor, background: Tensor) -> CompositeResult:
    """Alpha-composite per-sample density [N, S] and colour [N, S, C] over a background [N, C] or [C]."""
    n_rays, n_samples = samples.t_starts.shape
    if density.shape != (n_rays, n_samples):
        raise ValueError(f"density must be [N, S] = {(n_rays, n_samples)}, got {tuple(density.shape)}")
    if rgb.shape[:2] != (n_rays, n_samples):
        raise ValueError(f"rgb must be [N, S, C] with N, S = {(n_rays, n_samples)}, got {tuple(rgb.shape)}")
    weights, _, _ = nerfacc.render_weight_from_density(samples.t_starts, samples.t_ends, density)
    opacity = nerfacc.accumulate_along_rays(weights, None)
    depth = nerfacc.accumulate_along_rays(weights, samples.midpoints[..., None])
    rgb_fg = nerfacc.accumulate_along_rays(weights, rgb)
    rgb_out = rgb_fg + background.expand_as(rgb_fg) * (1.0 - opacity)
    return CompositeResult(rgb=rgb_out, rgb_fg=rgb_fg, opacity=opacity, depth=depth, weights=weights)


def render_rays(
    field: RadianceField,
    rays_o: Tensor,
    rays_d: Tensor,
    background: Tensor,
    *,
    radius: float,
    num_samples: int,
    stratified: bool = True,
    generator: torch.Generator | None = None,
) -> CompositeResult:
    """Render rays [N, 3] through `field` inside the cube of half-size `radius`, over `background`."""
    near, far = ray_box_bounds(rays_o, rays_d, radius)
    samples = stratified_samples(near, far, num_samples, stratified=stratified, generator=generator)
    positions = samples.positions(rays_o, rays_d)
    directions = rays_d[:, None, :].expand_as(positions)
    density, rgb = field(positions, directions)
    return composite(samples, density, rgb, background)
