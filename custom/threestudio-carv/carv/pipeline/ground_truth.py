"""Ground-truth quality (carv.toyworld.ground_truth) of a CPU-pipeline run and of a threestudio run's val and test stages.

All score renders at known cameras against the true object drawn by the toy world at the same cameras:
the pipeline's evaluation views (``orbit(endpoint=False)``, as the judge's final fidelity), threestudio's
validation stage (``orbit(endpoint=False)``: azimuth linspace(0, 360, n_val_views + 1)[:n_val_views], saved
during training as save/it{step}-{index}.png) and its test stage (``orbit(endpoint=True)``: azimuth
linspace(0, 360, n_test_views), save/it{step}-test/{index}.png); both at eval_elevation_deg,
eval_camera_distance, eval_fovy_deg, their PNGs rgb | [normal |] opacity.
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


def threestudio_eval_batch(
    split: str, n_views: int, elevation: float, distance: float, fovy: float, size: int
) -> CameraBatch:
    """threestudio's val or test cameras (random-camera-datamodule) at size x size pixels."""
    if split not in ("val", "test"):
        raise ValueError(f"threestudio's evaluation splits are val and test, not {split!r}")
    if n_views == 3:  # threestudio's RandomCameraDataset calls torch.cross without dim: 3 cameras fail there
        raise ValueError(f"threestudio cannot build 3 {split} cameras (torch.cross without dim); take 1, 2 or >= 4")
    data = DataConfig(
        eval_elevation_deg=elevation,
        eval_camera_distance=distance,
        eval_fovy_deg=fovy,
        eval_height=size,
        eval_width=size,
    )
    return orbit(data, n_views, endpoint=split == "test")


def threestudio_test_batch(n_test_views: int, elevation: float, distance: float, fovy: float, size: int) -> CameraBatch:
    """threestudio's test cameras (split test) at size x size pixels."""
    return threestudio_eval_batch("test", n_test_views, elevation, distance, fovy, size)


def threestudio_val_batch(n_val_views: int, elevation: float, distance: float, fovy: float, size: int) -> CameraBatch:
    """threestudio's validation cameras (split val) at size x size pixels."""
    return threestudio_eval_batch("val", n_val_views, elevation, distance, fovy, size)


def split_test_frame(frame: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb [H, H, 3] and opacity [H, H] in [0, 1] of a threestudio test-stage image [H, k * H, 3] (uint8)."""
    height, width = frame.shape[:2]
    if frame.ndim != 3 or width % height or width < 2 * height:
        raise ValueError(f"a test-stage image is rgb | ... | opacity panels of H x H, got {frame.shape}")
    image = torch.tensor(frame[..., :3], dtype=torch.float32) / 255.0
    return image[:, :height], image[:, -height:, 0]


def read_frames(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb [N, H, H, 3] and opacity [N, H, H] of threestudio's val or test images."""
    parts = [split_test_frame(np.asarray(Image.open(path).convert("RGB"))) for path in paths]
    return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])


def read_test_frames(folder: Path, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb [N, H, H, 3] and opacity [N, H, H] of frames ``indices`` of a save/it{N}-test/ folder."""
    return read_frames([Path(folder) / f"{i}.png" for i in indices])


def val_frame_paths(save_dir: Path, step: int, n_val_views: int) -> list[Path]:
    """The images threestudio's validation_step writes at a step: save/it{step}-{index}.png."""
    return [Path(save_dir) / f"it{step}-{i}.png" for i in range(n_val_views)]


class ValStageScorer:
    """Scores threestudio's validation images of any step against the true object at its val cameras (drawn
    once: every check of a run sees the same cameras)."""

    def __init__(self, prompt: str, *, n_val_views: int, elevation: float, distance: float, fovy: float, size: int):
        self.n_val_views = n_val_views
        self.truth = GroundTruth(prompt, threestudio_val_batch(n_val_views, elevation, distance, fovy, size))

    def score(self, save_dir: Path, step: int) -> dict:
        return self.truth.score(*read_frames(val_frame_paths(save_dir, step, self.n_val_views)))


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
