"""The toy world's vocabulary, captions, held-out pairs and rendered view sets."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cameras import VIEW_NAMES, VIEW_SUFFIXES, make_cameras, sample_cameras, view_class
from .render import GeometryBuffer, compose, render_geometry
from .shapes import SHAPE_BUILDERS, make_shape

COLOURS = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.55, 0.2, 0.75),
    "orange": (1.0, 0.5, 0.05),
}
COLOUR_NAMES = tuple(COLOURS)
SHAPE_NAMES = tuple(SHAPE_BUILDERS)
HELD_OUT_PAIRS = (("red", "chair"), ("blue", "rocket"), ("green", "teapot"), ("yellow", "car"))
"""Colour-shape pairs never shown to the teacher (the judge sees them), to measure composition."""
VOCABULARY = ("a", *COLOUR_NAMES, *SHAPE_NAMES, *VIEW_NAMES, "view")
GEOMETRY_FIELDS = ("coverage", "shading", "dark")
HIGH_ELEVATION_RANGE = (45.0, 89.0)
"""Extra views above the training range, so that the overhead class (elevation > 60) is learnt."""


def caption(colour: str, shape: str, view: str | None = None) -> str:
    """'a {colour} {shape}' plus threestudio's view suffix (', front view', ...) when ``view`` is given."""
    if colour not in COLOURS or shape not in SHAPE_NAMES:
        raise ValueError(f"unknown colour or shape: {colour!r}, {shape!r}")
    return f"a {colour} {shape}" + (VIEW_SUFFIXES[view] if view is not None else "")


@dataclass(frozen=True)
class ParsedPrompt:
    colour: int
    shape: int
    view: int | None


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Colour, shape and (if any) view indices named in a world prompt; ValueError if it names none or several."""
    words = prompt.lower().replace(",", " ").split()

    def only(names, kind, required):
        found = sorted({names.index(w) for w in words if w in names})
        if len(found) > 1 or (required and not found):
            raise ValueError(f"prompt {prompt!r} must name exactly one {kind} of {names}")
        return found[0] if found else None

    return ParsedPrompt(
        only(COLOUR_NAMES, "colour", True), only(SHAPE_NAMES, "shape", True), only(VIEW_NAMES, "view", False)
    )


def training_pairs() -> list[tuple[int, int]]:
    """(colour index, shape index) of every pair the teacher is trained on."""
    held = {(COLOUR_NAMES.index(c), SHAPE_NAMES.index(s)) for c, s in HELD_OUT_PAIRS}
    return [(c, s) for c in range(len(COLOUR_NAMES)) for s in range(len(SHAPE_NAMES)) if (c, s) not in held]


@dataclass
class WorldViews:
    """Geometry buffers of M rendered views: shape index [M], view class [M], angles [M], buffers [M, H, W]."""

    shape: torch.Tensor
    view: torch.Tensor
    elevation: torch.Tensor
    azimuth: torch.Tensor
    geometry: GeometryBuffer

    def __len__(self) -> int:
        return self.shape.shape[0]

    def images(self, index: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] of views ``index`` [B] painted in colours ``colour`` [B] (indices)."""
        palette = torch.tensor([COLOURS[name] for name in COLOUR_NAMES])
        return self.paint(index, palette[colour])

    def paint(self, index: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] of views ``index`` [B] painted in any colours ``rgb`` [B, 3] in [0, 1]."""
        g = self.geometry
        buffer = GeometryBuffer(g.coverage[index].float(), g.shading[index].float(), g.dark[index].float())
        return compose(buffer, rgb)

    def state_dict(self) -> dict:
        g = self.geometry
        return {
            "shape": self.shape,
            "view": self.view,
            "elevation": self.elevation,
            "azimuth": self.azimuth,
            "geometry": (g.coverage, g.shading, g.dark),
        }

    @classmethod
    def concatenate(cls, parts: list[WorldViews]) -> WorldViews:
        """One view set holding every view of ``parts`` in order."""
        geometry = GeometryBuffer(*(torch.cat([getattr(p.geometry, k) for p in parts]) for k in GEOMETRY_FIELDS))
        fields = ("shape", "view", "elevation", "azimuth")
        return cls(*(torch.cat([getattr(p, k) for p in parts]) for k in fields), geometry)

    @classmethod
    def from_state_dict(cls, state: dict) -> WorldViews:
        return cls(
            state["shape"], state["view"], state["elevation"], state["azimuth"], GeometryBuffer(*state["geometry"])
        )


def sample_world_cameras(n: int, high_elevation_share: float, generator: torch.Generator):
    """n cameras: a share with elevation in HIGH_ELEVATION_RANGE, the rest in the training ranges."""
    n_high = int(round(n * high_elevation_share))
    low = sample_cameras(n - n_high, generator=generator)
    if n_high == 0:
        return low
    high = sample_cameras(n_high, elevation_range=HIGH_ELEVATION_RANGE, generator=generator)
    return make_cameras(
        *(torch.cat([getattr(low, k), getattr(high, k)]) for k in ("elevation", "azimuth", "distance", "fovy"))
    )


def render_world(
    views_per_shape: int,
    generator: torch.Generator,
    high_elevation_share: float = 0.25,
    size: int = 64,
    batch: int = 128,
    progress=None,
) -> WorldViews:
    """Render ``views_per_shape`` random views of every shape; buffers stored as float16."""
    shapes, views, elevations, azimuths, buffers = [], [], [], [], []
    for shape_index, name in enumerate(SHAPE_NAMES):
        shape = make_shape(name)
        cams = sample_world_cameras(views_per_shape, high_elevation_share, generator)
        for start in range(0, views_per_shape, batch):
            part = slice(start, start + batch)
            sub = make_cameras(cams.elevation[part], cams.azimuth[part], cams.distance[part], cams.fovy[part])
            g = render_geometry(shape, sub, size, size)
            buffers.append(tuple(x.half() for x in (g.coverage, g.shading, g.dark)))
            if progress is not None:
                progress.update(len(sub))
        shapes.append(torch.full((views_per_shape,), shape_index))
        views.append(view_class(cams.elevation, cams.azimuth))
        elevations.append(cams.elevation)
        azimuths.append(cams.azimuth)
    geometry = GeometryBuffer(*(torch.cat([b[i] for b in buffers]) for i in range(3)))
    return WorldViews(torch.cat(shapes), torch.cat(views), torch.cat(elevations), torch.cat(azimuths), geometry)
