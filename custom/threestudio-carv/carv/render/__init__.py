"""Batched volume rendering on nerfacc's non-packed functions (runs on CPU and CUDA)."""

from carv.render.volume import (
    CompositeResult,
    RaySamples,
    composite,
    ray_box_bounds,
    render_rays,
    stratified_samples,
)

__all__ = [
    "CompositeResult",
    "RaySamples",
    "composite",
    "ray_box_bounds",
    "render_rays",
    "stratified_samples",
]
