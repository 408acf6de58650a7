"""carv-*-guidance against threestudio's own guidance on tiny random teachers (CPU)."""

import pytest
import torch
from omegaconf import OmegaConf

from carv import TimestepDraw

R = 2
SCHEDULES = {
    "min_step_percent": [0, 0.3, 0.02, 100],
    "max_step_percent": [0, 0.98, 0.6, 100],
    "grad_clip": [0, 0.5, 2.0, 100],
}


@pytest.fixture(scope="module")
def sd512_teacher(tmp_path_factory):
    """A tiny SD folder whose VAE downsamples 8x, so threestudio's hard-coded 512 x 512 stays cheap."""
    from carv.testing.teachers import build_tiny_sd_teacher

    return str(build_tiny_sd_teacher(tmp_path_factory.mktemp("sd512") / "sd", vae_widths=(8, 8, 8, 8)))


def prompt_utils(threestudio, folder: str, **options):
    processor = threestudio.find("stable-diffusion-prompt-processor")(
        {"pretrained_model_name_or_path": folder, "prompt": "a photo of a hamburger", "spawn": False, **options}
    )
    return processor()


def cameras(generator: torch.Generator, renders: int = R) -> dict:
    return {
        "elevation": torch.rand(renders, generator=generator) * 60 - 10,
        "azimuth": torch.rand(renders, generator=generator) * 360 - 180,
        "camera_distances": torch.full((renders,), 1.5),
    }


def recording_add_noise(scheduler, record: dict):
    """Wrap scheduler.add_noise to record the (noise, t) threestudio drew."""
    original = scheduler.add_noise

    def add_noise(latents, noise, t):
        record.update(noise=noise.clone(), t=t.clone())
        return original(latents, noise, t)

    scheduler.add_noise = add_noise


def loss_and_render_grad(guidance, rgb, utils, views, seed, **kwargs):
    rgb = rgb.clone().requires_grad_(True)
    torch.manual_seed(seed)
    out = guidance(rgb, utils, **views, rgb_as_latents=False, **kwargs)
    out["loss_sds"].backward()
    return out, rgb.grad


@pytest.mark.parametrize("kind", ["sd", "if"])
@pytest.mark.parametrize("perp_neg, renders", [(False, 2), (True, 1)])
def test_defaults_reproduce_threestudio_guidance(
    threestudio, in_tmp_dir, sd512_teacher, tiny_teachers, kind, perp_neg, renders
):
    """Same (t, eps) and VAE sample => same loss and render gradient.

    Perp-Neg is compared at R = 1: for R > 1 threestudio evaluates negative prompt i of render b
    on the latent of render (b * M + i) mod R (its negatives are render-major, its latents are
    repeated block-wise); carv pairs each negative with its own render.
    """
    folder = sd512_teacher if kind == "sd" else tiny_teachers["if"]
    names = {"sd": "stable-diffusion-guidance", "if": "deep-floyd-guidance"}
    cfg = {"pretrained_model_name_or_path": folder, "half_precision_weights": False}
    reference = threestudio.find(names[kind])(cfg)
    carv_guidance = threestudio.find(f"carv-{names[kind].replace('deep-floyd', 'deepfloyd-if')}")(cfg)
    utils = prompt_utils(threestudio, folder, use_perp_neg=perp_neg)
    generator = torch.Generator().manual_seed(1)
    rgb, views = torch.rand(renders, 16, 16, 3, generator=generator), cameras(generator, renders)
    record = {}
    recording_add_noise(reference.scheduler, record)

    expected, expected_grad = loss_and_render_grad(reference, rgb, utils, views, seed=5)
    draws = TimestepDraw(t=record["t"], weight=torch.ones(renders))
    out, grad = loss_and_render_grad(
        carv_guidance, rgb, utils, views, seed=5, carv_draws=draws, carv_noise=record["noise"][:, None]
    )
    torch.testing.assert_close(out["loss_sds"], expected["loss_sds"], rtol=1e-5, atol=1e-6)
    # equal up to float32 rounding, amplified by the guidance scale (z_t is formed by carv, not add_noise)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-3, atol=1e-4 * expected_grad.abs().max().item())
    assert (out["min_step"], out["max_step"]) == (expected["min_step"], expected["max_step"]) == (20, 980)


def test_schedules_follow_threestudio_update_step(threestudio, in_tmp_dir, tiny_teachers):
    """grad_clip as stable-diffusion-guidance schedules it; the step range as C() gives it (ours also takes lists)."""
    from threestudio.utils.misc import C

    cfg = {"pretrained_model_name_or_path": tiny_teachers["sd"], "half_precision_weights": False}
    reference = threestudio.find("stable-diffusion-guidance")({**cfg, "grad_clip": SCHEDULES["grad_clip"]})
    carv_guidance = threestudio.find("carv-stable-diffusion-guidance")({**cfg, **SCHEDULES, "native_resolution": 0})
    for step in (0, 30, 100, 250):
        reference.update_step(0, step)
        carv_guidance.update_step(0, step)
        assert carv_guidance.distillation.grad_clip == reference.grad_clip_val
        expected = [
            int(1000 * C(OmegaConf.create(SCHEDULES[end]), 0, step)) for end in ("min_step_percent", "max_step_percent")
        ]
        assert [carv_guidance.min_step, carv_guidance.max_step] == expected
        assert carv_guidance.distillation.sampler.proposal_pmf().shape[0] == expected[1] - expected[0] + 1


def test_sqrt_anneal_gives_threestudios_single_timestep(threestudio, in_tmp_dir, tiny_teachers):
    cfg = {
        "pretrained_model_name_or_path": tiny_teachers["sd"],
        "half_precision_weights": False,
        "sqrt_anneal": True,
        "trainer_max_steps": 400,
    }
    reference = threestudio.find("stable-diffusion-guidance")(cfg)
    carv_guidance = threestudio.find("carv-stable-diffusion-guidance")({**cfg, "native_resolution": 0})
    for step in (0, 100, 399):
        reference.update_step(0, step)
        carv_guidance.update_step(0, step)
        assert carv_guidance.min_step == carv_guidance.max_step == reference.min_step == reference.max_step


def test_k8_encodes_once_per_render_and_reaches_the_render(threestudio, in_tmp_dir, tiny_teachers):
    cfg = {
        "pretrained_model_name_or_path": tiny_teachers["sd"],
        "half_precision_weights": False,
        "native_resolution": 0,
        "noise_samples_per_render": 8,
        "timestep_proposal": "sds",
        "timestep_stratified": True,
        "max_unet_batch": 12,
    }
    guidance = threestudio.find("carv-stable-diffusion-guidance")(cfg)
    teacher = guidance.distillation.teacher
    encoded, unet_inputs = [], []
    original_encode, original_unet = teacher.vae.encode, teacher.unet.forward
    teacher.vae.encode = lambda images, *a, **k: encoded.append(images.shape[0]) or original_encode(images, *a, **k)
    teacher.unet.forward = lambda z, *a, **k: unet_inputs.append(z.shape[0]) or original_unet(z, *a, **k)
    generator = torch.Generator().manual_seed(2)
    rgb = torch.rand(R, 16, 16, 3, generator=generator, requires_grad=True)
    out = guidance(rgb, prompt_utils(threestudio, tiny_teachers["sd"]), **cameras(generator))
    out["loss_sds"].backward()
    assert encoded == [R]
    assert sum(unet_inputs) == 2 * R * 8 and max(unet_inputs) <= 12
    assert torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0
    assert all(torch.isfinite(torch.as_tensor(value)).all() for value in out.values())


def test_unsupported_call_options_are_refused(threestudio, in_tmp_dir, tiny_teachers):
    cfg = {"pretrained_model_name_or_path": tiny_teachers["sd"], "half_precision_weights": False}
    guidance = threestudio.find("carv-stable-diffusion-guidance")(cfg)
    with pytest.raises(ValueError, match="rgb_as_latents"):
        guidance(torch.rand(1, 8, 8, 3), None, None, None, None, rgb_as_latents=True)
