"""carv.diffusion.teacher: loading through from_pretrained, native resolution, half precision, clear errors for bad folders."""

import shutil
import subprocess
import sys

import pytest
import torch

import carv
from carv.diffusion.teacher import PromptEncoder, load_teacher, teacher_from_modules


def test_latent_teacher_from_its_folder(teacher_folders):
    teacher = load_teacher(teacher_folders["sd"])
    assert teacher.vae is not None and teacher.noise_channels == 4
    assert teacher.native_resolution == 16  # UNet sample_size 8 x VAE factor 2
    expected = carv.stable_diffusion_alphas_cumprod().float()
    torch.testing.assert_close(teacher.alphas_cumprod, expected, rtol=1e-5, atol=1e-7)
    assert not any(p.requires_grad for p in teacher.unet.parameters())


def test_pixel_teacher_drops_the_variance_channels(teacher_folders):
    teacher = load_teacher(teacher_folders["if"])
    assert teacher.vae is None and teacher.native_resolution == 8
    z_t = torch.randn(2, 3, 8, 8)
    eps = teacher.predict_noise(z_t, torch.tensor([10, 900]), torch.randn(2, 77, 16))
    assert eps.shape == z_t.shape
    assert teacher.encode(z_t) is z_t


def test_native_resolution_can_be_overridden(teacher_folders):
    assert load_teacher(teacher_folders["sd"], native_resolution=32).native_resolution == 32


def test_half_precision_weights(teacher_folders):
    teacher = load_teacher(teacher_folders["sd"], half_precision_weights=True)
    assert teacher.weights_dtype == torch.float16 and teacher.vae.dtype == torch.float16
    latents = teacher.encode(torch.rand(1, 3, 16, 16) * 2 - 1)
    assert latents.dtype == torch.float32


def test_teacher_from_modules_takes_a_scheduler_or_a_schedule(teacher_folders):
    loaded = load_teacher(teacher_folders["if"])
    teacher = teacher_from_modules(loaded.unet, alphas_cumprod=loaded.alphas_cumprod.double())
    assert teacher.alphas_cumprod.dtype == torch.float32 and teacher.native_resolution == 8
    with pytest.raises(ValueError, match="exactly one of scheduler and alphas_cumprod"):
        teacher_from_modules(loaded.unet)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_teacher(tmp_path / "nowhere")


@pytest.mark.parametrize(("kind", "part"), [("sd", "unet"), ("sd", "vae"), ("sd", "scheduler"), ("if", "unet")])
def test_folder_lacking_a_part_names_it(teacher_folders, tmp_path, kind, part):
    folder = shutil.copytree(teacher_folders[kind], tmp_path / kind)
    shutil.rmtree(folder / part)
    with pytest.raises(FileNotFoundError, match=f"lacks its {part}"):
        load_teacher(folder)


def test_prompt_encoder_gives_cond_and_uncond(teacher_folders):
    cond, uncond = PromptEncoder(teacher_folders["sd"]).cond_uncond("a photo of a cat")
    assert cond.shape == uncond.shape == (1, 77, 16)
    assert not torch.allclose(cond, uncond)


def test_prompt_encoder_names_a_missing_tokenizer(teacher_folders, tmp_path):
    folder = shutil.copytree(teacher_folders["sd"], tmp_path / "sd")
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(FileNotFoundError, match="lacks its tokenizer"):
        PromptEncoder(folder)


def test_guidance_core_imports_no_framework():
    code = "import sys, carv.score_distillation, carv.conditioning, carv.benchmarks.guidance\n"
    code += (
        "loaded = [m for m in ('diffusers', 'transformers', 'threestudio', 'pytorch_lightning') if m in sys.modules]\n"
    )
    code += "assert not loaded, loaded\n"
    subprocess.run([sys.executable, "-c", code], check=True)
