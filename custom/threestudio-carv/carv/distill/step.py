"""One DMD step of the student and one critic update, and the variance of the step's parameter gradient.

The student's parameter gradient of a step is (1/R) sum_r J_r^T d_r with d_r the K-averaged DMD
direction of sample r (CARV sec. 4b): one backward pass per step whatever K.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..accounting import CostMeter, VarianceComponents, variance_components
from ..estimator import RenoiseResult
from ..timesteps import TimestepSampler
from .networks import OneStepStudent, TeacherScores
from .objective import EstimatorSetting, dmd_gradient, dmd_loss, fake_score_loss


@dataclass
class StudentBatch:
    """Generated samples of one step: latents [R, C, h, w] (with grad), their noise and prompt rows [R]."""

    latents: torch.Tensor
    noise: torch.Tensor
    prompts: torch.Tensor


def generate(
    student: OneStepStudent, scores: TeacherScores, n: int, shape: tuple, generator: torch.Generator
) -> StudentBatch:
    """n one-step samples x = G(z, y) for prompts drawn uniformly from the scores' prompts."""
    prompts = torch.randint(0, scores.cond.shape[0], (n,), generator=generator)
    noise = torch.randn((n, *shape), generator=generator)
    return StudentBatch(student_latents(student, scores, noise, prompts), noise, prompts)


def student_latents(student: OneStepStudent, scores: TeacherScores, noise: torch.Tensor, prompts: torch.Tensor):
    """G(z, y) for noise [n, C, h, w] and prompt rows [n]: the frozen teacher start, then the student's residual."""
    return student(noise, scores.pooled[prompts], scores.one_step_start(noise, prompts))


def fresh_critic_batch(student: OneStepStudent, scores: TeacherScores, n: int, generator: torch.Generator):
    """New student samples for a critic update between student updates (DMD2 generates each iteration), no grad."""
    with torch.no_grad():
        return generate(student, scores, n, tuple(scores.teacher_shape), generator)


def dmd_step(
    student: OneStepStudent,
    scores: TeacherScores,
    setting: EstimatorSetting,
    sampler: TimestepSampler,
    generator: torch.Generator,
    meter: CostMeter | None = None,
    keep_draws: bool = False,
) -> tuple[StudentBatch, RenoiseResult]:
    """Generate setting.samples latents, estimate their DMD directions, back-propagate DMD2's loss into the student."""
    meter = meter or CostMeter()
    started = time.perf_counter()
    batch = generate(student, scores, setting.samples, tuple(scores.teacher_shape), generator)
    generated = time.perf_counter()
    result = dmd_gradient(
        batch.latents,
        scores.for_samples(batch.prompts).scores,
        sampler,
        k=setting.k,
        alphas_cumprod=scores.teacher.alphas_cumprod,
        generator=generator,
        keep_draws=keep_draws,
    )
    estimated = time.perf_counter()
    dmd_loss(batch.latents, result.direction).backward(retain_graph=keep_draws)
    meter.add("render", generated - started, setting.samples)
    meter.add("teacher", estimated - generated, setting.teacher_evaluations)
    meter.add("backward", time.perf_counter() - estimated, setting.samples)
    return batch, result


def critic_step(
    scores: TeacherScores, optimizer: torch.optim.Optimizer, batch: StudentBatch, size: int, generator: torch.Generator
) -> float:
    """One DMD2 fake-score update on the first `size` student samples of the step (detached); returns the loss."""
    scores.for_samples(batch.prompts[:size])
    loss = fake_score_loss(scores.fake_eps, batch.latents[:size], scores.teacher.alphas_cumprod, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def flat_grad(module: torch.nn.Module) -> torch.Tensor:
    """All parameter gradients as one float64 vector (zeros where a parameter got none)."""
    parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in module.parameters()]
    return torch.cat(parts).double()


def per_draw_gradients(student: OneStepStudent, batch: StudentBatch, result: RenoiseResult) -> torch.Tensor:
    """G_rk = R J_r^T dL/dx_r for each single draw k, [R, K, D]: (1/R) sum_r (1/K) sum_k G_rk is the step gradient."""
    r, k = result.draws.shape[:2]
    params = list(student.parameters())
    scale = r / batch.latents.numel()  # DMD2's mean-reduced loss: dL/dx_r = d_r / numel
    grid = []
    for i in range(r):
        row = []
        for j in range(k):
            cotangent = (result.draws[i, j] * scale).to(batch.latents.dtype)
            grads = torch.autograd.grad(batch.latents[i], params, cotangent, retain_graph=True, allow_unused=True)
            row.append(
                torch.cat(
                    [
                        (g if g is not None else torch.zeros_like(p)).flatten()
                        for g, p in zip(grads, params, strict=True)
                    ]
                )
            )
        grid.append(torch.stack(row))
    return torch.stack(grid).double()


@dataclass(frozen=True)
class TraceVariance:
    """trace Var of a per-step gradient from M independent repeats, with its standard error."""

    value: float
    se: float
    repeats: int


def trace_variance(gradients: torch.Tensor) -> TraceVariance:
    """Unbiased trace of the covariance of gradients [M, D]; SE from the spread of the M squared deviations."""
    m = gradients.shape[0]
    if m < 3:
        raise ValueError(f"the variance of a step gradient needs at least 3 repeats, got {m}")
    g = gradients.double()
    squares = (g - g.mean(dim=0)).pow(2).sum(dim=1) * m / (m - 1)
    return TraceVariance(squares.mean().item(), squares.std().item() / math.sqrt(m), m)


def repeated_step_gradients(
    student: OneStepStudent,
    scores: TeacherScores,
    setting: EstimatorSetting,
    sampler: TimestepSampler,
    repeats: int,
    generator: torch.Generator,
    meter: CostMeter,
    grid: bool = False,
) -> tuple[torch.Tensor, list[VarianceComponents]]:
    """The step's parameter gradient at fixed networks, `repeats` times [M, D]; with grid, the variance components
    of each repeat's R x K per-draw gradients. The proposal is not updated (the repeats share one q)."""
    gradients, components = [], []
    for _ in range(repeats):
        student.zero_grad(set_to_none=True)
        batch, result = dmd_step(student, scores, setting, sampler, generator, meter, keep_draws=grid)
        gradients.append(flat_grad(student))
        if grid:
            components.append(variance_components(per_draw_gradients(student, batch, result)))
    student.zero_grad(set_to_none=True)
    return torch.stack(gradients), components


def pooled_components(components: list[VarianceComponents]) -> dict:
    """Mean of independent unbiased (sigma_b^2, sigma_w^2) estimates, with SEs from their spread."""
    b = torch.tensor([c.sigma_b2 for c in components], dtype=torch.float64)
    w = torch.tensor([c.sigma_w2 for c in components], dtype=torch.float64)
    n = len(components)
    return {
        "sigma_b2": b.mean().item(),
        "sigma_b2_se": (b.std() / math.sqrt(n)).item(),
        "sigma_w2": w.mean().item(),
        "sigma_w2_se": (w.std() / math.sqrt(n)).item(),
        "grids": n,
        "samples_per_grid": components[0].renders,
        "draws_per_sample": components[0].draws_per_render,
    }
