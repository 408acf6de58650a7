"""The toy world: shapes fit the frame, fronts differ from backs, captions and held-out pairs."""

import pytest
import torch

from carv.cameras import make_cameras
from carv.toyworld.render import compose, render_geometry
from carv.toyworld.shapes import BOUNDING_RADIUS, make_shape
from carv.toyworld.tokenizer import build_vocabulary
from carv.toyworld.world import (
    COLOUR_NAMES,
    COLOURS,
    HELD_OUT_PAIRS,
    SHAPE_NAMES,
    VOCABULARY,
    caption,
    parse_prompt,
    render_world,
    training_pairs,
)


@pytest.fixture(scope="module")
def turntable():
    """Each shape from 8 azimuths at the tightest framing (distance 1.5, fovy 40), elevations -10 and 45."""
    azimuth = torch.arange(8).repeat(2) * 45.0
    elevation = torch.tensor([-10.0] * 8 + [45.0] * 8)
    cams = make_cameras(elevation, azimuth, 1.5, 40.0)
    return {name: render_geometry(make_shape(name), cams, 64, 64, supersample=1) for name in SHAPE_NAMES}


def test_world_size_and_vocabulary():
    assert len(SHAPE_NAMES) >= 8 and len(COLOUR_NAMES) >= 6
    assert all(max(rgb) < 1.0 or min(rgb) < 0.9 for rgb in COLOURS.values()), "no colour may be white"
    vocab, _ = build_vocabulary(VOCABULARY)
    assert all(word + "</w>" in vocab for word in VOCABULARY)


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_shape_fits_frame_and_is_visible(turntable, name):
    coverage = turntable[name].coverage
    assert coverage.sum(dim=(1, 2)).min() > 40, "object must be visible from every view"
    border = torch.cat([coverage[:, 0], coverage[:, -1], coverage[:, :, 0], coverage[:, :, -1]], dim=1)
    assert border.max() == 0, "object must fit inside the tightest frame"


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_front_and_back_look_different(turntable, name):
    g = turntable[name]
    image = compose(g, torch.tensor([[0.85, 0.12, 0.12]]).expand(16, 3))
    for front, back in [(0, 4), (8, 12)]:
        union = (g.coverage[front] + g.coverage[back]) > 0
        difference = (image[front] - image[back]).abs().mean(dim=0)[union].mean()
        assert difference > 0.015, "objects need a visible front (mean colour difference over the silhouettes)"


def test_points_beyond_the_bounding_sphere_are_outside_every_shape():
    p = torch.nn.functional.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    for name in SHAPE_NAMES:
        assert make_shape(name).sdf(p * (BOUNDING_RADIUS + 0.01)).min() > 0, name


def test_background_is_white_and_colour_is_applied(turntable):
    g = turntable["mug"]
    image = compose(g, torch.tensor([COLOURS["blue"]]).expand(16, 3))
    empty = g.coverage == 0
    assert torch.all(image.permute(1, 0, 2, 3)[:, empty] == 1.0)
    body = (g.coverage == 1) & (g.dark == 0) & (g.shading > 0.5)
    pixels = image.permute(1, 0, 2, 3)[:, body]
    assert torch.all(pixels[2] > pixels[0]), "blue objects are blue"


def test_captions_and_parsing():
    assert caption("red", "mug") == "a red mug"
    assert caption("red", "mug", "front") == "a red mug, front view"
    parsed = parse_prompt("a purple rocket, overhead view")
    assert (COLOUR_NAMES[parsed.colour], SHAPE_NAMES[parsed.shape], parsed.view) == ("purple", "rocket", 3)
    assert parse_prompt("a red mug").view is None
    with pytest.raises(ValueError, match="colour"):
        parse_prompt("a mug")
    with pytest.raises(ValueError, match="shape"):
        parse_prompt("a red mug and a chair")
    with pytest.raises(ValueError, match="unknown"):
        caption("white", "mug")


def test_held_out_pairs_are_excluded_from_training():
    pairs = training_pairs()
    held = {(COLOUR_NAMES.index(c), SHAPE_NAMES.index(s)) for c, s in HELD_OUT_PAIRS}
    assert len(held) == 4 and not held & set(pairs)
    assert len(pairs) == len(COLOUR_NAMES) * len(SHAPE_NAMES) - 4


def test_render_world_labels_and_overhead_share():
    world = render_world(20, torch.Generator().manual_seed(0), high_elevation_share=0.5, batch=64)
    assert len(world) == 20 * len(SHAPE_NAMES)
    assert torch.equal(world.shape, torch.arange(len(SHAPE_NAMES)).repeat_interleave(20))
    assert (world.view == 3).any(), "the extra high-elevation views include overhead ones"
    images = world.images(torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert images.shape == (2, 3, 64, 64) and images.min() >= 0 and images.max() <= 1
