"""K and the strata of a step are arguments of the call; the config holds their defaults and is never written."""

import copy

import pytest
import torch

from carv.score_distillation import ScoreDistillation, ScoreDistillationConfig, TextConditioning

from .helpers import AnalyticTeacher, random_render, seeded


def distillation(**options) -> ScoreDistillation:
    return ScoreDistillation(AnalyticTeacher(native_resolution=4), ScoreDistillationConfig(**options))


def text(renders: int) -> TextConditioning:
    return TextConditioning(torch.randn(renders, 5, 6, generator=seeded(1)), torch.randn(1, 5, 6, generator=seeded(2)))


def test_k_of_the_call_overrides_the_config_and_leaves_it_unchanged():
    guidance = distillation(noise_samples_per_render=2, timestep_stratified=True)
    before = copy.deepcopy(guidance.config)
    latents = guidance.latents(random_render(3, size=4))
    assert guidance.direction(latents, text(3), generator=seeded(3), k=5).t.shape == (3, 5)
    assert guidance.direction(latents, text(3), generator=seeded(3)).t.shape == (3, 2)
    out = guidance(random_render(3, size=4), text(3), generator=seeded(4), k=3)
    out["loss_sds"].backward()
    assert guidance.config == before


def test_strata_of_the_call_override_the_configs():
    guidance = distillation(noise_samples_per_render=4, timestep_stratified=True, timestep_strata=4)
    latents = guidance.latents(random_render(2, size=4))
    t = guidance.direction(latents, text(2), generator=seeded(5), strata=2).t
    low, high = guidance.min_step, guidance.max_step
    # uniform q on [low, high]: each render has two draws in each half of the range
    halves = ((t - low) * 2) // (high - low + 1)
    assert torch.equal(halves.sum(dim=1), torch.full((2,), 2))
    with pytest.raises(ValueError, match="strata"):
        guidance.direction(latents, text(2), generator=seeded(5), strata=3)


def test_same_call_arguments_same_result_as_the_config():
    by_config = distillation(noise_samples_per_render=3)
    by_call = distillation(noise_samples_per_render=1)
    latents = by_config.latents(random_render(2, size=4))
    a = by_config.direction(latents, text(2), generator=seeded(6))
    b = by_call.direction(latents, text(2), generator=seeded(6), k=3)
    assert torch.equal(a.direction, b.direction) and torch.equal(a.t, b.t)


@pytest.mark.parametrize("k", [0, 2.5, True])
def test_bad_k_of_a_call(k):
    guidance = distillation()
    with pytest.raises(ValueError, match="noise_samples_per_render"):
        guidance.direction(guidance.latents(random_render(1, size=4)), text(1), k=k)
