"""Unbiasedness over t: the mean latent gradient over many steps matches the exact sum over the support.

The noise is common to every draw (eps0 per render), so the exact expectation
over t ~ U{min_step..max_step} is a finite sum. Every proposal runs on a cheap
analytic teacher; one also runs on the tiny IF-style UNet loaded from its folder.
"""

import pytest
import torch

import carv
from carv.diffusion.teacher import load_teacher
from carv.score_distillation import ScoreDistillation, ScoreDistillationConfig, TextConditioning

from ..helpers import two_sided_z
from .helpers import AnalyticTeacher, seeded

RENDERS, K, STEPS = 2, 4, 400
PROPOSALS = ["sds", "gaussian", "adaptive"]


def exact_latent_gradient(distill: ScoreDistillation, latents, text, eps0) -> torch.Tensor:
    """d loss / d latents in expectation: E_{t ~ U[min, max]}[w(t)(eps_hat(z_t(eps0), t) - eps0)] / R, float64."""
    support = torch.arange(distill.min_step, distill.max_step + 1)
    alphas = distill.teacher.alphas_cumprod
    w = carv.timestep_weighting(alphas, support, distill.config.weighting_strategy).view(-1, 1, 1, 1)
    exact = torch.zeros_like(latents, dtype=torch.float64)
    for r in range(latents.shape[0]):
        z = latents[r : r + 1].expand(support.shape[0], *latents.shape[1:])
        z_t = carv.add_noise(z, eps0[r : r + 1].expand_as(z), support, alphas)
        predicted = distill.guided_noise(text)(z_t, support, torch.full_like(support, r))
        exact[r] = (w * (predicted - eps0[r])).double().mean(dim=0)
    return exact / latents.shape[0]


def text_conditioning() -> TextConditioning:
    cond = torch.randn(RENDERS, 5, 6, generator=seeded(30))
    return TextConditioning(cond, torch.randn(1, 5, 6, generator=seeded(31)))


@pytest.mark.parametrize("stratified", [False, True], ids=["iid", "stratified"])
@pytest.mark.parametrize("proposal", PROPOSALS)
def test_mean_latent_gradient_matches_the_exact_expectation(proposal, stratified):
    check_unbiased(AnalyticTeacher(native_resolution=4), proposal, stratified)


def test_unbiased_on_the_tiny_unet_teacher(teacher_folders, prompt_embeddings):
    check_unbiased(load_teacher(teacher_folders["if"]), "sds", True, TextConditioning(*prompt_embeddings), steps=200)


def check_unbiased(
    teacher, proposal: str, stratified: bool, text: TextConditioning | None = None, steps: int = STEPS
) -> None:
    config = ScoreDistillationConfig(
        guidance_scale=7.5, noise_samples_per_render=K, timestep_proposal=proposal, timestep_stratified=stratified
    )
    distill = ScoreDistillation(teacher, config)
    text = text or text_conditioning()
    side = teacher.native_resolution
    rgb = torch.rand(RENDERS, side, side, 3, generator=seeded(32))
    eps0 = torch.randn(RENDERS, 3, side, side, generator=seeded(33))
    common_noise = eps0[:, None].expand(RENDERS, K, 3, side, side)
    generator, gradients, weights = seeded(34), [], []
    for _ in range(steps):
        render = rgb.clone().requires_grad_(True)
        out = distill(render, text, generator=generator, noise=common_noise)
        out["loss_sds"].backward()
        gradients.append(render.grad.permute(0, 3, 1, 2) / 2.0)  # latents = 2 rgb - 1
        weights.append(out["weight_ess"])
    observed = torch.stack(gradients).double()
    exact = exact_latent_gradient(distill, rgb.permute(0, 3, 1, 2) * 2 - 1, text, eps0)

    projections = torch.randn(4, *exact.shape, generator=seeded(35), dtype=torch.float64)
    values = torch.einsum("nrchw,prchw->np", observed, projections)
    expected = torch.einsum("rchw,prchw->p", exact, projections)
    z = (values.mean(dim=0) - expected) / (values.std(dim=0) / steps**0.5)
    assert z.abs().max() < two_sided_z(comparisons=projections.shape[0]), z
    assert min(weights) < RENDERS * K  # the importance weights were not all equal: IS was active
