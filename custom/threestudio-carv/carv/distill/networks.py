"""The student, the fake score and the teacher's two scores: thin torch modules sized for a CPU.

DMD2 initialises the one-step student and the fake score (critic) from the teacher's UNet. On a 2-core
CPU a second and third UNet would cost more than the teacher itself, so (ours) the student is a small
conditional conv net from noise to a latent, and the fake score is the frozen teacher's conditional
prediction plus a small trainable residual head whose last layer starts at zero: at step 0 the fake
score is the teacher's unguided score, as DMD2's copy is, and only the head learns the student's
distribution. The real score is the teacher with classifier-free guidance (carv.conditioning, the
convention of the score-distillation guidance); DMD2 gives the fake score no guidance.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..conditioning import TextConditioning, classifier_free_guidance


def pooled_text(embeddings: torch.Tensor) -> torch.Tensor:
    """One vector per prompt: the mean of the text encoder's last hidden states over tokens, [P, N, F] -> [P, F]."""
    return embeddings.mean(dim=1)


def timestep_features(t: torch.Tensor, num_train_timesteps: int, size: int) -> torch.Tensor:
    """Sinusoidal features [n, size] of t / T (size even)."""
    frequencies = torch.exp(torch.arange(size // 2, device=t.device) * (-math.log(1000.0) / (size // 2)))
    angles = (t.float() / num_train_timesteps * 1000.0)[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class FilmBlock(nn.Module):
    """Residual conv block whose normalised activations are scaled and shifted by a conditioning vector."""

    def __init__(self, width: int, condition: int):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(8, width), nn.GroupNorm(8, width)
        self.conv1, self.conv2 = nn.Conv2d(width, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)
        self.film = nn.Linear(condition, 2 * width)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(c)[:, :, None, None].chunk(2, dim=1)
        y = self.conv1(nn.functional.silu(self.norm1(h)))
        y = self.conv2(nn.functional.silu(self.norm2(y) * (1 + scale) + shift))
        return h + y


class ConditionalConvNet(nn.Module):
    """conv in -> FiLM blocks at full and half resolution -> conv out; [n, C, h, w] + condition [n, D] -> [n, C, h, w]."""

    def __init__(self, channels: int, condition: int, width: int, zero_output: bool):
        super().__init__()
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.high = FilmBlock(width, condition)
        self.down = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.low = nn.ModuleList([FilmBlock(width, condition) for _ in range(2)])
        self.up = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
        self.out = FilmBlock(width, condition)
        self.conv_out = nn.Conv2d(width, channels, 3, padding=1)
        if zero_output:
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        high = self.high(self.conv_in(x), c)
        low = self.down(high)
        for block in self.low:
            low = block(low, c)
        return self.conv_out(nn.functional.silu(self.out(high + self.up(low), c)))


class OneStepStudent(nn.Module):
    """G(z, y) = x0_T(z, y) + net(z, x0_T, y): the teacher's one-step clean-latent prediction from pure noise at the
    last timestep (DMD2 starts its student from the teacher at conditioning timestep 999) plus a trainable residual
    that is zero at initialisation. noise, start [n, C, h, w], pooled prompt embeddings [n, F] -> latents."""

    def __init__(self, channels: int, text_width: int, width: int = 48):
        super().__init__()
        self.text = nn.Sequential(nn.Linear(text_width, 128), nn.SiLU(), nn.Linear(128, 128))
        self.net = ConditionalConvNet(2 * channels, 128, width, zero_output=True)
        self.channels = channels

    def forward(self, noise: torch.Tensor, text: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        residual = self.net(torch.cat([noise, start], dim=1), self.text(text))[:, : self.channels]
        return start + residual


class FakeScoreHead(nn.Module):
    """The trainable part of the fake score: a residual eps correction at (x_t, t, y), zero at initialisation."""

    def __init__(self, channels: int, text_width: int, num_train_timesteps: int, width: int = 32):
        super().__init__()
        self.num_train_timesteps = num_train_timesteps
        self.condition = nn.Sequential(nn.Linear(text_width + 64, 128), nn.SiLU(), nn.Linear(128, 128))
        self.net = ConditionalConvNet(channels, 128, width, zero_output=True)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        c = torch.cat([text, timestep_features(t, self.num_train_timesteps, 64)], dim=1)
        return self.net(x_t, self.condition(c))


class TeacherScores:
    """The real score (teacher with CFG) and the fake score (teacher's unguided eps + head) of prompt-indexed samples.

    `prompt_of_sample` [R] names each generated sample's prompt (a row of `cond`); `scores(z_t, t, i)` returns
    (eps_real, eps_fake) from one teacher batch [cond; uncond] per call.
    """

    def __init__(self, teacher, head: FakeScoreHead, cond: torch.Tensor, uncond: torch.Tensor, guidance_scale: float):
        self.teacher, self.head, self.guidance_scale = teacher, head, guidance_scale
        self.cond, self.uncond, self.pooled = cond, uncond, pooled_text(cond)
        self.prompt_of_sample = torch.zeros(1, dtype=torch.long)
        side = int(teacher.unet.config.sample_size)
        self.teacher_shape = (teacher.noise_channels, side, side)  # one latent [C, h, w]

    def for_samples(self, prompt_of_sample: torch.Tensor) -> TeacherScores:
        """Set the prompts of the generated samples the next calls refer to; returns self."""
        self.prompt_of_sample = prompt_of_sample.to(torch.long)
        return self

    def teacher_eps(self, z_t: torch.Tensor, t: torch.Tensor, prompts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(eps_cond, eps_uncond) of the frozen teacher, one batch of 2 n rows."""
        text = TextConditioning(self.cond[prompts], self.uncond)
        index = torch.arange(z_t.shape[0], device=z_t.device)
        with torch.no_grad():
            eps = self.teacher.predict_noise(torch.cat([z_t, z_t]), torch.cat([t, t]), text.blocks_for(index))
        return eps.chunk(2)

    def one_step_start(self, noise: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """The guided teacher's x0 prediction from pure noise at t = T - 1, [n, C, h, w] (the student's frozen start)."""
        t = torch.full((noise.shape[0],), self.teacher.num_train_timesteps - 1, dtype=torch.long)
        eps_cond, eps_uncond = self.teacher_eps(noise, t, prompts)
        abar = self.teacher.alphas_cumprod[-1].to(noise.dtype)
        return (
            noise - (1 - abar).sqrt() * classifier_free_guidance(eps_cond, eps_uncond, self.guidance_scale)
        ) / abar.sqrt()

    def scores(self, z_t: torch.Tensor, t: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps_real, eps_fake) [n, C, h, w] in float32 at z_t for generated samples `index` (no grad)."""
        z_t, prompts = z_t.float(), self.prompt_of_sample[index.cpu()]
        eps_cond, eps_uncond = self.teacher_eps(z_t, t, prompts)
        with torch.no_grad():
            eps_fake = eps_cond + self.head(z_t, t, self.pooled[prompts])
        return classifier_free_guidance(eps_cond, eps_uncond, self.guidance_scale), eps_fake

    def fake_eps(self, x_t: torch.Tensor, t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The fake score's eps at x_t, with gradient through the head only (for the critic update)."""
        prompts = self.prompt_of_sample[index.cpu()]
        text = TextConditioning(self.cond[prompts], self.uncond)
        with torch.no_grad():
            base = self.teacher.predict_noise(x_t, t, text.cond)
        return base + self.head(x_t, t, self.pooled[prompts])
