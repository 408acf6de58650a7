"""The ground-truth figures: exact on the true object, worse on any perturbation of it."""

import pytest
import torch

from carv.cameras import make_cameras
from carv.toyworld.ground_truth import PSNR_CAP, TrueViews, psnr, score_views, soft_iou, ssim, true_views

PROMPT = "a red mug"


@pytest.fixture(scope="module")
def cameras():
    return make_cameras(15.0, torch.arange(4) * 90.0, 2.0, 70.0)


@pytest.fixture(scope="module")
def truth(cameras):
    return true_views(PROMPT, cameras, 32, 32)


def test_the_true_object_scores_the_best_possible_value(truth):
    assert score_views(truth.rgb, truth.coverage, truth) == {
        "iou": 1.0,
        "masked_psnr": PSNR_CAP,
        "ssim": 1.0,
        "views": 4,
    }


def test_opacity_may_carry_a_channel_axis(truth):
    assert score_views(truth.rgb, truth.coverage[..., None], truth)["iou"] == 1.0


def test_another_colour_keeps_the_silhouette_but_loses_rgb(truth, cameras):
    blue = true_views("a blue mug", cameras, 32, 32)
    scores = score_views(blue.rgb, blue.coverage, truth)
    assert scores["iou"] == 1.0
    assert scores["masked_psnr"] < 20.0 and scores["ssim"] < 1.0


@pytest.mark.parametrize("perturb", ["turned", "other shape", "shifted"])
def test_a_perturbed_object_scores_worse_on_every_figure(truth, cameras, perturb):
    if perturb == "turned":
        turned = make_cameras(cameras.elevation, cameras.azimuth + 60.0, cameras.distance, cameras.fovy)
        wrong = true_views(PROMPT, turned, 32, 32)
    elif perturb == "other shape":
        wrong = true_views("a red duck", cameras, 32, 32)
    else:
        wrong = TrueViews(truth.rgb.roll(2, dims=2), truth.coverage.roll(2, dims=2))
    scores = score_views(wrong.rgb, wrong.coverage, truth)
    assert scores["iou"] < 0.95 and scores["masked_psnr"] < 30.0 and scores["ssim"] < 0.99


def test_figures_are_monotone_in_the_size_of_a_perturbation(truth):
    """Blending more of a wrong image in never scores better."""
    wrong_rgb, wrong_cov = torch.ones_like(truth.rgb), torch.zeros_like(truth.coverage)
    scores = [
        score_views((1 - a) * truth.rgb + a * wrong_rgb, (1 - a) * truth.coverage + a * wrong_cov, truth)
        for a in (0.1, 0.3, 0.6)
    ]
    for key in ("iou", "masked_psnr", "ssim"):
        assert scores[0][key] > scores[1][key] > scores[2][key], key


def test_psnr_and_iou_by_hand():
    a, b = torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 2, 3)
    b[0, 0, 0] = 0.1  # one pixel off by 0.1 in every channel: MSE 0.01 / 4 over the image, 0.01 over that pixel
    assert psnr(a, b).item() == pytest.approx(10 * torch.log10(torch.tensor(400.0)).item())
    mask = torch.zeros(1, 2, 2, dtype=torch.bool)
    mask[0, 0, 0] = True
    assert psnr(a, b, mask).item() == pytest.approx(20.0)
    s, t = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]]), torch.tensor([[[1.0, 1.0], [0.5, 0.0]]])
    assert soft_iou(s, t).item() == pytest.approx(1.5 / 2.5)
    assert soft_iou(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).item() == 1.0


def test_ssim_of_an_image_with_itself_is_one_and_drops_with_noise():
    image = torch.rand(2, 24, 24, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(image, image), torch.ones(2))
    noisy = (image + 0.2 * torch.randn(image.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (ssim(noisy, image) < 0.9).all()


def test_renders_of_the_wrong_size_are_refused(truth):
    with pytest.raises(ValueError, match="do not match"):
        score_views(truth.rgb[:, :16], truth.coverage[:, :16], truth)
