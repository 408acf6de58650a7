"""Tiny diffusion-teacher folders with random weights, written offline (fixtures for tests and benchmarks).

build_tiny_sd_teacher writes a Stable-Diffusion-format folder (VAE, UNet, CLIP
text encoder and tokenizer, DDIM scheduler with SD's scaled_linear schedule)
that StableDiffusionPipeline.from_pretrained loads with HF_HUB_OFFLINE=1.
build_tiny_if_teacher writes a DeepFloyd-IF-style pixel teacher: no VAE, a
UNet on RGB whose output has 6 channels (noise + variance).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    IFPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTokenizer

from ..diffusion.builders import clip_text_encoder, kl_vae, sd_scheduler, unet
from ..toyworld.tokenizer import write_clip_tokenizer

TEXT_WIDTH = 16
MAX_TOKENS = 77
FIXTURE_WORDS = (
    "a",
    "an",
    "the",
    "photo",
    "of",
    "cat",
    "dog",
    "hamburger",
    "red",
    "blue",
    "front",
    "side",
    "back",
    "overhead",
    "view",
)


def tiny_unet(*, sample_size: int, channels: int, out_channels: int, widths: tuple[int, ...]) -> UNet2DConditionModel:
    """A small UNet: cross-attention down/up blocks at every level but the last."""
    attention = (True,) * (len(widths) - 1) + (False,)
    shape = dict(sample_size=sample_size, in_channels=channels, out_channels=out_channels, groups=min(4, widths[0]))
    return unet(widths, attention=attention, text_width=TEXT_WIDTH, heads=2, **shape)


def tiny_vae(widths: tuple[int, ...], image_size: int) -> AutoencoderKL:
    """A 4-latent-channel AutoencoderKL with downsampling factor 2 ** (len(widths) - 1)."""
    return kl_vae(widths, image_size=image_size, groups=min(4, widths[0]))


def tiny_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A one-layer CLIP text encoder of width TEXT_WIDTH over the tokenizer's vocabulary."""
    width = dict(width=TEXT_WIDTH, intermediate=2 * TEXT_WIDTH, projection_dim=TEXT_WIDTH)
    return clip_text_encoder(tokenizer, layers=1, heads=2, max_tokens=MAX_TOKENS, **width)


def write_tokenizer(folder: Path) -> CLIPTokenizer:
    """Write the fixture's word-level CLIP tokenizer into folder and load it back."""
    write_clip_tokenizer(str(folder), FIXTURE_WORDS, model_max_length=MAX_TOKENS)
    return CLIPTokenizer.from_pretrained(folder)


def seeded(seed: int, build):
    """Call build() with the global RNG seeded inside a forked state, so the caller's RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def build_tiny_sd_teacher(
    folder: str | Path,
    *,
    seed: int = 0,
    sample_size: int = 8,
    widths: tuple[int, ...] = (8, 16),
    vae_widths: tuple[int, ...] = (8, 16),
) -> Path:
    """Write a random-weight Stable-Diffusion-format folder; latents [4, sample_size, sample_size].

    Images are sample_size * 2 ** (len(vae_widths) - 1) pixels on a side.
    """
    folder = Path(folder)
    image_size = sample_size * 2 ** (len(vae_widths) - 1)
    tokenizer = write_tokenizer(folder / "tokenizer")
    unet, vae, text_encoder = seeded(
        seed,
        lambda: (
            tiny_unet(sample_size=sample_size, channels=4, out_channels=4, widths=widths),
            tiny_vae(vae_widths, image_size),
            tiny_text_encoder(tokenizer),
        ),
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sd_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def build_tiny_if_teacher(
    folder: str | Path, *, seed: int = 0, sample_size: int = 8, widths: tuple[int, ...] = (8, 16)
) -> Path:
    """Write a random-weight DeepFloyd-IF-style pixel teacher: UNet on [3, sample_size, sample_size] -> 6 channels.

    The text encoder is the fixture's tiny CLIP (IF uses T5); the guidance never needs it.
    """
    folder = Path(folder)
    tokenizer = write_tokenizer(folder / "tokenizer")
    unet, text_encoder = seeded(
        seed,
        lambda: (
            tiny_unet(sample_size=sample_size, channels=3, out_channels=6, widths=widths),
            tiny_text_encoder(tokenizer),
        ),
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", variance_type="learned_range"
    )
    pipe = IFPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
