"""Quality bars of the teacher: DDIM samples judged against their prompts, and plain SDS on one image.

Imports diffusers (through the pipeline object); import by path.
"""

from __future__ import annotations

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


def image_sds(
    pipe,
    prompt: str,
    generator: torch.Generator,
    steps: int = 300,
    guidance_scale: float = 30.0,
    lr: float = 0.02,
    min_step: int = 20,
    max_step: int = 980,
) -> torch.Tensor:
    """Optimise one 64x64 image [1, 3, 64, 64] from grey with plain SDS (DreamFusion, w(t) = 1 - alpha_bar_t)."""
    parse_prompt(prompt)
    alphas = pipe.scheduler.alphas_cumprod.float()
    context = torch.cat([text_embeddings(pipe, [prompt]), text_embeddings(pipe, [""])])
    pixels = (0.5 + 0.01 * torch.randn(1, 3, 64, 64, generator=generator)).requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=lr)
    scale = pipe.vae.config.scaling_factor
    for _ in range(steps):
        latents = pipe.vae.encode(pixels.clamp(0.0, 1.0) * 2.0 - 1.0).latent_dist.mean * scale
        t = torch.randint(min_step, max_step + 1, (1,), generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        a = alphas[t].view(-1, 1, 1, 1)
        with torch.no_grad():
            noisy = a.sqrt() * latents + (1.0 - a).sqrt() * noise
            eps_text, eps_uncond = pipe.unet(noisy.repeat(2, 1, 1, 1), t.repeat(2), context).sample.chunk(2)
            grad = (1.0 - a) * (eps_uncond + guidance_scale * (eps_text - eps_uncond) - noise)
        loss = 0.5 * (latents - (latents - grad).detach()).square().sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return pixels.detach().clamp(0.0, 1.0)
