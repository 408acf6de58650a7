"""ScoreDistillation: threestudio's SDS at K = 1, call counts, the gradient it hands the renderer, half precision."""

import json

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

import carv
from carv.diffusion.teacher import load_teacher
from carv.score_distillation import ScoreDistillation, ScoreDistillationConfig, TextConditioning

from .helpers import AnalyticTeacher, random_render, reference_direction, reference_latents, seeded

SCALE = 7.5


def folder_scheduler(folder):
    """The scheduler threestudio would build from the folder (DDIM for SD, DDPM for IF)."""
    name = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())["_class_name"]
    return {"DDIMScheduler": DDIMScheduler, "DDPMScheduler": DDPMScheduler}[name].from_pretrained(folder / "scheduler")


def guidance(teacher, **options) -> ScoreDistillation:
    return ScoreDistillation(teacher, ScoreDistillationConfig(guidance_scale=SCALE, **options))


def latent_shape(teacher, renders: int, k: int) -> tuple:
    side = teacher.native_resolution // (2 ** (len(teacher.vae.config.block_out_channels) - 1) if teacher.vae else 1)
    return (renders, k, teacher.noise_channels, side, side)


def fixed_draws(t: list[int]) -> carv.TimestepDraw:
    return carv.TimestepDraw(t=torch.tensor(t), weight=torch.ones(len(t)))


def assert_float32_equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float32 rounding of the largest entry (UNet kernels depend on memory layout)."""
    tolerance = 1e-5 * expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=tolerance)


def test_k1_uniform_equals_threestudio_sds(teacher, teacher_kind, teacher_folders, prompt_embeddings):
    cond, uncond = prompt_embeddings
    rgb = random_render(2)
    t, noise = torch.tensor([37, 811]), torch.randn(latent_shape(teacher, 2, 1), generator=seeded(5))
    out = guidance(teacher)(
        rgb, TextConditioning(cond, uncond), generator=seeded(1), draws=fixed_draws(t.tolist()), noise=noise
    )
    out["loss_sds"].backward()

    reference_rgb = rgb.detach().clone().requires_grad_(True)
    latents = reference_latents(teacher, reference_rgb, seeded(1))
    scheduler = folder_scheduler(teacher_folders[teacher_kind])
    grad = reference_direction(
        teacher, scheduler, latents.detach(), t, noise[:, 0], cond, uncond.expand(2, -1, -1), SCALE
    )
    reference_loss = 0.5 * torch.nn.functional.mse_loss(latents, (latents - grad).detach(), reduction="sum") / 2
    reference_loss.backward()
    assert_float32_equal(out["loss_sds"], reference_loss)
    assert_float32_equal(rgb.grad, reference_rgb.grad)
    assert_float32_equal(out["grad_norm"], grad.norm())
    assert (out["min_step"], out["max_step"]) == (20, 980)


class Counting(torch.nn.Module):
    """Wraps a module and records the batch size of every call to `method`."""

    def __init__(self, module, method="forward"):
        super().__init__()
        self.module, self.method, self.batches = module, method, []

    def __getattr__(self, name):
        if name in ("module", "method", "batches") or name.startswith("_"):
            return super().__getattr__(name)
        return getattr(self.module, name)

    def forward(self, x, *args, **kwargs):
        self.batches.append(x.shape[0])
        return getattr(self.module, self.method)(x, *args, **kwargs)


@pytest.mark.parametrize("k", [1, 4])
def test_encoder_runs_once_per_render_whatever_k(teacher_folders, prompt_embeddings, k):
    teacher = load_teacher(teacher_folders["sd"])
    encode = teacher.vae.encode
    batches = []
    teacher.vae.encode = lambda x, *a, **kw: (batches.append(x.shape[0]), encode(x, *a, **kw))[1]
    teacher.vae.decode = lambda *a, **kw: pytest.fail("the guidance must never decode")
    text = TextConditioning(prompt_embeddings[0][:1], prompt_embeddings[1])
    guidance(teacher, noise_samples_per_render=k)(random_render(3), text, generator=seeded())
    assert batches == [3]


def test_unet_sees_2rk_inputs_split_by_max_unet_batch(teacher, prompt_embeddings):
    counting = Counting(teacher.unet)
    teacher.unet = counting
    text = TextConditioning(*prompt_embeddings)
    losses = []
    for max_unet_batch, expected in [(5, [5, 5, 2]), (0, [12])]:
        distill = guidance(teacher, noise_samples_per_render=3, max_unet_batch=max_unet_batch)
        losses.append(distill(random_render(2), text, generator=seeded(2))["loss_sds"])
        assert counting.batches == expected
        counting.batches.clear()
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=0)


def test_perp_neg_sends_4rk_inputs_and_follows_threestudios_formula(teacher, prompt_embeddings):
    cond, uncond = prompt_embeddings
    negatives = torch.stack([cond.flip(0), cond + 0.5], dim=1)  # [2, M=2, N, F]
    weights = torch.tensor([[-1.0, -0.3], [-0.2, 0.0]])
    counting = Counting(teacher.unet)
    teacher.unet = counting
    distill = guidance(teacher, noise_samples_per_render=2)
    text = TextConditioning(cond, uncond, negatives, weights)
    latents = torch.randn(latent_shape(teacher, 2, 1)[:1] + latent_shape(teacher, 2, 1)[2:], generator=seeded(3))
    t, noise = fixed_draws([100, 400, 700, 900]), torch.randn(latent_shape(teacher, 2, 2), generator=seeded(4))
    result = distill.direction(latents, text, draws=t, noise=noise)
    assert counting.batches == [16]

    z = latents.repeat_interleave(2, 0)
    abar = teacher.alphas_cumprod[t.t].view(-1, 1, 1, 1)
    z_t = abar.sqrt() * z + (1 - abar).sqrt() * noise.flatten(0, 1)
    index = torch.tensor([0, 0, 1, 1])
    embeddings = torch.cat([cond[index], uncond.expand(4, -1, -1), negatives[index, 0], negatives[index, 1]])
    with torch.no_grad():
        eps = counting.module(z_t.repeat(4, 1, 1, 1), t.t.repeat(4), encoder_hidden_states=embeddings).sample
    eps_text, eps_uncond, eps_a, eps_b = eps[:, : z.shape[1]].chunk(4)
    e_pos = eps_text - eps_uncond

    def perp(x, y):
        return x - (x * y).sum((1, 2, 3), keepdim=True) / (y * y).sum((1, 2, 3), keepdim=True) * y

    w = weights[index].view(4, 2, 1, 1, 1)
    eps_hat = eps_uncond + SCALE * (
        e_pos + w[:, 0] * perp(eps_a - eps_uncond, e_pos) + w[:, 1] * perp(eps_b - eps_uncond, e_pos)
    )
    expected = ((1 - abar) * (eps_hat - noise.flatten(0, 1))).view(2, 2, *z.shape[1:]).mean(1)
    torch.testing.assert_close(result.direction, expected, rtol=1e-5, atol=1e-5)


def test_threestudio_layout_splits_into_per_render_blocks():
    b, m = 3, 2
    rows = torch.arange((2 + m) * b, dtype=torch.float32).view(-1, 1, 1).expand(-1, 4, 5)
    text = TextConditioning.from_threestudio(rows, b, torch.zeros(b, m))
    assert text.cond[:, 0, 0].tolist() == [0, 1, 2] and text.uncond[:, 0, 0].tolist() == [3, 4, 5]
    assert text.negatives[:, :, 0, 0].tolist() == [[6, 7], [8, 9], [10, 11]]  # threestudio's noise_pred_neg[i::M]
    plain = TextConditioning.from_threestudio(rows[: 2 * b], b)
    assert plain.negatives is None and plain.cond.shape == (3, 4, 5)


def linear_renderer(renders: int, size: int, params: int = 6):
    """rgb = 0.5 + 0.05 tanh-free linear map of theta [params]: a differentiable render in [0, 1]."""
    basis = torch.randn(renders * size * size * 3, params, generator=seeded(11)) * 0.05
    theta = torch.randn(params, generator=seeded(12)).requires_grad_(True)

    def render(theta):
        return (0.5 + basis @ theta).view(renders, size, size, 3)

    return render, theta


def test_gradient_reaching_the_renderer_is_the_chain_rule_of_the_averaged_direction(teacher, prompt_embeddings):
    cond, uncond = prompt_embeddings
    render, theta = linear_renderer(2, 12)
    k, t = 4, [30, 200, 450, 600, 700, 800, 900, 975]
    noise = torch.randn(latent_shape(teacher, 2, k), generator=seeded(6))
    out = guidance(teacher, noise_samples_per_render=k)(
        render(theta), TextConditioning(cond, uncond), generator=seeded(7), draws=fixed_draws(t), noise=noise
    )
    out["loss_sds"].backward()

    latents = reference_latents(teacher, render(theta), seeded(7))
    per_draw = reference_direction(
        teacher,
        carv_add_noise(teacher),
        latents.detach().repeat_interleave(k, 0),
        torch.tensor(t),
        noise.flatten(0, 1),
        cond.repeat_interleave(k, 0),
        uncond.expand(2 * k, -1, -1),
        SCALE,
    )
    averaged = per_draw.view(2, k, *latents.shape[1:]).mean(1)
    (expected,) = torch.autograd.grad(latents, theta, grad_outputs=averaged / 2)
    torch.testing.assert_close(theta.grad, expected, rtol=1e-4, atol=1e-7)


def carv_add_noise(teacher):
    """An add_noise with the scheduler's signature over the teacher's abar_t."""

    class Noiser:
        @staticmethod
        def add_noise(latents, noise, t):
            return carv.add_noise(latents, noise, t, teacher.alphas_cumprod)

    return Noiser()


def test_half_precision_weights_run_and_return_float32_gradients(teacher, prompt_embeddings):
    cond, uncond = prompt_embeddings
    distill = guidance(teacher, half_precision_weights=True, noise_samples_per_render=2)
    assert teacher.weights_dtype == torch.float16
    rgb = random_render(2)
    out = distill(rgb, TextConditioning(cond, uncond), generator=seeded(8))
    out["loss_sds"].backward()
    assert out["loss_sds"].dtype == torch.float32 and torch.isfinite(out["loss_sds"])
    assert rgb.grad.dtype == torch.float32 and torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0


def analytic_text():
    return torch.randn(2, 5, 6, generator=seeded(40)), torch.randn(1, 5, 6, generator=seeded(41))


def test_diagnostics_describe_the_draws():
    cond, uncond = analytic_text()
    t = [100, 300, 500, 700, 900, 950]
    out = guidance(AnalyticTeacher(), noise_samples_per_render=3)(
        random_render(2), TextConditioning(cond[:1], uncond), draws=fixed_draws(t), generator=seeded(9)
    )
    assert out["t_mean"] == pytest.approx(sum(t) / 6)
    assert out["weight_mean"] == pytest.approx(1.0) and out["weight_ess"] == pytest.approx(6.0)
    assert 0 < out["direction_norm_mean"] <= out["direction_norm_max"]
    assert all(isinstance(out[key], float) for key in ("t_mean", "weight_mean", "weight_ess", "direction_norm_max"))


def test_grad_clip_bounds_the_latent_gradient():
    cond, uncond = analytic_text()
    distill = guidance(AnalyticTeacher(), noise_samples_per_render=2)
    distill.update_schedule(0.02, 0.98, grad_clip=0.01)
    rgb = random_render(1)
    latents = distill.latents(rgb, seeded(1)).detach().requires_grad_(True)
    distill.encode_checked = lambda rgb, generator=None: latents
    distill(rgb, TextConditioning(cond[:1], uncond), generator=seeded(1))["loss_sds"].backward()
    assert latents.grad.abs().max().item() == pytest.approx(0.01, rel=1e-4)  # clipped, not merely small


def test_update_schedule_moves_the_range_of_later_draws():
    cond, uncond = analytic_text()
    distill = guidance(AnalyticTeacher(), noise_samples_per_render=8, timestep_proposal="sds")
    distill.update_schedule(0.5, 0.6, grad_clip=None)
    out = distill(random_render(2), TextConditioning(cond, uncond), generator=seeded(3))
    assert (out["min_step"], out["max_step"]) == (500, 600)
    assert 500 <= out["t_mean"] <= 600
    assert distill.sampler.proposal_pmf().shape == (101,)


def test_adaptive_proposal_is_fed_the_squared_norms():
    distill = guidance(AnalyticTeacher(), noise_samples_per_render=8, timestep_proposal="adaptive", adaptive_bins=4)
    before = distill.sampler.proposal_pmf()
    distill(random_render(2), TextConditioning(*analytic_text()), generator=seeded(4))
    assert not torch.allclose(distill.sampler.proposal_pmf(), before)
