"""Training cameras and evaluation views with threestudio's random-camera-datamodule semantics.

Camera geometry, view classes and rays are carv.cameras' (threestudio's conventions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cameras import Cameras, lattice_offset, make_cameras, rays, stratified_azimuths, view_class
from .config import DataConfig


@dataclass
class CameraBatch:
    """R cameras and their rays [R, H, W, 3]; angles in degrees."""

    cameras: Cameras
    rays_o: torch.Tensor
    rays_d: torch.Tensor

    @property
    def view_classes(self) -> torch.Tensor:
        """threestudio's view class per camera [R] (side, front, back, overhead)."""
        return view_class(self.cameras.elevation, self.cameras.azimuth)

    @property
    def size(self) -> tuple[int, int]:
        return self.rays_o.shape[1], self.rays_o.shape[2]


def uniform(n: int, low_high, generator: torch.Generator | None) -> torch.Tensor:
    low, high = float(low_high[0]), float(low_high[1])
    return low + (high - low) * torch.rand(n, generator=generator)


def batch_azimuths(n: int, low_high, uniform_over_batch: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Azimuths [n]; with batch_uniform_azimuth one uniform draw in each of n equal slices (threestudio's)."""
    if not uniform_over_batch:
        return uniform(n, low_high, generator)
    low, high = float(low_high[0]), float(low_high[1])
    return low + (high - low) * (torch.rand(n, generator=generator) + torch.arange(n)) / n


def azimuth_start(seed: int) -> float:
    """The run's one uniform draw that starts the golden-ratio azimuth sequence (its own generator)."""
    return torch.rand(1, generator=torch.Generator().manual_seed(seed * 1_000_003 + 2**40), dtype=torch.float64).item()


def step_azimuths(config: DataConfig, generator: torch.Generator | None, step: int, start: float) -> torch.Tensor:
    """The batch's azimuths by data.carv_azimuth_sampling: threestudio's draw (batch_uniform_azimuth), or one in each
    of R equal strata at carv.cameras.lattice_offset (each camera marginally uniform over the range)."""
    n, sampling = config.batch_size, config.get("carv_azimuth_sampling", "threestudio")  # (runs made before it)
    if sampling == "threestudio":
        return batch_azimuths(n, config.azimuth_range, config.batch_uniform_azimuth, generator)
    fresh = torch.rand(1, generator=generator, dtype=torch.float64).item() if sampling == "stratified" else 0.0
    return stratified_azimuths(n, config.azimuth_range, lattice_offset(sampling, n, step, start, fresh))


def with_rays(cameras: Cameras, height: int, width: int) -> CameraBatch:
    origins, directions = rays(cameras.c2w, cameras.fovy, height, width)
    return CameraBatch(cameras, origins, directions)


def train_batch(
    config: DataConfig,
    generator: torch.Generator | None = None,
    renders: int | None = None,
    *,
    step: int = 0,
    start: float = 0.0,
) -> CameraBatch:
    """R random cameras at the training resolution (R = renders, else data.batch_size), each parameter uniform in
    its range; the azimuths by step_azimuths (`step` and the run's `start` matter only to carv_azimuth_sampling:
    golden)."""
    n = config.batch_size if renders is None else renders
    cameras = make_cameras(
        uniform(n, config.elevation_range, generator),
        step_azimuths(config, generator, step, start),
        uniform(n, config.camera_distance_range, generator),
        uniform(n, config.fovy_range, generator),
    )
    return with_rays(cameras, config.height, config.width)


def orbit(config: DataConfig, n: int, *, endpoint: bool, height: int | None = None, width: int | None = None):
    """n views around the object at the evaluation elevation, distance and field of view.

    endpoint=True is threestudio's test turntable (azimuth linspace(0, 360, n)); False spaces n views evenly.
    """
    azimuth = torch.linspace(0.0, 360.0, n) if endpoint else torch.arange(n) * (360.0 / n)
    cameras = make_cameras(config.eval_elevation_deg, azimuth, config.eval_camera_distance, config.eval_fovy_deg)
    return with_rays(cameras, height or config.eval_height, width or config.eval_width)
