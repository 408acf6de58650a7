"""Diffusion teachers from diffusers: a local folder (offline from_pretrained) or given modules.

A teacher is a noise predictor eps(z_t, t, text) plus, for latent teachers
(Stable Diffusion), the VAE encoder; pixel teachers (DeepFloyd IF style) have
no VAE and a UNet whose output holds noise and variance channels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import diffusers
import torch
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel


@dataclass
class DiffusionTeacher:
    """A frozen teacher: UNet, optional VAE, its abar_t schedule and its native image size."""

    unet: torch.nn.Module  # diffusers UNet2DConditionModel (or any module with the same call and config)
    alphas_cumprod: torch.Tensor  # float32 [T], abar_t of the training schedule
    native_resolution: int  # side in pixels of the images the teacher was trained on
    vae: torch.nn.Module | None = None  # AutoencoderKL for latent teachers, None for pixel teachers

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.shape[0]

    @property
    def noise_channels(self) -> int:
        """Channels of z_t; the UNet's extra output channels (learned variance) are dropped."""
        return self.unet.config.in_channels

    @property
    def weights_dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def set_weights_dtype(self, dtype: torch.dtype) -> None:
        """Cast the UNet and VAE weights (float16 = threestudio's half_precision_weights)."""
        for module in (self.unet, self.vae):
            if module is not None:
                module.to(dtype=dtype)

    def to(self, device: torch.device | str) -> DiffusionTeacher:
        for module in (self.unet, self.vae):
            if module is not None:
                module.to(device)
        self.alphas_cumprod = self.alphas_cumprod.to(device)
        return self

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents of images [R, 3, S, S] in [-1, 1]: a VAE posterior sample * scaling_factor, or the images."""
        if self.vae is None:
            return images
        posterior = self.vae.encode(images.to(self.weights_dtype)).latent_dist
        return (posterior.sample(generator=generator) * self.vae.config.scaling_factor).to(images.dtype)

    def predict_noise(self, z_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """eps(z_t, t, text) [N, C, h, w] in z_t's dtype, from the UNet's first C output channels."""
        out = self.unet(z_t.to(self.weights_dtype), t, encoder_hidden_states=text.to(self.weights_dtype)).sample
        return out[:, : self.noise_channels].to(z_t.dtype)


def native_resolution_of(unet: torch.nn.Module, vae: torch.nn.Module | None) -> int:
    """Image side the teacher was trained at: UNet sample_size times the VAE's downsampling factor.

    This is StableDiffusionPipeline's default size; the VAE's own sample_size is
    not used because some releases ship a wrong one.
    """
    if vae is None:
        return int(unet.config.sample_size)
    return int(unet.config.sample_size) * 2 ** (len(vae.config.block_out_channels) - 1)


def teacher_from_modules(
    unet: torch.nn.Module,
    *,
    vae: torch.nn.Module | None = None,
    scheduler=None,
    alphas_cumprod: torch.Tensor | None = None,
    native_resolution: int | None = None,
    half_precision_weights: bool = False,
) -> DiffusionTeacher:
    """A frozen teacher from modules; the schedule comes from scheduler.alphas_cumprod or alphas_cumprod."""
    if (scheduler is None) == (alphas_cumprod is None):
        raise ValueError("give exactly one of scheduler and alphas_cumprod")
    schedule = scheduler.alphas_cumprod if scheduler is not None else torch.as_tensor(alphas_cumprod)
    for module in (unet, vae):
        if module is not None:
            module.eval().requires_grad_(False)
    resolution = native_resolution or native_resolution_of(unet, vae)
    if resolution < 1:
        raise ValueError(f"native_resolution must be a positive number of pixels, got {resolution}")
    teacher = DiffusionTeacher(unet=unet, vae=vae, alphas_cumprod=schedule.float(), native_resolution=resolution)
    if half_precision_weights:
        teacher.set_weights_dtype(torch.float16)
    return teacher


def require_part(folder: Path, part: str, config_file: str) -> Path:
    """The folder of one teacher part, or a FileNotFoundError naming the missing part."""
    path = folder / part / config_file
    if not path.is_file():
        raise FileNotFoundError(f"teacher folder {folder} lacks its {part} (no {path})")
    return folder / part


def lists_part(folder: Path, part: str) -> bool:
    """Whether model_index.json names a (non-null) component `part`."""
    index = folder / "model_index.json"
    if not index.is_file():
        return False
    entry = json.loads(index.read_text(encoding="utf-8")).get(part)
    return isinstance(entry, list) and entry[0] is not None


def check_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"teacher folder {folder} does not exist (give a local diffusers folder)")
    return folder


def load_scheduler(folder: Path):
    """The scheduler class named in scheduler_config.json, loaded from the folder."""
    config_dir = require_part(folder, "scheduler", "scheduler_config.json")
    name = json.loads((config_dir / "scheduler_config.json").read_text(encoding="utf-8")).get("_class_name")
    scheduler_class = getattr(diffusers, str(name), None)
    if scheduler_class is None:
        raise ValueError(f"unknown scheduler class {name!r} in {config_dir}")
    return scheduler_class.from_pretrained(folder, subfolder="scheduler", local_files_only=True)


def load_teacher(
    folder: str | Path,
    *,
    half_precision_weights: bool = False,
    native_resolution: int | None = None,
    device: torch.device | str = "cpu",
) -> DiffusionTeacher:
    """Load UNet, scheduler and (when present) VAE from a local diffusers folder, offline.

    A folder whose model_index.json lists a VAE, or that has vae/, is a latent
    teacher; one without is a pixel teacher.
    """
    folder = check_folder(folder)
    dtype = torch.float16 if half_precision_weights else torch.float32
    unet_dir = require_part(folder, "unet", "config.json")
    unet = UNet2DConditionModel.from_pretrained(unet_dir, torch_dtype=dtype, local_files_only=True)
    vae = None
    if lists_part(folder, "vae") or (folder / "vae").is_dir():
        vae_dir = require_part(folder, "vae", "config.json")
        vae = AutoencoderKL.from_pretrained(vae_dir, torch_dtype=dtype, local_files_only=True)
    teacher = teacher_from_modules(unet, vae=vae, scheduler=load_scheduler(folder), native_resolution=native_resolution)
    return teacher.to(device)


class PromptEncoder:
    """The teacher folder's tokenizer and text encoder: prompts -> embeddings [P, N, F] (SD's last hidden state)."""

    def __init__(self, folder: str | Path, device: torch.device | str = "cpu"):
        folder = check_folder(folder)
        tokenizer_dir = require_part(folder, "tokenizer", "tokenizer_config.json")
        encoder_dir = require_part(folder, "text_encoder", "config.json")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        architecture = json.loads((encoder_dir / "config.json").read_text(encoding="utf-8"))["architectures"][0]
        encoder_class = getattr(transformers, architecture)
        self.text_encoder = encoder_class.from_pretrained(encoder_dir, local_files_only=True).to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        if isinstance(prompts, str):
            prompts = [prompts]
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(self.device))[0]

    def cond_uncond(self, prompt: str, negative_prompt: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """(cond [1, N, F], uncond [1, N, F]) for one prompt; uncond encodes negative_prompt ("" by default)."""
        both = self([prompt, negative_prompt])
        return both[:1], both[1:]
