"""The diffusers networks this project builds with random weights, each written once: a UNet, a KL autoencoder,
a CLIP text encoder and a DDIM scheduler on Stable Diffusion's schedule.

The toy teacher (carv.toyworld.teacher), the test fixtures (carv.testing.teachers) and the SD-sized benchmark
teachers (carv.testing.architectures) are settings of these.
"""

from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ..timesteps import SD_BETA_END, SD_BETA_SCHEDULE, SD_BETA_START, SD_NUM_TRAIN_TIMESTEPS

SD_SCHEDULER_CONFIG = {
    "num_train_timesteps": SD_NUM_TRAIN_TIMESTEPS,
    "beta_start": SD_BETA_START,
    "beta_end": SD_BETA_END,
    "beta_schedule": SD_BETA_SCHEDULE,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


def sd_scheduler() -> DDIMScheduler:
    """DDIM with Stable Diffusion's training schedule (scaled-linear betas, 1000 steps, epsilon prediction)."""
    return DDIMScheduler(**SD_SCHEDULER_CONFIG)


def unet(
    widths: tuple[int, ...],
    *,
    attention: tuple[bool, ...],
    sample_size: int,
    text_width: int,
    heads,
    in_channels: int = 4,
    out_channels: int = 4,
    layers: int = 1,
    groups: int = 32,
    linear_projection: bool = False,
) -> UNet2DConditionModel:
    """UNet2DConditionModel with cross-attention at the levels where attention[i] (the up path mirrors the down)."""
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=out_channels,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        block_out_channels=widths,
        layers_per_block=layers,
        attention_head_dim=heads,
        cross_attention_dim=text_width,
        norm_num_groups=groups,
        use_linear_projection=linear_projection,
    )


def kl_vae(widths: tuple[int, ...], *, image_size: int, layers: int = 1, groups: int = 32) -> AutoencoderKL:
    """SD's KL autoencoder layout: RGB in and out, 4 latent channels, downsampling 2 ** (len(widths) - 1)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(widths),
        up_block_types=("UpDecoderBlock2D",) * len(widths),
        block_out_channels=widths,
        layers_per_block=layers,
        latent_channels=4,
        norm_num_groups=groups,
        sample_size=image_size,
    )


def clip_text_encoder(
    tokenizer: CLIPTokenizer,
    *,
    width: int,
    layers: int,
    heads: int,
    intermediate: int,
    max_tokens: int,
    projection_dim: int = 512,
) -> CLIPTextModel:
    """A CLIP text encoder over the tokenizer's vocabulary (its special tokens)."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=width,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=max_tokens,
        projection_dim=projection_dim,
    )
    return CLIPTextModel(config)
