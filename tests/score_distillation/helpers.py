"""Shared pieces of the score-distillation tests: generators, renders, the plain SDS reference."""

import torch
import torch.nn.functional as F


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_render(renders: int, size: int = 20, seed: int = 0, requires_grad: bool = True) -> torch.Tensor:
    """rgb [R, size, size, 3] in [0, 1]."""
    return torch.rand(renders, size, size, 3, generator=seeded(seed)).requires_grad_(requires_grad)


def reference_latents(teacher, rgb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """threestudio's encode_images: resize to native, [-1, 1], posterior sample * scaling (the image for IF)."""
    side = teacher.native_resolution
    images = F.interpolate(rgb.permute(0, 3, 1, 2), (side, side), mode="bilinear", align_corners=False) * 2 - 1
    if teacher.vae is None:
        return images
    return teacher.vae.encode(images).latent_dist.sample(generator=generator) * teacher.vae.config.scaling_factor


def reference_guided_noise(teacher, z_t, t, cond, uncond, scale: float) -> torch.Tensor:
    """threestudio's CFG step written out: UNet on [z_t]*2 with [cond; uncond], eps_text + s (eps_text - eps_uncond)."""
    out = teacher.unet(torch.cat([z_t] * 2), torch.cat([t] * 2), encoder_hidden_states=torch.cat([cond, uncond])).sample
    eps_text, eps_uncond = out[:, : z_t.shape[1]].chunk(2)
    return eps_text + scale * (eps_text - eps_uncond)


def reference_direction(teacher, scheduler, latents, t, noise, cond, uncond, scale: float) -> torch.Tensor:
    """The plain SDS direction (1 - abar_t)(eps_hat - eps), noised by the diffusers scheduler's add_noise."""
    abar = teacher.alphas_cumprod[t].view(-1, 1, 1, 1)
    z_t = scheduler.add_noise(latents, noise, t)
    with torch.no_grad():
        eps_hat = reference_guided_noise(teacher, z_t, t, cond, uncond, scale)
    return (1 - abar) * (eps_hat - noise)


class AnalyticTeacher:
    """A cheap duck-typed pixel teacher: eps(z_t, t, text) = tanh(c(t) z_t) + mean(text) t / T (nonlinear in t)."""

    noise_channels = 3
    weights_dtype = torch.float32

    def __init__(self, native_resolution: int = 8):
        import carv

        self.alphas_cumprod = carv.stable_diffusion_alphas_cumprod().float()
        self.native_resolution = native_resolution

    def set_weights_dtype(self, dtype: torch.dtype) -> None:
        self.weights_dtype = dtype

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return images

    def predict_noise(self, z_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        slope = (0.5 + torch.cos(t.double() / 150.0) ** 2).float().view(-1, 1, 1, 1)
        shift = text.mean(dim=(1, 2)).view(-1, 1, 1, 1) * t.float().view(-1, 1, 1, 1) / 1000.0
        return torch.tanh(slope * z_t) + shift
