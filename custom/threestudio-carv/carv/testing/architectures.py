"""Random-weight teachers with Stable Diffusion's architecture, built in memory (timing needs no trained weights).

mid_size_sd_teacher: SD's UNet and VAE layout scaled down, 32x32 latents (256 px).
sd21_base_teacher: the Stable Diffusion 2.1-base architecture, 64x64 latents (512 px).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from ..diffusion.teacher import DiffusionTeacher, teacher_from_modules
from ..timesteps import stable_diffusion_alphas_cumprod

DOWN_BLOCKS = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
UP_BLOCKS = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")


def sd_unet(widths: tuple[int, ...], heads: tuple[int, ...], text_width: int, sample_size: int, layers: int):
    """SD 2.x's UNet layout (linear projections, heads per level) at the given widths."""
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=DOWN_BLOCKS,
        up_block_types=UP_BLOCKS,
        block_out_channels=widths,
        layers_per_block=layers,
        attention_head_dim=heads,
        cross_attention_dim=text_width,
        use_linear_projection=True,
    )


def sd_vae(widths: tuple[int, ...], layers: int, image_size: int) -> AutoencoderKL:
    """SD's KL autoencoder layout: 4 latent channels, downsampling 2 ** (len(widths) - 1)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(widths),
        up_block_types=("UpDecoderBlock2D",) * len(widths),
        block_out_channels=widths,
        layers_per_block=layers,
        latent_channels=4,
        sample_size=image_size,
        scaling_factor=0.18215,
    )


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
    return sd_unet((64, 128, 256, 256), (2, 4, 8, 8), 256, 32, 1), sd_vae((32, 64, 128, 128), 1, 256)


def sd21_base_modules() -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """The Stable Diffusion 2.1-base architecture: 865.9M-parameter UNet (text width 1024), 83.7M-parameter VAE."""
    return sd_unet((320, 640, 1280, 1280), (5, 10, 20, 20), 1024, 64, 2), sd_vae((128, 256, 512, 512), 2, 512)


def mid_size_sd_teacher(*, seed: int = 0, device="cpu", dtype=torch.float32) -> DiffusionTeacher:
    """A random-weight mid-size SD-architecture teacher (256 px images)."""
    return random_teacher(mid_size_sd_modules, seed=seed, device=device, dtype=dtype)


def sd21_base_teacher(*, seed: int = 0, device="cuda", dtype=torch.float16) -> DiffusionTeacher:
    """A random-weight SD 2.1-base teacher (512 px images)."""
    return random_teacher(sd21_base_modules, seed=seed, device=device, dtype=dtype)
