"""carv.guidance_cost: c(n) through the guidance's own teacher path, leaving the run's state as it found it."""

import torch

from carv.benchmarks.guidance import RenderStandIn, random_text
from carv.diffusion.teacher import load_teacher
from carv.guidance_cost import guidance_cost_curve, guidance_draws
from carv.score_distillation import ScoreDistillation, ScoreDistillationConfig
from carv.testing.teachers import build_tiny_sd_teacher


def adaptive_distillation(tmp_path) -> ScoreDistillation:
    teacher = load_teacher(build_tiny_sd_teacher(tmp_path / "sd"))
    return ScoreDistillation(teacher, ScoreDistillationConfig(timestep_proposal="adaptive", max_unet_batch=3))


def test_n_draws_make_the_guidance_batches_and_leave_proposal_and_rng_alone(tmp_path):
    distillation = adaptive_distillation(tmp_path)
    teacher, batches = distillation.teacher, []
    predict = teacher.predict_noise

    def counting(z_t, t, embeddings):
        batches.append(z_t.shape[0])
        return predict(z_t, t, embeddings)

    teacher.predict_noise = counting
    with torch.no_grad():
        latents = distillation.latents(RenderStandIn(2, teacher.native_resolution)())
    text = random_text(teacher, 2, "cpu")
    proposal_before = distillation.sampler.proposal_pmf().clone()
    rng_before = torch.get_rng_state()

    guidance_draws(distillation, text, latents)(5)
    assert batches == [3, 3, 3, 1]  # 5 draws x 2 CFG blocks in UNet batches of max_unet_batch = 3

    curve = guidance_cost_curve(distillation, text, latents, max_draws=4, repeats=2)
    assert curve.draws == (1, 2, 4)
    assert torch.equal(distillation.sampler.proposal_pmf(), proposal_before)  # the proposal learnt nothing
    assert torch.equal(torch.get_rng_state(), rng_before)  # the run's random stream is untouched


def test_the_curve_is_measured_at_every_n_whatever_the_runs_strata(tmp_path):
    """timestep_strata=4 crashed the ladder at n = 1 ("1 draws cannot be split evenly over 4 strata")."""
    teacher = load_teacher(build_tiny_sd_teacher(tmp_path / "sd"))
    options = ScoreDistillationConfig(timestep_proposal="sds", timestep_stratified=True, timestep_strata=4)
    distillation = ScoreDistillation(teacher, options)
    with torch.no_grad():
        latents = distillation.latents(RenderStandIn(1, teacher.native_resolution)())
    curve = guidance_cost_curve(distillation, random_text(teacher, 1, "cpu"), latents, max_draws=8, repeats=1)
    assert curve.draws == (1, 2, 4, 8)
