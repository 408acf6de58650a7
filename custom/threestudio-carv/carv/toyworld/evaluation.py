"""Quality bars of the teacher: DDIM samples judged against their prompts, and plain SDS on one image.

Imports diffusers (through the pipeline object); import by path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .judge import Judge
from .world import parse_prompt


@torch.no_grad()
def sample_images(pipe, prompts: list[str], generator: torch.Generator, guidance_scale: float = 7.5, steps: int = 25):
    """DDIM samples [N, 3, 64, 64] in [0, 1], one per prompt, with classifier-free guidance."""
    out = pipe(
        prompt=prompts,
        height=64,
        width=64,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=generator,
        output_type="pt",
    )
    return out.images.float().clamp(0.0, 1.0)


@dataclass
class SampleScores:
    """Per-sample booleans [N]: shape and colour both right (argmax), view class right (where a view was asked)."""

    shape_and_colour: torch.Tensor
    view: torch.Tensor


def score_samples(judge: Judge, images: torch.Tensor, prompts: list[str]) -> SampleScores:
    """Compare the judge's argmax shape, colour and view class of each image with its prompt."""
    verdict = judge(images)
    parsed = [parse_prompt(p) for p in prompts]
    shape_ok = verdict.shape.argmax(-1) == torch.tensor([p.shape for p in parsed])
    colour_ok = verdict.colour.argmax(-1) == torch.tensor([p.colour for p in parsed])
    asked = [p.view for p in parsed if p.view is not None]
    with_view = torch.tensor([p.view is not None for p in parsed])
    view_ok = verdict.view.argmax(-1)[with_view] == torch.tensor(asked, dtype=torch.long)
    return SampleScores(shape_ok & colour_ok, view_ok)


@torch.no_grad()
def text_embeddings(pipe, prompts: list[str]) -> torch.Tensor:
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt")
    return pipe.text_encoder(ids.input_ids)[0]


def sds_direction(pipe, latents, context, guidance_scale, generator, min_step=20, max_step=980) -> torch.Tensor:
    """Plain SDS direction w(t) (eps_hat - eps) for latents [1, 4, h, w], t ~ U{min_step..max_step}, w = 1 - abar."""
    alphas = pipe.scheduler.alphas_cumprod.float()
    t = torch.randint(min_step, max_step + 1, (1,), generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    a = alphas[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        noisy = a.sqrt() * latents + (1.0 - a).sqrt() * noise
        eps_text, eps_uncond = pipe.unet(noisy.repeat(2, 1, 1, 1), t.repeat(2), context).sample.chunk(2)
        return (1.0 - a) * (eps_uncond + guidance_scale * (eps_text - eps_uncond) - noise)


def image_sds(
    pipe,
    prompt: str,
    generator: torch.Generator,
    steps: int = 300,
    guidance_scale: float = 7.5,
    lr: float = 0.05,
    parametrisation: str = "latents",
    resolution: int = 32,
) -> torch.Tensor:
    """Optimise one 64x64 image [1, 3, 64, 64] with plain SDS (DreamFusion, w(t) = 1 - alpha_bar_t), from white.

    ``parametrisation``: "latents" optimises the image's 4x16x16 latents and
    decodes them at the end (as 2D SDS demos with Stable Diffusion do);
    "pixels" optimises a ``resolution``^2 grid of sigmoid pixels, upsampled
    bilinearly to 64x64, that reaches the teacher through its VAE encoder as a
    render does in text-to-3D.
    """
    if parametrisation not in ("latents", "pixels"):
        raise ValueError(f"parametrisation must be 'latents' or 'pixels', got {parametrisation!r}")
    parse_prompt(prompt)
    context = torch.cat([text_embeddings(pipe, [prompt]), text_embeddings(pipe, [""])])
    scale = pipe.vae.config.scaling_factor
    if parametrisation == "latents":
        with torch.no_grad():
            start = pipe.vae.encode(torch.ones(1, 3, 64, 64)).latent_dist.mean * scale
        param = (start + 0.05 * torch.randn(start.shape, generator=generator)).requires_grad_(True)
    else:
        param = (3.0 + 0.1 * torch.randn(1, 3, resolution, resolution, generator=generator)).requires_grad_(True)

    def pixels():
        return torch.nn.functional.interpolate(param.sigmoid(), size=(64, 64), mode="bilinear", align_corners=False)

    def latents():
        return param if parametrisation == "latents" else pipe.vae.encode(pixels() * 2.0 - 1.0).latent_dist.mean * scale

    optimizer = torch.optim.Adam([param], lr=lr)
    for _ in range(steps):
        z = latents()
        grad = sds_direction(pipe, z.detach(), context, guidance_scale, generator)
        loss = 0.5 * (z - (z - grad).detach()).square().sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        if parametrisation == "pixels":
            return pixels()
        return (pipe.vae.decode(param / scale).sample * 0.5 + 0.5).clamp(0.0, 1.0)


def binomial_cdf(successes: int, n: int, p: float) -> float:
    """P(X <= successes) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, k) * p**k * (1.0 - p) ** (n - k) for k in range(successes + 1))


def consistent_with_rate(successes: int, n: int, rate: float, alpha: float = 0.01) -> bool:
    """False when ``successes`` of ``n`` is significantly below ``rate`` (one-sided exact binomial test at ``alpha``)."""
    if not 0 <= successes <= n or n < 1:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes}, {n}")
    return binomial_cdf(successes, n, rate) >= alpha
