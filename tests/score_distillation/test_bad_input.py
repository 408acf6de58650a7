"""Every bad input raises a ValueError that names what is wrong."""

import pytest
import torch

from carv.score_distillation import ScoreDistillation, ScoreDistillationConfig, TextConditioning

from .helpers import AnalyticTeacher, seeded

SIDE = 4


def distill(**options) -> ScoreDistillation:
    return ScoreDistillation(AnalyticTeacher(native_resolution=SIDE), ScoreDistillationConfig(**options))


def text(renders: int = 2) -> TextConditioning:
    return TextConditioning(torch.randn(renders, 5, 6, generator=seeded(1)), torch.randn(1, 5, 6, generator=seeded(2)))


def render(*shape, fill=None) -> torch.Tensor:
    rgb = torch.rand(*shape, generator=seeded(3))
    return rgb if fill is None else rgb.index_put_((torch.tensor([0]),) * rgb.ndim, torch.tensor(fill))


@pytest.mark.parametrize(
    ("rgb", "message"),
    [
        (render(2, SIDE, SIDE), r"\[R, H, W, 3\]"),
        (render(2, 3, SIDE, SIDE), r"channels last, 3 channels"),
        (render(2, SIDE, SIDE, 4), r"channels last, 3 channels"),
        (render(2, SIDE, SIDE, 3, fill=1.5), r"\[0, 1\]"),
        (render(2, SIDE, SIDE, 3, fill=-0.1), r"\[0, 1\]"),
        (render(2, SIDE, SIDE, 3, fill=float("nan")), "NaN or Inf"),
        (render(2, SIDE, SIDE, 3, fill=float("inf")), "NaN or Inf"),
        (torch.zeros(2, SIDE, SIDE, 3, dtype=torch.uint8), "float tensor"),
        ([[0.5]], "float tensor"),
    ],
    ids=["rank", "channels-first", "four-channels", "above-1", "below-0", "nan", "inf", "integer", "not-a-tensor"],
)
def test_bad_render_is_rejected(rgb, message):
    with pytest.raises(ValueError, match=message):
        distill()(rgb, text())


def test_embedding_count_must_be_one_or_r():
    with pytest.raises(ValueError, match="cond holds 3 embeddings for 2 renders"):
        distill()(render(2, SIDE, SIDE, 3), text(3))
    with pytest.raises(ValueError, match="uncond holds 2 embeddings for 3 renders"):
        distill()(render(3, SIDE, SIDE, 3), TextConditioning(torch.randn(3, 5, 6), torch.randn(2, 5, 6)))


def test_bad_embeddings_are_rejected():
    cond = torch.randn(2, 5, 6)
    with pytest.raises(ValueError, match="Perp-Neg needs both"):
        distill()(render(2, SIDE, SIDE, 3), TextConditioning(cond, cond, negatives=cond[:, None]))
    with pytest.raises(ValueError, match="do not fit"):
        distill()(render(2, SIDE, SIDE, 3), TextConditioning(cond, cond, cond[:, None], torch.zeros(2, 2)))
    with pytest.raises(ValueError, match="cond and uncond must both be"):
        distill()(render(2, SIDE, SIDE, 3), TextConditioning(cond, torch.randn(2, 5, 7)))
    with pytest.raises(ValueError, match="uncond contains NaN"):
        distill()(render(2, SIDE, SIDE, 3), TextConditioning(cond, cond * float("nan")))
    with pytest.raises(ValueError, match=r"expected 2 \* 2 text embeddings"):
        TextConditioning.from_threestudio(torch.randn(5, 5, 6), 2)


def test_nan_from_the_teacher_is_an_error_not_nan_to_num():
    teacher = AnalyticTeacher(native_resolution=SIDE)
    teacher.predict_noise = lambda z_t, t, text: torch.full_like(z_t, float("nan"))
    with pytest.raises(ValueError, match="NaN or Inf"):
        ScoreDistillation(teacher)(render(2, SIDE, SIDE, 3), text())


def test_nan_latents_from_the_encoder_are_an_error():
    teacher = AnalyticTeacher(native_resolution=SIDE)
    teacher.encode = lambda images, generator=None: images * float("inf")
    with pytest.raises(ValueError, match="encoder produced NaN or Inf"):
        ScoreDistillation(teacher)(render(2, SIDE, SIDE, 3), text())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"weighting_strategy": "sjc"}, "unknown weighting_strategy"),
        ({"noise_samples_per_render": 0}, "positive integer"),
        ({"noise_samples_per_render": 2.0}, "positive integer"),
        ({"guidance_scale": float("nan")}, "guidance_scale must be finite"),
        ({"max_unet_batch": -1}, "max_unet_batch"),
        ({"native_resolution": -8}, "native_resolution"),
        ({"min_step_percent": 0.5, "max_step_percent": 0.2}, "min_step_percent"),
        ({"max_step_percent": 1.0}, "max_step_percent"),
        ({"timestep_proposal": "lognormal"}, "unknown timestep proposal"),
        ({"timestep_strata": 3}, "stratified=False"),
        ({"timestep_proposal": "adaptive", "adaptive_floor": 0.0}, "adaptive_floor"),
    ],
)
def test_bad_config_is_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        distill(**options)


def test_strata_must_divide_the_draws_of_a_step():
    with pytest.raises(ValueError, match="strata"):
        distill(timestep_stratified=True, timestep_strata=3, noise_samples_per_render=2)(
            render(2, SIDE, SIDE, 3), text()
        )


def test_bad_schedule_update_is_rejected():
    with pytest.raises(ValueError, match="min_step_percent"):
        distill().update_schedule(0.9, 0.1, grad_clip=None)
