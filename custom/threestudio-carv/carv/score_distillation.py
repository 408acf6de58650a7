"""CARV score distillation on a diffusion teacher: render once, encode once, re-noise K times (CARV sec. 2).

Pure PyTorch; the teacher is duck-typed (see `Teacher`; carv.diffusion.teacher builds
one from a diffusers folder). threestudio's guidance and the CPU pipeline wrap
`ScoreDistillation`. With K = 1 and the uniform proposal it is threestudio's
SDS update: the same (t, eps) give the same gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from .conditioning import TextConditioning, classifier_free_guidance, perp_neg_guidance, pick
from .estimator import RenoiseResult, in_chunks, renoise_k
from .timesteps import (
    PROPOSAL_REGISTRY,
    WEIGHTING_STRATEGIES,
    TimestepDraw,
    effective_sample_size,
    make_timestep_sampler,
)


class Teacher(Protocol):
    """What the guidance needs from a teacher (carv.diffusion.teacher.DiffusionTeacher implements it)."""

    alphas_cumprod: torch.Tensor  # float32 [T]
    native_resolution: int  # image side in pixels
    weights_dtype: torch.dtype
    noise_channels: int

    def set_weights_dtype(self, dtype: torch.dtype) -> None: ...

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...

    def predict_noise(self, z_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor: ...


@dataclass
class ScoreDistillationConfig:
    """Options; names follow threestudio's stable-diffusion-guidance where it has one."""

    guidance_scale: float = 100.0  # CFG scale s in eps_text + s (eps_text - eps_uncond)
    weighting_strategy: str = "sds"  # w(t): "sds" 1 - abar_t, "uniform" 1, "fantasia3d" sqrt(abar_t)(1 - abar_t)
    min_step_percent: float = 0.02  # min_step = int(T * min_step_percent)
    max_step_percent: float = 0.98  # max_step = int(T * max_step_percent)
    grad_clip: float | None = None  # clamp the K-averaged direction to +-grad_clip: BIASED (E[clamp] != clamp(E)); off
    half_precision_weights: bool = False  # float16 teacher weights (threestudio's default is True)
    native_resolution: int = 0  # image side fed to the teacher; 0 = the teacher's own
    noise_samples_per_render: int = 1  # K: (t, eps) draws per render
    timestep_proposal: str = "uniform"  # q(t): uniform, sds, fantasia3d, gaussian, table, adaptive
    timestep_stratified: bool = False  # stratified inverse-CDF draws (CARV sec. 2.3)
    timestep_strata: int = 0  # strata per render; 0 = one per draw (K)
    gaussian_peak: float = 0.5  # "gaussian" proposal centre, fraction of the schedule
    gaussian_width: float = 0.2  # "gaussian" proposal width, fraction of the schedule
    gaussian_floor: float = 0.05  # "gaussian" proposal: mixture weight of p, bounds the weights by 1/floor
    adaptive_bins: int = 20  # "adaptive" proposal: timestep bins of the running ||f||^2 means
    adaptive_floor: float = 0.1  # "adaptive" proposal: mixture weight of p, keeps q > 0
    adaptive_decay: float = 0.0  # "adaptive" proposal: forgetting factor of the running means
    timestep_table: str = ""  # "table" proposal: a text file of masses, one per timestep (schedule or range)
    max_unet_batch: int = 0  # most UNet inputs per forward pass; 0 = all 2RK (4RK Perp-Neg) at once


def check_k(k) -> int:
    """K (noise samples per render) must be a positive integer."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"noise_samples_per_render (K) must be a positive integer, got {k!r}")
    return k


def check_config(config: ScoreDistillationConfig) -> None:
    """Reject option values the guidance cannot run with (the sampler checks its own)."""
    if config.weighting_strategy not in WEIGHTING_STRATEGIES:
        raise ValueError(
            f"unknown weighting_strategy {config.weighting_strategy!r}; valid: {', '.join(WEIGHTING_STRATEGIES)}"
        )
    check_k(config.noise_samples_per_render)
    if not math.isfinite(config.guidance_scale):
        raise ValueError(f"guidance_scale must be finite, got {config.guidance_scale}")
    if config.max_unet_batch < 0:
        raise ValueError(f"max_unet_batch must be >= 0 (0 = all at once), got {config.max_unet_batch}")
    if config.native_resolution < 0:
        raise ValueError(f"native_resolution must be >= 0 (0 = the teacher's), got {config.native_resolution}")


RGB_ROUNDING = 1e-3
"""How far outside [0, 1] a render may lie by rounding (an fp32 composite rgb a + bg (1 - a) reaches 1 + 1e-7,
an fp16 one about 1 + 1e-3); beyond it the renderer is wrong."""


def check_render(rgb: torch.Tensor) -> None:
    """rgb must be a finite float tensor [R, H, W, 3] with values in [0, 1] (up to RGB_ROUNDING)."""
    if not isinstance(rgb, torch.Tensor) or not rgb.is_floating_point():
        raise ValueError(
            f"rgb must be a float tensor [R, H, W, 3], got {type(rgb).__name__} {getattr(rgb, 'dtype', '')}"
        )
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.shape[0] < 1:
        raise ValueError(f"rgb must be [R, H, W, 3] (channels last, 3 channels), got shape {tuple(rgb.shape)}")
    if not torch.isfinite(rgb).all():
        raise ValueError("rgb contains NaN or Inf")
    low, high = rgb.detach().aminmax()
    if low < -RGB_ROUNDING or high > 1 + RGB_ROUNDING:
        raise ValueError(f"rgb values must lie in [0, 1], got [{low.item():.4g}, {high.item():.4g}]")


class ScoreDistillation:
    """SDS loss from R renders with K (t, eps) draws each; d loss / d latents = (mean_k rho w (eps_hat - eps)) / R.

    Unbiased for threestudio's SDS gradient E_{t ~ U[min, max], eps}[w(t)(eps_hat - eps)] whatever the
    proposal, stratification and K (CARV sec. 2); grad_clip is the one biased option. K and the strata per
    render are arguments of each call; the config holds only their defaults and is never written.
    """

    def __init__(self, teacher: Teacher, config: ScoreDistillationConfig | None = None):
        self.teacher = teacher
        self.config = config = config or ScoreDistillationConfig()
        check_config(config)
        dtype = torch.float16 if config.half_precision_weights else torch.float32
        if teacher.weights_dtype != dtype:
            teacher.set_weights_dtype(dtype)
        self.resolution = config.native_resolution or teacher.native_resolution
        self.num_train_timesteps = teacher.alphas_cumprod.shape[0]
        self.min_step, self.max_step = self.step_range(config.min_step_percent, config.max_step_percent)
        self.grad_clip = config.grad_clip
        self.sampler = make_timestep_sampler(
            config.timestep_proposal,
            stratified=config.timestep_stratified,
            strata=config.timestep_strata,
            alphas_cumprod=teacher.alphas_cumprod,
            min_step=self.min_step,
            max_step=self.max_step,
            **self.proposal_parameters(),
        )

    def proposal_parameters(self) -> dict:
        """The config's options that the chosen proposal declares (carv.timesteps.PROPOSAL_REGISTRY)."""
        proposal = PROPOSAL_REGISTRY.get(self.config.timestep_proposal)
        names = proposal.parameters if proposal is not None else ()
        return {name: getattr(self.config, name) for name in names if hasattr(self.config, name)}

    def step_range(self, min_step_percent: float, max_step_percent: float) -> tuple[int, int]:
        """threestudio's int(T * percent) for both ends."""
        if not 0.0 <= min_step_percent <= max_step_percent < 1.0:
            raise ValueError(
                f"need 0 <= min_step_percent <= max_step_percent < 1, got {min_step_percent}, {max_step_percent}"
            )
        return int(self.num_train_timesteps * min_step_percent), int(self.num_train_timesteps * max_step_percent)

    def update_schedule(self, min_step_percent: float, max_step_percent: float, grad_clip: float | None) -> None:
        """Apply already-evaluated schedules (threestudio's C() values); later draws use the new range."""
        self.min_step, self.max_step = self.step_range(min_step_percent, max_step_percent)
        self.sampler.set_range(self.min_step, self.max_step)
        self.grad_clip = grad_clip

    def latents(self, rgb: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Encode each render once: resize to the native resolution, map to [-1, 1], VAE sample * scaling."""
        check_render(rgb)
        return self.encode_checked(rgb, generator)

    def encode_checked(self, rgb: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """latents() of an rgb that check_render has accepted."""
        images = rgb.permute(0, 3, 1, 2)
        if images.shape[-2:] != (self.resolution, self.resolution):
            images = F.interpolate(images, (self.resolution, self.resolution), mode="bilinear", align_corners=False)
        latents = self.teacher.encode(images * 2.0 - 1.0, generator)
        if not torch.isfinite(latents).all():
            raise ValueError("the teacher's encoder produced NaN or Inf latents (float16 overflow?)")
        if latents.shape[1] != self.teacher.noise_channels:
            raise ValueError(f"latents have {latents.shape[1]} channels, the UNet takes {self.teacher.noise_channels}")
        return latents

    def guided_noise(self, text: TextConditioning):
        """eps_hat(z_t, t, render_index): all guidance blocks in UNet batches of at most max_unet_batch inputs."""

        def eps_hat(z_t: torch.Tensor, t: torch.Tensor, render_index: torch.Tensor) -> torch.Tensor:
            blocks = 2 + (text.negatives.shape[1] if text.perp_neg else 0)
            inputs = z_t.repeat(blocks, *(1,) * (z_t.ndim - 1))
            embeddings = text.blocks_for(render_index).to(z_t.device)
            eps = in_chunks(
                self.teacher.predict_noise, inputs, t.repeat(blocks), embeddings, size=self.config.max_unet_batch
            )
            eps = eps.view(blocks, *z_t.shape)
            if text.perp_neg:
                weights = pick(text.negative_weights, render_index).to(eps)
                return perp_neg_guidance(eps, weights, self.config.guidance_scale)
            return classifier_free_guidance(eps[0], eps[1], self.config.guidance_scale)

        return eps_hat

    def direction(
        self,
        latents: torch.Tensor,
        text: TextConditioning,
        *,
        generator: torch.Generator | None = None,
        draws: TimestepDraw | None = None,
        noise: torch.Tensor | None = None,
        keep_draws: bool = False,
        k: int | None = None,
        strata: int | None = None,
    ) -> RenoiseResult:
        """The K-averaged weighted SDS direction per render (no grad), fed back to an adaptive proposal.

        k: draws per render (None: the config's K); strata: strata per render (None: the config's).
        """
        text.check(latents.shape[0])
        result = renoise_k(
            latents,
            self.guided_noise(text),
            self.sampler,
            k=check_k(self.config.noise_samples_per_render if k is None else k),
            strata=strata,
            alphas_cumprod=self.teacher.alphas_cumprod,
            weighting=self.config.weighting_strategy,
            generator=generator,
            draws=draws,
            noise=noise,
            keep_draws=keep_draws,
        )
        self.sampler.update(result.t.flatten(), result.sq_norm.flatten())
        return result

    def __call__(
        self,
        rgb: torch.Tensor,
        text: TextConditioning,
        *,
        generator: torch.Generator | None = None,
        draws: TimestepDraw | None = None,
        noise: torch.Tensor | None = None,
        k: int | None = None,
        strata: int | None = None,
    ) -> dict:
        """loss_sds, grad_norm, min_step, max_step and scalar diagnostics for rgb [R, H, W, 3] in [0, 1].

        k and strata as in direction(); draws (R*K) and noise [R, K, C, h, w] may be given to fix the
        randomness; never decodes.
        """
        check_render(rgb)
        text.check(rgb.shape[0])
        latents = self.encode_checked(rgb, generator)
        result = self.direction(latents, text, generator=generator, draws=draws, noise=noise, k=k, strata=strata)
        grad = result.direction
        if self.grad_clip is not None:
            grad = grad.clamp(-self.grad_clip, self.grad_clip)
        target = (latents - grad).detach()
        loss = 0.5 * F.mse_loss(latents, target, reduction="sum") / latents.shape[0]
        return {
            "loss_sds": loss,
            "grad_norm": grad.norm(),
            "min_step": self.min_step,
            "max_step": self.max_step,
            **diagnostics(result),
        }


def diagnostics(result: RenoiseResult) -> dict:
    """Scalars of one step: mean t, mean importance weight, their Kish ESS, mean / max per-draw direction norm."""
    norms = result.sq_norm.sqrt()
    return {
        "t_mean": result.t.float().mean().item(),
        "weight_mean": result.weight.mean().item(),
        "weight_ess": effective_sample_size(result.weight),
        "direction_norm_mean": norms.mean().item(),
        "direction_norm_max": norms.max().item(),
    }
