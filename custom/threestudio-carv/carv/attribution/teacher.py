"""The diffusers side of `carv attribute`: the teacher's pipeline, its UNet as a Denoiser of a parameter subset.

Imports diffusers (through carv.toyworld); import by path. The subset differentiated is the output end of the
UNet: the last ResNet block of the last up block, the output GroupNorm and the output convolution (36.5k of the
toy teacher's 4.1M parameters). Gradients there need the full forward pass but only a short backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..diffusion.teacher import DiffusionTeacher, teacher_from_modules
from ..toyworld.evaluation import sample_images, text_embeddings
from .features import Denoiser


@dataclass
class AttributionTeacher:
    """The loaded pipeline (for sampling queries and captions) and the frozen teacher (UNet, VAE, schedule)."""

    pipe: object  # diffusers StableDiffusionPipeline
    teacher: DiffusionTeacher


def load_attribution_teacher(folder: str | Path) -> AttributionTeacher:
    """The toy teacher folder's pipeline in float32 on the CPU, and a DiffusionTeacher of the same modules."""
    from diffusers.models.attention_processor import AttnProcessor

    from ..toyworld.teacher import load_teacher

    pipe = load_teacher(str(folder))
    pipe.unet.set_attn_processor(AttnProcessor())  # plain matmul attention: vmap has no batching rule for SDPA on CPU
    return AttributionTeacher(pipe, teacher_from_modules(pipe.unet, vae=pipe.vae, scheduler=pipe.scheduler))


def output_end_parameters(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{name: detached tensor} of the last up block's last ResNet, conv_norm_out and conv_out."""
    last = len(unet.up_blocks) - 1
    resnet = len(unet.up_blocks[last].resnets) - 1
    prefixes = (f"up_blocks.{last}.resnets.{resnet}.", "conv_norm_out.", "conv_out.")
    return {name: p.detach() for name, p in unet.named_parameters() if name.startswith(prefixes)}


def unet_denoiser(teacher: DiffusionTeacher) -> Denoiser:
    """eps_hat(z_t, t, context) of the teacher's UNet with the given parameters replacing its own."""
    unet, channels = teacher.unet, teacher.noise_channels

    def denoise(params: dict, z_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        out = functional_call(unet, params, (z_t, t), {"encoder_hidden_states": context}).sample
        return out[:, :channels]

    return denoise


def at_resolution(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images [N, 3, H, W] resized (antialiased) to size x size when they are not already."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def encode(teacher: DiffusionTeacher, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Latents [N, 4, h, w] of images [N, 3, H, W] in [0, 1]: the VAE posterior mean * scaling_factor, once each."""
    images = at_resolution(images, teacher.native_resolution)
    scale = teacher.vae.config.scaling_factor
    parts = [
        teacher.vae.encode(images[i : i + batch] * 2.0 - 1.0).latent_dist.mean for i in range(0, len(images), batch)
    ]
    return torch.cat(parts) * scale


def captions_context(model: AttributionTeacher, prompts: list[str], batch: int = 256) -> torch.Tensor:
    """Text embeddings [N, L, F] of the prompts (the pipeline's tokenizer and text encoder)."""
    return torch.cat([text_embeddings(model.pipe, prompts[i : i + batch]) for i in range(0, len(prompts), batch)])


def generate_queries(
    model: AttributionTeacher, prompts: list[str], generator: torch.Generator, steps: int, guidance_scale: float
) -> torch.Tensor:
    """One DDIM sample per prompt, [Q, 3, S, S] in [0, 1] at the teacher's native resolution."""
    images = sample_images(model.pipe, prompts, generator, guidance_scale=guidance_scale, steps=steps)
    return at_resolution(images, model.teacher.native_resolution)
