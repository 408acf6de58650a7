"""Ground-truth quality (carv.toyworld.ground_truth) of a CPU-pipeline run and of a threestudio run's test stage.

Both score renders at known cameras against the true object drawn by the toy world at the same cameras:
the pipeline's evaluation views (``orbit(endpoint=False)``, as the judge's final fidelity) and
threestudio's test stage (``orbit(endpoint=True)``: azimuth linspace(0, 360, n_test_views) at
eval_elevation_deg, eval_camera_distance, eval_fovy_deg; its PNGs are rgb | [normal |] opacity).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image

from ..toyworld import TrueViews, parse_prompt, score_views, true_views
from .cameras import CameraBatch, orbit
from .config import DataConfig


class GroundTruth:
    """The true object of a prompt at a camera batch; ``score(rgb, opacity)`` compares renders with it."""

    def __init__(self, prompt: str, batch: CameraBatch):
        self.batch = batch
        self.truth: TrueViews = true_views(prompt, batch.cameras, *batch.size)

    def score(self, rgb: torch.Tensor, opacity: torch.Tensor) -> dict:
        return score_views(rgb, opacity, self.truth)

    def score_system(self, system) -> dict:
        """Score a TextTo3DSystem's deterministic renders of the batch."""
        out = system.render_outputs(self.batch)
        return self.score(out["rgb"], out["opacity"])


def pipeline_ground_truth(config: DictConfig) -> GroundTruth | None:
    """The truth at the run's evaluation views (evaluation.n_final_views), or None if the prompt names no object."""
    prompt = config.system.prompt_processor.prompt
    try:
        parse_prompt(prompt)
    except ValueError:
        return None
    return GroundTruth(prompt, orbit(config.data, config.evaluation.n_final_views, endpoint=False))


def threestudio_test_batch(n_test_views: int, elevation: float, distance: float, fovy: float, size: int) -> CameraBatch:
    """threestudio's test cameras (random-camera-datamodule, split test) at size x size pixels."""
    data = DataConfig(
        eval_elevation_deg=elevation,
        eval_camera_distance=distance,
        eval_fovy_deg=fovy,
        eval_height=size,
        eval_width=size,
    )
    return orbit(data, n_test_views, endpoint=True)


def split_test_frame(frame: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb [H, H, 3] and opacity [H, H] in [0, 1] of a threestudio test-stage image [H, k * H, 3] (uint8)."""
    height, width = frame.shape[:2]
    if frame.ndim != 3 or width % height or width < 2 * height:
        raise ValueError(f"a test-stage image is rgb | ... | opacity panels of H x H, got {frame.shape}")
    image = torch.tensor(frame[..., :3], dtype=torch.float32) / 255.0
    return image[:, :height], image[:, -height:, 0]


def read_test_frames(folder: Path, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb [N, H, H, 3] and opacity [N, H, H] of frames ``indices`` of a save/it{N}-test/ folder."""
    parts = [split_test_frame(np.asarray(Image.open(Path(folder) / f"{i}.png").convert("RGB"))) for i in indices]
    return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])


def evenly_spaced(n_test_views: int, n: int) -> list[int]:
    """n frame indices spread over the turntable, first frame included (the last repeats the first view)."""
    if not 1 <= n <= max(n_test_views - 1, 1):
        raise ValueError(f"cannot take {n} distinct views of a {n_test_views}-frame turntable")
    return [round(i * (n_test_views - 1) / n) for i in range(n)]


def score_test_stage(
    folder: Path,
    prompt: str,
    *,
    n_test_views: int,
    elevation: float,
    distance: float,
    fovy: float,
    views: int = 8,
) -> dict:
    """Ground-truth figures of a threestudio run's test-stage frames (``views`` of them, evenly spaced)."""
    indices = evenly_spaced(n_test_views, views)
    rgb, opacity = read_test_frames(folder, indices)
    batch = threestudio_test_batch(n_test_views, elevation, distance, fovy, rgb.shape[1])
    cams = batch.cameras
    keep = torch.tensor(indices)
    one = type(cams)(*(getattr(cams, k)[keep] for k in ("elevation", "azimuth", "distance", "fovy", "c2w")))
    return score_views(rgb, opacity, true_views(prompt, one, rgb.shape[1], rgb.shape[2]))
