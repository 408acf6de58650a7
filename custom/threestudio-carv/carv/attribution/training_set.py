"""The training images of `carv attribute`: toy-world views in the teacher's training colour-shape pairs.

Views come from ``carv.toyworld.world.render_world`` (its own seeded cameras, fewer views than the recipe's 400 per
shape, which take about 15 minutes to sphere-trace on 2 cores), painted in the pairs of the recipe's training set
(``carv.toyworld.recipe.training_views``: held-out pairs excluded), captioned as the recipe captions them
("a {colour} {shape}, {view} view"). A fixed seeded subset of those (view, colour) pairs is the training set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cameras import VIEW_NAMES
from ..toyworld.recipe import training_views
from ..toyworld.world import COLOUR_NAMES, SHAPE_NAMES, caption, render_world


@dataclass
class TrainingSet:
    """Images [N, 3, S, S] in [0, 1], their captions, and colour / shape indices [N]."""

    images: torch.Tensor
    captions: list[str]
    colour: torch.Tensor
    shape: torch.Tensor


def toy_training_set(size: int, views_per_shape: int, resolution: int, generator: torch.Generator, progress=None):
    """``size`` images drawn without replacement from every allowed (view, colour) pair of the rendered views."""
    world = render_world(views_per_shape, generator, size=resolution, progress=progress)
    view, colour = training_views(world)
    if size > len(view):
        raise ValueError(
            f"{size} training images asked, but {views_per_shape} views per shape give only {len(view)}; "
            "ask for fewer or render more views per shape"
        )
    pick = torch.randperm(len(view), generator=generator)[:size].sort().values
    view, colour = view[pick], colour[pick]
    shape = world.shape[view]
    captions = [
        caption(COLOUR_NAMES[c], SHAPE_NAMES[s], VIEW_NAMES[v])
        for c, s, v in zip(colour.tolist(), shape.tolist(), world.view[view].tolist(), strict=True)
    ]
    return TrainingSet(world.images(view, colour), captions, colour, shape)
