"""The embedded teacher: a small Stable-Diffusion-format model (VAE, UNet, CLIP text encoder) for the toy world.

This module imports diffusers and transformers; import it by path
(``carv.toyworld.teacher``). The schedule is Stable Diffusion's (scaled-linear
betas 0.00085..0.012, 1000 steps, epsilon prediction), so timesteps and SDS
weights mean what they mean for SD.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from ..diffusion.builders import clip_text_encoder, kl_vae, sd_scheduler, unet
from .tokenizer import write_clip_tokenizer
from .world import VOCABULARY

MAX_TOKENS = 16
OBJECT_WEIGHT = 10.0


@dataclass(frozen=True)
class TeacherSizes:
    """Widths of the teacher's networks."""

    vae_channels: tuple[int, ...] = (16, 32, 64)
    unet_channels: tuple[int, ...] = (32, 64, 128)
    text_width: int = 64
    text_layers: int = 2
    groups: int = 16


def build_tokenizer(folder: str) -> CLIPTokenizer:
    """Write the world's word-level tokenizer to ``folder`` and load it."""
    write_clip_tokenizer(folder, VOCABULARY, model_max_length=MAX_TOKENS)
    return CLIPTokenizer.from_pretrained(folder)


def build_vae(sizes: TeacherSizes) -> AutoencoderKL:
    """AutoencoderKL mapping [N, 3, 64, 64] in [-1, 1] to [N, 4, 16, 16] latents."""
    return kl_vae(sizes.vae_channels, image_size=64, groups=sizes.groups)


def build_unet(sizes: TeacherSizes) -> UNet2DConditionModel:
    """UNet2DConditionModel on [N, 4, 16, 16] latents with cross-attention to the text encoder."""
    options = dict(sample_size=16, text_width=sizes.text_width, heads=8, groups=sizes.groups)
    return unet(sizes.unet_channels, attention=(False, True, True), **options)


def build_text_encoder(tokenizer: CLIPTokenizer, sizes: TeacherSizes) -> CLIPTextModel:
    width = dict(width=sizes.text_width, intermediate=4 * sizes.text_width)
    return clip_text_encoder(tokenizer, layers=sizes.text_layers, heads=4, max_tokens=MAX_TOKENS, **width)


def tokenize(tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
    """Token ids [N, MAX_TOKENS], padded as Stable Diffusion (and threestudio) pad them."""
    out = tokenizer(prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
    return out.input_ids


def make_scheduler() -> DDIMScheduler:
    """The teacher's scheduler: DDIM on Stable Diffusion's schedule."""
    return sd_scheduler()


def vae_loss(
    vae: AutoencoderKL, images: torch.Tensor, kl_weight: float, generator: torch.Generator, inputs=None
) -> torch.Tensor:
    """L1 + MSE reconstruction of images [N, 3, 64, 64] in [0, 1] plus a small KL term per latent element.

    ``inputs`` (default: ``images``) is what the encoder sees, e.g. a corrupted copy,
    so that the encoder learns to map it to the clean image's latent. Object pixels
    (not white) weigh OBJECT_WEIGHT times the background, so colour is learnt early.
    Random draws come from the CPU ``generator`` and move to the images' device.
    """
    x = images * 2.0 - 1.0
    posterior = vae.encode((images if inputs is None else inputs) * 2.0 - 1.0).latent_dist
    z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(x.device)
    recon = vae.decode(z).sample
    kl = posterior.kl().mean() / posterior.mean[0].numel()
    weight = 1.0 + (OBJECT_WEIGHT - 1.0) * (images.min(dim=1, keepdim=True).values < 0.98).float()
    error = (recon - x).abs() + (recon - x).square()
    return (weight * error).sum() / (weight.sum() * 3.0) + kl_weight * kl


def corrupt(images: torch.Tensor, share: float, max_noise: float, generator: torch.Generator) -> torch.Tensor:
    """A share of images [N, 3, H, W] in [0, 1] with pixel noise (std up to ``max_noise``) and half of those blurred.

    What a NeRF renders early in training looks like this; an encoder trained to
    map it to the clean latent gives score distillation a gradient toward the
    clean image rather than toward whatever the encoder happens to do off its data.
    """
    n = images.shape[0]
    draws = torch.rand(n, 3, generator=generator).to(images.device)
    noisy = (draws[:, 0] < share).float().view(n, 1, 1, 1)
    blurred = noisy * (draws[:, 1] < 0.5).float().view(n, 1, 1, 1)
    sigma = max_noise * draws[:, 2].view(n, 1, 1, 1)
    smooth = torch.nn.functional.avg_pool2d(images, 3, 1, 1, count_include_pad=False)
    images = blurred * smooth + (1.0 - blurred) * images
    noise = torch.randn(images.shape, generator=generator).to(images.device)
    return (images + noisy * sigma * noise).clamp(0.0, 1.0)


@torch.no_grad()
def encode_stats(vae: AutoencoderKL, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std [N, 4, 16, 16] of images [N, 3, 64, 64] in [0, 1]."""
    posterior = vae.encode(images * 2.0 - 1.0).latent_dist
    return posterior.mean, posterior.std


def diffusion_loss(unet, text_encoder, latents, token_ids, alphas_cumprod, generator) -> torch.Tensor:
    """Epsilon-prediction MSE at uniform timesteps (Stable Diffusion's objective); latents already scaled.

    Timesteps and noise come from the CPU ``generator`` and move to the latents' device.
    """
    t = torch.randint(0, alphas_cumprod.shape[0], (latents.shape[0],), generator=generator).to(latents.device)
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    a = alphas_cumprod.to(latents.device)[t].view(-1, 1, 1, 1)
    noisy = a.sqrt() * latents + (1.0 - a).sqrt() * noise
    context = text_encoder(token_ids)[0]
    return (unet(noisy, t, context).sample - noise).square().mean()


class EMA:
    """Exponential moving average of a module's parameters, with the usual warm-up of the decay."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for ema, live in zip(self.module.parameters(), module.parameters(), strict=True):
            ema.lerp_(live.detach(), 1.0 - decay)
        for ema, live in zip(self.module.buffers(), module.buffers(), strict=True):
            ema.copy_(live)


def save_teacher(folder: str, vae, unet, text_encoder, tokenizer, dtype: torch.dtype = torch.float16) -> None:
    """Save a StableDiffusionPipeline folder (safetensors, no safety checker), UNet and VAE in ``dtype``.

    The tiny text encoder stays float32: transformers keeps a stored dtype
    while diffusers upcasts, so a plain ``from_pretrained(folder)`` gets one
    dtype throughout. The tokenizer folder also gets vocab.json and merges.txt.
    """
    pipe = StableDiffusionPipeline(
        vae=copy.deepcopy(vae).to("cpu", dtype),
        text_encoder=copy.deepcopy(text_encoder).to("cpu", torch.float32),
        tokenizer=tokenizer,
        unet=copy.deepcopy(unet).to("cpu", dtype),
        scheduler=make_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    os.makedirs(folder, exist_ok=True)
    pipe.save_pretrained(folder, safe_serialization=True)
    write_clip_tokenizer(os.path.join(folder, "tokenizer"), VOCABULARY, model_max_length=MAX_TOKENS)


def load_teacher(folder: str, dtype: torch.dtype = torch.float32) -> StableDiffusionPipeline:
    """Load the teacher folder offline in ``dtype`` on the CPU."""
    pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=dtype, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe
