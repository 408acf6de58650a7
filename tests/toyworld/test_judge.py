"""The judge's API: input layouts, prompt fidelity = p(shape) * p(colour), fidelity over views."""

import pytest
import torch

from carv.toyworld.judge import Judge, ToyJudge
from carv.toyworld.world import COLOUR_NAMES, SHAPE_NAMES


@pytest.fixture(scope="module")
def judge():
    torch.manual_seed(0)
    return Judge(ToyJudge())


@pytest.fixture(scope="module")
def images():
    return torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_fidelity_is_product_of_shape_and_colour_probabilities(judge, images):
    verdict = judge(images)
    fidelity = judge.prompt_fidelity(images, "a green duck, side view")
    expected = verdict.shape[:, SHAPE_NAMES.index("duck")] * verdict.colour[:, COLOUR_NAMES.index("green")]
    torch.testing.assert_close(fidelity, expected)
    assert fidelity.shape == (5,) and torch.all((fidelity >= 0) & (fidelity <= 1))
    for probs in (verdict.shape, verdict.colour, verdict.view):
        torch.testing.assert_close(probs.sum(-1), torch.ones(5))


def test_channels_last_and_other_sizes_are_accepted(judge, images):
    nchw = judge.prompt_fidelity(images, "a red mug")
    torch.testing.assert_close(judge.prompt_fidelity(images.permute(0, 2, 3, 1), "a red mug"), nchw)
    big = torch.nn.functional.interpolate(images, scale_factor=2, mode="nearest")
    torch.testing.assert_close(judge.prompt_fidelity(big, "a red mug"), nchw, atol=1e-5, rtol=1e-4)


def test_fidelity_over_views_is_mean_with_standard_error(judge, images):
    mean, se = judge.fidelity_over_views(images, "a red mug")
    per_view = judge.prompt_fidelity(images, "a red mug")
    assert mean == pytest.approx(float(per_view.mean()))
    assert se == pytest.approx(float(per_view.std() / 5**0.5))


def test_save_and_load_round_trip(judge, images, tmp_path):
    judge.save(str(tmp_path))
    loaded = Judge.load(str(tmp_path))
    torch.testing.assert_close(loaded(images).shape, judge(images).shape)


def test_bad_inputs_raise(judge, images):
    with pytest.raises(ValueError, match="shape"):
        judge.prompt_fidelity(images, "a red hamburger")
    with pytest.raises(ValueError, match="colour channels"):
        judge(torch.rand(2, 4, 64, 64))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        judge(torch.rand(3, 64, 64))
