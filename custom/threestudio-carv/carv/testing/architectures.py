"""Random-weight teachers with Stable Diffusion's architecture, built in memory (timing needs no trained weights).

mid_size_sd_teacher: SD's UNet and VAE layout scaled down, 32x32 latents (256 px).
sd21_base_teacher: the Stable Diffusion 2.1-base architecture, 64x64 latents (512 px).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from ..diffusion.builders import kl_vae, unet
from ..diffusion.teacher import DiffusionTeacher, teacher_from_modules
from ..timesteps import stable_diffusion_alphas_cumprod

ATTENTION = (True, True, True, False)  # SD: cross-attention at every level but the deepest


def sd_unet(widths: tuple[int, ...], heads: tuple[int, ...], text_width: int, sample_size: int, layers: int):
    """SD 2.x's UNet layout (linear projections, heads per level) at the given widths."""
    options = dict(sample_size=sample_size, text_width=text_width, heads=heads, layers=layers)
    return unet(widths, attention=ATTENTION, linear_projection=True, **options)


def random_teacher(build, *, seed: int, device, dtype) -> DiffusionTeacher:
    """Build (unet, vae) on device under a forked, seeded RNG; SD's noise schedule."""
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(seed)
        unet, vae = build()
    teacher = teacher_from_modules(unet, vae=vae, alphas_cumprod=stable_diffusion_alphas_cumprod())
    if dtype != torch.float32:
        teacher.set_weights_dtype(dtype)
    return teacher.to(device)


def mid_size_sd_modules() -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """SD's architecture at widths (64, 128, 256, 256), 32x32 latents, text width 256; VAE (32, 64, 128, 128)."""
    return sd_unet((64, 128, 256, 256), (2, 4, 8, 8), 256, 32, 1), kl_vae((32, 64, 128, 128), image_size=256)


def sd21_base_modules() -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """The Stable Diffusion 2.1-base architecture: 865.9M-parameter UNet (text width 1024), 83.7M-parameter VAE."""
    return sd_unet((320, 640, 1280, 1280), (5, 10, 20, 20), 1024, 64, 2), kl_vae(
        (128, 256, 512, 512), image_size=512, layers=2
    )


def mid_size_sd_teacher(*, seed: int = 0, device="cpu", dtype=torch.float32) -> DiffusionTeacher:
    """A random-weight mid-size SD-architecture teacher (256 px images)."""
    return random_teacher(mid_size_sd_modules, seed=seed, device=device, dtype=dtype)


def sd21_base_teacher(*, seed: int = 0, device="cuda", dtype=torch.float16) -> DiffusionTeacher:
    """A random-weight SD 2.1-base teacher (512 px images)."""
    return random_teacher(sd21_base_modules, seed=seed, device=device, dtype=dtype)
