"""Procedural objects of the toy world as signed distance functions (SDFs).

Object frame: +x is the object's front (it faces the azimuth-0 camera), +z is
up, everything fits in a sphere of radius ``BOUNDING_RADIUS`` around the
origin. Each object is a union of primitives; each primitive carries a
material: ``BODY`` (painted in the object's colour) or ``DARK`` (a fixed dark
grey: doors, windows, eyes, wheels), which mark the front.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

BOUNDING_RADIUS = 0.5
SHAPE_SCALE = 0.9
"""Parts below are laid out within radius 0.55 and scaled by SHAPE_SCALE, so every object fits in radius 0.5:
fully visible from the tightest training camera (distance 1.5, fovy 40 sees radius 1.5 sin 20deg = 0.51)."""
BODY, DARK = 0, 1
AXES = {"x": 0, "y": 1, "z": 2}


def _split_axis(p: torch.Tensor, axis: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance from the axis, coordinate along the axis) of points p [N, 3]."""
    k = AXES[axis]
    others = [i for i in range(3) if i != k]
    return torch.linalg.norm(p[:, others], dim=-1), p[:, k]


def sphere(center, radius: float) -> Callable[[torch.Tensor], torch.Tensor]:
    c = torch.tensor(center)
    return lambda p: torch.linalg.norm(p - c, dim=-1) - radius


def box(center, half, tilt_x_deg: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Box with half sizes ``half``, optionally rotated by ``tilt_x_deg`` about the x axis."""
    c, h = torch.tensor(center), torch.tensor(half)
    a = math.radians(tilt_x_deg)
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(a), math.sin(a)], [0.0, -math.sin(a), math.cos(a)]])

    def sdf(p):
        q = ((p - c) @ rot.T).abs() - h
        return torch.linalg.norm(q.clamp(min=0.0), dim=-1) + q.max(dim=-1).values.clamp(max=0.0)

    return sdf


def cylinder(center, radius: float, half_height: float, axis: str = "z") -> Callable[[torch.Tensor], torch.Tensor]:
    c = torch.tensor(center)

    def sdf(p):
        radial, along = _split_axis(p - c, axis)
        d = torch.stack([radial - radius, along.abs() - half_height], dim=-1)
        return torch.linalg.norm(d.clamp(min=0.0), dim=-1) + d.max(dim=-1).values.clamp(max=0.0)

    return sdf


def cone(center, radius_low: float, radius_high: float, half_height: float, axis: str = "z"):
    """Capped cone along ``axis``: radius ``radius_low`` at the negative end, ``radius_high`` at the positive end."""
    c = torch.tensor(center)
    k1 = torch.tensor([radius_high, half_height])
    k2 = torch.tensor([radius_high - radius_low, 2.0 * half_height])

    def sdf(p):
        radial, along = _split_axis(p - c, axis)
        q = torch.stack([radial, along], dim=-1)
        cap_radius = torch.where(along < 0.0, radius_low, radius_high)
        ca = torch.stack([radial - torch.minimum(radial, cap_radius), along.abs() - half_height], dim=-1)
        s = (((k1 - q) * k2).sum(-1) / (k2 * k2).sum()).clamp(0.0, 1.0)
        cb = q - k1 + k2 * s[:, None]
        inside = (cb[:, 0] < 0.0) & (ca[:, 1] < 0.0)
        dist = torch.sqrt(torch.minimum((ca * ca).sum(-1), (cb * cb).sum(-1)))
        return torch.where(inside, -dist, dist)

    return sdf


def torus(center, ring_radius: float, tube_radius: float, axis: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Torus whose ring lies in the plane perpendicular to ``axis``."""
    c = torch.tensor(center)

    def sdf(p):
        radial, along = _split_axis(p - c, axis)
        return torch.sqrt((radial - ring_radius) ** 2 + along**2) - tube_radius

    return sdf


@dataclass(frozen=True)
class Shape:
    """A named object: a union of primitives, each with a material."""

    name: str
    parts: tuple[tuple[Callable[[torch.Tensor], torch.Tensor], int], ...]

    def distances(self, p: torch.Tensor) -> torch.Tensor:
        """Signed distances [P, N] of points p [N, 3] to each primitive."""
        return torch.stack([part(p / SHAPE_SCALE) for part, _ in self.parts]) * SHAPE_SCALE

    def sdf(self, p: torch.Tensor) -> torch.Tensor:
        """Signed distance [N] of the union."""
        return self.distances(p).min(dim=0).values

    def materials(self, p: torch.Tensor) -> torch.Tensor:
        """Material [N] (BODY or DARK) of the primitive nearest to each point."""
        table = torch.tensor([material for _, material in self.parts], dtype=torch.uint8)
        return table[self.distances(p).argmin(dim=0)]


def _mug():
    return (
        (cylinder((0, 0, 0), 0.28, 0.3), BODY),
        (cylinder((0, 0, 0.29), 0.23, 0.02), DARK),
        (torus((0, 0.3, 0), 0.15, 0.05, "x"), BODY),
        (box((0.28, 0, 0.0), (0.02, 0.1, 0.12)), DARK),
    )


def _chair():
    legs = tuple((box((x, y, -0.2), (0.03, 0.03, 0.18)), BODY) for x in (-0.21, 0.21) for y in (-0.21, 0.21))
    return ((box((0, 0, 0), (0.25, 0.25, 0.04)), BODY), (box((-0.22, 0, 0.22), (0.03, 0.25, 0.2)), BODY), *legs)


def _house():
    return (
        (box((0, 0, -0.1), (0.28, 0.3, 0.22)), BODY),
        (box((0, 0, 0.12), (0.3, 0.226, 0.226), tilt_x_deg=45.0), BODY),
        (box((0.28, 0, -0.2), (0.02, 0.07, 0.12)), DARK),
        (box((0.28, 0.18, -0.05), (0.02, 0.05, 0.05)), DARK),
        (box((0.28, -0.18, -0.05), (0.02, 0.05, 0.05)), DARK),
        (box((-0.1, 0.15, 0.3), (0.05, 0.05, 0.1)), DARK),
    )


def _rocket():
    return (
        (cylinder((0, 0, -0.05), 0.14, 0.3), BODY),
        (cone((0, 0, 0.37), 0.14, 0.0, 0.12), BODY),
        (sphere((0.12, 0, 0.08), 0.06), DARK),
        (sphere((0.12, 0, -0.1), 0.05), DARK),
        (box((-0.2, 0, -0.28), (0.08, 0.015, 0.08)), BODY),
        (box((0, 0.2, -0.28), (0.015, 0.08, 0.08)), BODY),
        (box((0, -0.2, -0.28), (0.015, 0.08, 0.08)), BODY),
    )


def _car():
    wheels = tuple((cylinder((x, y, -0.2), 0.09, 0.03, "y"), DARK) for x in (-0.25, 0.25) for y in (-0.19, 0.19))
    return (
        (box((0, 0, -0.1), (0.4, 0.2, 0.1)), BODY),
        (box((-0.08, 0, 0.07), (0.2, 0.18, 0.08)), BODY),
        (box((0.12, 0, 0.07), (0.01, 0.16, 0.06)), DARK),
        *wheels,
    )


def _duck():
    return (
        (sphere((-0.05, 0, -0.12), 0.28), BODY),
        (sphere((0.18, 0, 0.18), 0.15), BODY),
        (cone((0.36, 0, 0.16), 0.06, 0.01, 0.06, "x"), DARK),
        (sphere((0.29, 0.07, 0.23), 0.025), DARK),
        (sphere((0.29, -0.07, 0.23), 0.025), DARK),
        (sphere((-0.33, 0, 0.0), 0.08), BODY),
    )


def _teapot():
    return (
        (sphere((0, 0, -0.08), 0.28), BODY),
        (cone((0.32, 0, -0.02), 0.07, 0.035, 0.1, "x"), DARK),
        (torus((-0.3, 0, -0.06), 0.12, 0.035, "y"), BODY),
        (sphere((0, 0, 0.22), 0.06), DARK),
    )


def _robot():
    return (
        (box((0, 0, -0.15), (0.15, 0.22, 0.22)), BODY),
        (box((0, 0, 0.2), (0.13, 0.14, 0.12)), BODY),
        (box((0.13, 0.06, 0.22), (0.015, 0.03, 0.03)), DARK),
        (box((0.13, -0.06, 0.22), (0.015, 0.03, 0.03)), DARK),
        (cylinder((0, 0, 0.36), 0.015, 0.05), BODY),
        (sphere((0, 0, 0.42), 0.035), DARK),
        (box((0, 0.27, -0.12), (0.05, 0.05, 0.18)), BODY),
        (box((0, -0.27, -0.12), (0.05, 0.05, 0.18)), BODY),
        (box((0.15, 0, -0.12), (0.01, 0.14, 0.12)), DARK),
        (box((0, 0.1, -0.45), (0.06, 0.06, 0.08)), BODY),
        (box((0, -0.1, -0.45), (0.06, 0.06, 0.08)), BODY),
    )


SHAPE_BUILDERS = {
    "mug": _mug,
    "chair": _chair,
    "house": _house,
    "rocket": _rocket,
    "car": _car,
    "duck": _duck,
    "teapot": _teapot,
    "robot": _robot,
}


def make_shape(name: str) -> Shape:
    """The object called ``name`` (one of SHAPE_BUILDERS)."""
    if name not in SHAPE_BUILDERS:
        raise ValueError(f"unknown shape {name!r}; known: {sorted(SHAPE_BUILDERS)}")
    return Shape(name, SHAPE_BUILDERS[name]())
