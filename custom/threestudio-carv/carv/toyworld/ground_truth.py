"""Ground-truth quality of a 3D result: its renders against the true object's, drawn by the toy world.

The toy world knows the object of every prompt it can express (``parse_prompt``: a colour and a shape),
so a result rendered at known cameras can be scored against the exact object sphere-traced at the same
cameras (``render_geometry`` + ``compose``, the images the teacher was trained on). Three figures per
view, averaged over the views: the soft IoU of the silhouettes (opacity against coverage: geometry),
the PSNR of RGB inside the union of both silhouettes (colour where either side has an object, so the
white background both share does not inflate it), and the SSIM of the whole RGB image (structure).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..cameras import Cameras
from .render import compose, render_geometry
from .shapes import make_shape
from .world import COLOUR_NAMES, COLOURS, SHAPE_NAMES, parse_prompt

SUPERSAMPLE = 2
"""The true object is rendered at 2x and box-filtered, so that its edges are soft as a volume render's are."""
PSNR_CAP = 100.0
"""PSNR of identical images (MSE clamped at 1e-10)."""
SSIM_WINDOW, SSIM_SIGMA, SSIM_C1, SSIM_C2 = 11, 1.5, 0.01**2, 0.03**2
"""Wang et al. 2004's Gaussian window and constants for images in [0, 1]."""
FIGURES = ("iou", "masked_psnr", "ssim")
RACE_FIGURE = "iou"
"""The figure `carv compare` races on (see the README: geometry, on a ratio scale from 0 to 1)."""


@dataclass
class TrueViews:
    """The true object at N cameras: rgb [N, H, W, 3] on white in [0, 1] and coverage [N, H, W] in [0, 1]."""

    rgb: torch.Tensor
    coverage: torch.Tensor


def true_views(prompt: str, cameras: Cameras, height: int, width: int, supersample: int = SUPERSAMPLE) -> TrueViews:
    """The prompt's true object (its shape in its colour) rendered by the toy world at ``cameras``."""
    parsed = parse_prompt(prompt)
    geometry = render_geometry(make_shape(SHAPE_NAMES[parsed.shape]), cameras, height, width, supersample)
    colour = torch.tensor(COLOURS[COLOUR_NAMES[parsed.colour]]).expand(len(cameras), 3)
    return TrueViews(compose(geometry, colour).permute(0, 2, 3, 1).contiguous(), geometry.coverage)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PSNR [N] in dB of images a, b [N, H, W, C] in [0, 1], over the pixels where mask [N, H, W] is true."""
    error = (a - b).square().mean(-1)
    if mask is None:
        mse = error.flatten(1).mean(1)
    else:
        weight = mask.flatten(1).float()
        mse = (error.flatten(1) * weight).sum(1) / weight.sum(1).clamp(min=1.0)
    return -10.0 * torch.log10(mse.clamp(min=10.0 ** (-PSNR_CAP / 10.0)))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM [N] of images a, b [N, H, W, C] in [0, 1] (Gaussian window, per channel, valid region)."""
    x, y = a.permute(0, 3, 1, 2).double(), b.permute(0, 3, 1, 2).double()
    channels = x.shape[1]
    g = torch.exp(-((torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2) ** 2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW)

    def blur(z):
        return F.conv2d(z, window, groups=channels)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    value = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)) / ((mx**2 + my**2 + SSIM_C1) * (vx + vy + SSIM_C2))
    return value.flatten(1).mean(1).float()


def soft_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Soft IoU [N] of silhouettes a, b [N, H, W] in [0, 1]: sum min / sum max (1 when both are empty)."""
    union = torch.maximum(a, b).flatten(1).sum(1)
    intersection = torch.minimum(a, b).flatten(1).sum(1)
    return torch.where(union > 0, intersection / union.clamp(min=1e-12), torch.ones_like(union))


def score_views(rgb: torch.Tensor, opacity: torch.Tensor, truth: TrueViews) -> dict[str, float]:
    """Mean over the views of FIGURES for renders rgb [N, H, W, 3] and opacity [N, H, W] (or [N, H, W, 1])."""
    if rgb.shape != truth.rgb.shape or opacity.numel() != truth.coverage.numel():
        raise ValueError(f"renders {tuple(rgb.shape)} do not match the true views {tuple(truth.rgb.shape)}")
    rgb, opacity = rgb.float().cpu(), opacity.float().cpu().reshape(truth.coverage.shape)
    union = torch.maximum(opacity, truth.coverage) > 0.5
    return {
        "iou": float(soft_iou(opacity, truth.coverage).mean()),
        "masked_psnr": float(psnr(rgb, truth.rgb, union).mean()),
        "ssim": float(ssim(rgb, truth.rgb).mean()),
        "views": truth.rgb.shape[0],
    }
