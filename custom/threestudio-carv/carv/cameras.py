"""Cameras of the toy world, with threestudio's random-camera and view-dependent-prompt semantics.

Convention (threestudio ``data/uncond.py``): angles in degrees, +z up, the
camera at ``distance * (cos(elev) cos(azim), cos(elev) sin(azim), sin(elev))``
looking at the origin; camera axes (right, up, -lookat) as columns of c2w,
OpenGL style (the camera looks along its -z). Objects face +x, so the
azimuth-0 camera sees their front. Ranges default to ``dreamfusion-sd.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ELEVATION_RANGE = (-10.0, 45.0)
AZIMUTH_RANGE = (-180.0, 180.0)
DISTANCE_RANGE = (1.5, 2.0)
FOVY_RANGE = (40.0, 70.0)
EVAL_DISTANCE = 2.0
EVAL_FOVY = 70.0

VIEW_NAMES = ("side", "front", "back", "overhead")
"""View classes in threestudio's order (index = its direction index)."""
VIEW_SUFFIXES = {"side": ", side view", "front": ", front view", "back": ", back view", "overhead": ", overhead view"}
"""What threestudio appends to the prompt with view_dependent_prompting (view_dependent_prompt_front false)."""
FRONT_THRESHOLD = 45.0
BACK_THRESHOLD = 45.0
OVERHEAD_THRESHOLD = 60.0


@dataclass
class Cameras:
    """A batch of n cameras: angles in degrees, distance, vertical field of view in degrees, c2w [n, 4, 4]."""

    elevation: torch.Tensor
    azimuth: torch.Tensor
    distance: torch.Tensor
    fovy: torch.Tensor
    c2w: torch.Tensor

    def __len__(self) -> int:
        return self.elevation.shape[0]


def _uniform(n: int, low_high: tuple[float, float], generator: torch.Generator | None) -> torch.Tensor:
    low, high = float(low_high[0]), float(low_high[1])
    if high < low:
        raise ValueError(f"range must be (low, high) with low <= high, got {low_high}")
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float32)


def camera_positions(elevation: torch.Tensor, azimuth: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Camera centres [n, 3] from angles in degrees and distances (threestudio's formula)."""
    elev, azim = torch.deg2rad(elevation), torch.deg2rad(azimuth)
    return torch.stack(
        [
            distance * torch.cos(elev) * torch.cos(azim),
            distance * torch.cos(elev) * torch.sin(azim),
            distance * torch.sin(elev),
        ],
        dim=-1,
    )


def look_at_origin(positions: torch.Tensor) -> torch.Tensor:
    """c2w [n, 4, 4] of cameras at ``positions`` [n, 3] looking at the origin with +z up."""
    if torch.any(torch.linalg.norm(positions[:, :2], dim=-1) < 1e-6):
        raise ValueError("look_at_origin: a camera straight above or below the origin has no defined up direction")
    lookat = torch.nn.functional.normalize(-positions, dim=-1)
    up = torch.tensor([0.0, 0.0, 1.0]).expand_as(positions)
    right = torch.nn.functional.normalize(torch.cross(lookat, up, dim=-1), dim=-1)
    up = torch.nn.functional.normalize(torch.cross(right, lookat, dim=-1), dim=-1)
    c2w = torch.zeros(positions.shape[0], 4, 4)
    c2w[:, :3, :3] = torch.stack([right, up, -lookat], dim=-1)
    c2w[:, :3, 3] = positions
    c2w[:, 3, 3] = 1.0
    return c2w


def make_cameras(elevation, azimuth, distance, fovy) -> Cameras:
    """Cameras from 1-D tensors (or numbers, broadcast) of elevation, azimuth, distance, fovy."""
    elevation, azimuth, distance, fovy = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in (elevation, azimuth, distance, fovy))
    )
    c2w = look_at_origin(camera_positions(elevation, azimuth, distance))
    return Cameras(elevation.clone(), azimuth.clone(), distance.clone(), fovy.clone(), c2w)


def sample_cameras(
    n: int,
    elevation_range: tuple[float, float] = ELEVATION_RANGE,
    azimuth_range: tuple[float, float] = AZIMUTH_RANGE,
    distance_range: tuple[float, float] = DISTANCE_RANGE,
    fovy_range: tuple[float, float] = FOVY_RANGE,
    generator: torch.Generator | None = None,
) -> Cameras:
    """n random cameras, each parameter uniform in its range (threestudio's uniform-in-degrees elevation branch)."""
    if n < 1:
        raise ValueError(f"sample_cameras: n must be >= 1, got {n}")
    if elevation_range[0] < -89.0 or elevation_range[1] > 89.0:
        raise ValueError(f"sample_cameras: elevation must stay within [-89, 89] degrees, got {elevation_range}")
    elevation = _uniform(n, elevation_range, generator)
    azimuth = _uniform(n, azimuth_range, generator)
    distance = _uniform(n, distance_range, generator)
    fovy = _uniform(n, fovy_range, generator)
    return make_cameras(elevation, azimuth, distance, fovy)


AZIMUTH_SAMPLING = ("threestudio", "stratified", "golden")
"""Azimuth rules of the training cameras: threestudio's own draw (its batch_uniform_azimuth), R equal strata
with one uniform offset per step, or the same strata rotated from step to step by the golden ratio."""
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # the golden ratio's fractional part, 0.618...


def lattice_offset(sampling: str, renders: int, step: int, start: float, fresh: float) -> float:
    """The offset in [0, 1) of step `step`'s azimuth lattice (sampling "stratified" or "golden").

    stratified: `fresh`, a uniform draw of the step itself. golden: frac(start + step * GOLDEN / renders), with
    `start` one uniform draw per run: each step's offset is then uniform too (a rotation of a uniform variable),
    and the strata offsets frac(renders * offset) of consecutive steps follow the golden-ratio (Kronecker)
    sequence, so the azimuths of many steps fill the circle more evenly than independent draws (Cranley-Patterson
    rotation of a low-discrepancy sequence).
    """
    if sampling == "stratified":
        return float(fresh)
    if sampling == "golden":
        return math.fmod(float(start) + step * GOLDEN / renders, 1.0)
    raise ValueError(f"azimuth sampling must be one of {', '.join(AZIMUTH_SAMPLING[1:])} here, got {sampling!r}")


def stratified_azimuths(renders: int, azimuth_range: tuple[float, float], offset: float) -> torch.Tensor:
    """Azimuths [renders] low + (high - low) frac(offset + i / renders): one in each of `renders` equal strata
    of the range, each marginally uniform over the whole range when the offset is uniform on [0, 1)."""
    if renders < 1 or not 0.0 <= offset < 1.0:
        raise ValueError(f"need renders >= 1 and an offset in [0, 1), got {renders} and {offset}")
    low, high = float(azimuth_range[0]), float(azimuth_range[1])
    fractions = torch.remainder(offset + torch.arange(renders, dtype=torch.float64) / renders, 1.0)
    return (low + (high - low) * fractions).to(torch.float32)


def shift_azimuth(azimuth: torch.Tensor) -> torch.Tensor:
    """Azimuth in degrees wrapped to [-180, 180)."""
    return (azimuth + 180.0) % 360.0 - 180.0


def view_class(elevation, azimuth) -> torch.Tensor:
    """threestudio's view class (index into VIEW_NAMES) of cameras at ``elevation``, ``azimuth`` (degrees).

    Rules applied in threestudio's order, later ones win: side; front if
    -45 < azim < 45; back if azim > 135 or azim < -135; overhead if elev > 60.
    """
    elevation = torch.as_tensor(elevation, dtype=torch.float32)
    azim = shift_azimuth(torch.as_tensor(azimuth, dtype=torch.float32))
    elevation, azim = torch.broadcast_tensors(elevation, azim)
    classes = torch.zeros(azim.shape, dtype=torch.long)
    classes[(azim > -FRONT_THRESHOLD) & (azim < FRONT_THRESHOLD)] = VIEW_NAMES.index("front")
    classes[(azim > 180.0 - BACK_THRESHOLD) | (azim < -180.0 + BACK_THRESHOLD)] = VIEW_NAMES.index("back")
    classes[elevation > OVERHEAD_THRESHOLD] = VIEW_NAMES.index("overhead")
    return classes


def rays(c2w: torch.Tensor, fovy, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space ray origins and unit directions [n, height, width, 3] through pixel centres.

    Pixel (row 0, column 0) is the top-left; the focal length is
    0.5 * height / tan(fovy / 2) as in threestudio.
    """
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"rays: c2w must be [n, 4, 4], got {tuple(c2w.shape)}")
    fovy = torch.as_tensor(fovy, dtype=torch.float32).reshape(-1).expand(c2w.shape[0])
    focal = 0.5 * height / torch.tan(0.5 * torch.deg2rad(fovy))
    j, i = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    x = (i - width / 2)[None] / focal[:, None, None]
    y = -(j - height / 2)[None] / focal[:, None, None]
    camera_dirs = torch.stack([x, y, -torch.ones_like(x)], dim=-1)
    directions = torch.einsum("nhwc,nrc->nhwr", camera_dirs, c2w[:, :3, :3])
    directions = torch.nn.functional.normalize(directions, dim=-1)
    origins = c2w[:, None, None, :3, 3].expand_as(directions)
    return origins, directions


def view_suffix(view_index: int) -> str:
    """The suffix threestudio appends for view class ``view_index``."""
    return VIEW_SUFFIXES[VIEW_NAMES[view_index]]
