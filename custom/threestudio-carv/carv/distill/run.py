"""`carv distill`: train a one-step student with each DMD estimator for the same budget, measure variance and quality.

Both students start from the same weights and see the same critic compute; the variance of the step's
parameter gradient is measured for every estimator at checkpoints of the CARV run (networks frozen,
`repeats` independent steps each, equal teacher evaluations per step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .measure import measure_variance
from .networks import FakeScoreHead, OneStepStudent, TeacherScores
from .objective import setting_sampler
from .options import DistillOptions
from .quality import decode, frechet_distance, judge_features, mean_with_se
from .step import (
    critic_step,
    dmd_step,
    fresh_critic_batch,
    student_latents,
)

CARV_PROPOSALS = ("uniform", "sds", "fantasia3d", "gaussian", "adaptive")


@dataclass
class World:
    """What every run shares: the teacher, its scheduler, prompt embeddings, judge and evaluation noise."""

    teacher: object
    scheduler: object
    cond: torch.Tensor  # [P, N, F]
    uncond: torch.Tensor  # [1, N, F]
    judge: object
    eval_noise: torch.Tensor  # [P * eval_samples, C, h, w]
    eval_prompts: torch.Tensor  # [P * eval_samples]


def check_options(options: DistillOptions) -> None:
    """ValueError naming the first option a run cannot use."""
    positive = ("steps", "samples", "k", "checkpoints", "eval_every", "eval_samples", "reference_steps")
    for name in positive:
        value = getattr(options, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if options.repeats < 3:
        raise ValueError(f"--repeats must be at least 3 (a variance with a standard error), got {options.repeats}")
    if options.k < 2:
        raise ValueError(f"--k must be at least 2 (K = 1 is the baseline), got {options.k}")
    if options.fake_updates < 0:
        raise ValueError(f"--fake-updates must be >= 0, got {options.fake_updates}")
    if options.eval_samples < 2:
        raise ValueError(f"--eval-samples must be at least 2, got {options.eval_samples}")
    if not options.prompts:
        raise ValueError("give at least one prompt")
    if options.proposal not in CARV_PROPOSALS:
        raise ValueError(f"--proposal must be one of {', '.join(CARV_PROPOSALS)}, got {options.proposal!r}")
    if not 0.0 <= options.min_step_percent <= options.max_step_percent < 1.0:
        raise ValueError("need 0 <= min_step_percent <= max_step_percent < 1")


def checkpoint_steps(steps: int, count: int) -> list[int]:
    """`count` steps from 0 to `steps`, evenly spaced (distinct)."""
    if count == 1:
        return [steps]
    return sorted({round(i * steps / (count - 1)) for i in range(count)})


def new_networks(world: World, options: DistillOptions) -> tuple[OneStepStudent, FakeScoreHead]:
    """Student and fake-score head with initial weights from options.seed (a forked RNG: the caller's is untouched)."""
    channels, width = world.teacher.noise_channels, world.cond.shape[-1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        return OneStepStudent(channels, width), FakeScoreHead(channels, width, world.teacher.alphas_cumprod.shape[0])


@torch.no_grad()
def one_step_samples(student: OneStepStudent, world: World, guidance_scale: float) -> torch.Tensor:
    """The student's latents for the fixed evaluation noise and prompts."""
    scores = TeacherScores(world.teacher, None, world.cond, world.uncond, guidance_scale)
    return student_latents(student, scores, world.eval_noise, world.eval_prompts)


def evaluate(world: World, latents: torch.Tensor, prompts: list[str], reference: torch.Tensor | None) -> dict:
    """Prompt fidelity (mean, SE over samples), Frechet distance to the reference features (if given), features."""
    images = decode(world.teacher, latents)
    fidelity = torch.cat(
        [world.judge.prompt_fidelity(images[world.eval_prompts == i], p) for i, p in enumerate(prompts)]
    )
    features = judge_features(world.judge, images)
    return {
        "fidelity": mean_with_se(fidelity),
        "frechet": None if reference is None else frechet_distance(features, reference),
        "features": features,
    }


def train(
    name: str, world: World, settings: dict, options: DistillOptions, reference: torch.Tensor, progress: tqdm
) -> dict:
    """Train a student with settings[name]; quality every eval_every steps, variance at checkpoints (CARV run)."""
    setting = settings[name]
    student, head = new_networks(world, options)
    scores = TeacherScores(world.teacher, head, world.cond, world.uncond, options.guidance_scale)
    sampler = setting_sampler(setting, world.teacher.alphas_cumprod, options.min_step_percent, options.max_step_percent)
    student_opt = torch.optim.Adam(student.parameters(), lr=options.student_lr)
    fake_opt = torch.optim.Adam(head.parameters(), lr=options.fake_lr)
    generator = torch.Generator().manual_seed(options.seed + 1)
    measure_at = checkpoint_steps(options.steps, options.checkpoints) if name == "carv" else []
    history, variance, seconds = [], [], 0.0
    for step in range(options.steps + 1):
        if step in measure_at:
            progress.set_postfix_str(f"{name}: variance at step {step}")
            variance.append(
                measure_variance(student, head, world, settings, options, step, options.seed + 1000 + step, sampler)
            )
        if step % options.eval_every == 0 or step == options.steps:
            quality = evaluate(
                world, one_step_samples(student, world, options.guidance_scale), options.prompts, reference
            )
            history.append(
                {"step": step, "train_seconds": seconds, "fidelity": quality["fidelity"], "frechet": quality["frechet"]}
            )
        if step == options.steps:
            break
        started = time.perf_counter()
        student_opt.zero_grad(set_to_none=True)
        batch, result = dmd_step(student, scores, setting, sampler, generator)
        student_opt.step()
        sampler.update(result.t.flatten(), result.sq_norm.flatten())
        for update in range(options.fake_updates):
            critic = batch if update == 0 else fresh_critic_batch(student, scores, options.samples, generator)
            critic_step(scores, fake_opt, critic, options.samples, generator)
        seconds += time.perf_counter() - started
        progress.update(1)
        progress.set_postfix_str(
            f"{name}: fidelity {history[-1]['fidelity']['mean']:.2f} FD {history[-1]['frechet']:.1f}"
        )
    return {"student": student, "head": head, "history": history, "variance": variance, "train_seconds": seconds}
