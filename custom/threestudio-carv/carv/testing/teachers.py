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
    DDIMScheduler,
    DDPMScheduler,
    IFPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ..toyworld.teacher import make_scheduler
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


def unet_config(*, sample_size: int, channels: int, out_channels: int, widths: tuple[int, ...]) -> dict:
    """A small UNet2DConditionModel config: cross-attention down/up blocks at every level but the last."""
    levels = len(widths)
    return dict(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=out_channels,
        block_out_channels=widths,
        down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        layers_per_block=1,
        norm_num_groups=min(4, widths[0]),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=2,
    )


def tiny_vae(widths: tuple[int, ...], image_size: int) -> AutoencoderKL:
    """A 4-latent-channel AutoencoderKL with downsampling factor 2 ** (len(widths) - 1)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(widths),
        up_block_types=("UpDecoderBlock2D",) * len(widths),
        block_out_channels=widths,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=min(4, widths[0]),
        sample_size=image_size,
    )


def tiny_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A one-layer CLIP text encoder of width TEXT_WIDTH over the tokenizer's vocabulary."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=TEXT_WIDTH,
        intermediate_size=2 * TEXT_WIDTH,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=TEXT_WIDTH,
    )
    return CLIPTextModel(config)


def write_tokenizer(folder: Path) -> CLIPTokenizer:
    """Write the fixture's word-level CLIP tokenizer into folder and load it back."""
    write_clip_tokenizer(str(folder), FIXTURE_WORDS, model_max_length=MAX_TOKENS)
    return CLIPTokenizer.from_pretrained(folder)


def stable_diffusion_scheduler() -> DDIMScheduler:
    """DDIM with Stable Diffusion's training schedule (the toy teacher's scheduler config)."""
    return make_scheduler()


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
            UNet2DConditionModel(**unet_config(sample_size=sample_size, channels=4, out_channels=4, widths=widths)),
            tiny_vae(vae_widths, image_size),
            tiny_text_encoder(tokenizer),
        ),
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=stable_diffusion_scheduler(),
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
            UNet2DConditionModel(**unet_config(sample_size=sample_size, channels=3, out_channels=6, widths=widths)),
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
