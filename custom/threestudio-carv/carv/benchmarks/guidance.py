"""Phase costs and step time versus K of ScoreDistillation on one teacher (CARV sec. 3's a and b).

a = render + encode + backward through encoder and render, per render;
b = one guided teacher evaluation (both CFG passes), per draw. One step costs
R (a + K b); the measured step times are reported as ratios to K = 1 of the
same run, beside the ratio (a + K b) / (a + b) that the phase costs predict.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from ..score_distillation import ScoreDistillation, ScoreDistillationConfig, TextConditioning


class RenderStandIn(torch.nn.Module):
    """A differentiable render: a coordinate MLP (2 -> hidden -> hidden -> 3) over an S x S pixel grid per render."""

    def __init__(self, renders: int, size: int, hidden: int = 64, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        axis = torch.linspace(-1.0, 1.0, size)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1)
        shift = torch.randn(renders, 1, 1, 2, generator=generator) * 0.1
        self.register_buffer("coordinates", grid.expand(renders, size, size, 2) + shift)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(2, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, 3),
        )

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.mlp(self.coordinates))  # [R, S, S, 3] in (0, 1)


def median_seconds(run: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Median wall time of run() over `repeats` calls after one warm-up call."""

    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeats))


def random_text(teacher, renders: int, device, tokens: int = 77, seed: int = 0) -> TextConditioning:
    """Random cond / uncond embeddings of the teacher's text width (timing does not need real prompts)."""
    generator = torch.Generator().manual_seed(seed)
    width = int(teacher.unet.config.cross_attention_dim)
    cond = torch.randn(renders, tokens, width, generator=generator).to(device)
    return TextConditioning(cond, torch.randn(1, tokens, width, generator=generator).to(device))


def cpu_generator(device: torch.device) -> torch.Generator | None:
    """A seeded generator on the CPU; None (the global RNG) on an accelerator, where the sampler cannot use one."""
    return torch.Generator().manual_seed(0) if device.type == "cpu" else None


def distillation(teacher, k: int) -> ScoreDistillation:
    half = teacher.weights_dtype == torch.float16
    return ScoreDistillation(teacher, ScoreDistillationConfig(noise_samples_per_render=k, half_precision_weights=half))


def phase_seconds(teacher, renders: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Seconds per render (render, encode, encode_backward) and per guided teacher evaluation."""
    render = RenderStandIn(renders, teacher.native_resolution).to(device)
    distill, text = distillation(teacher, 1), random_text(teacher, renders, device)
    generator = cpu_generator(device)
    latents = distill.latents(render().detach(), generator)
    seed = torch.ones_like(latents)

    def backward() -> None:
        distill.latents(render(), generator).backward(seed)

    encode_and_backward = median_seconds(backward, repeats, device)
    encode = median_seconds(lambda: distill.latents(render(), generator), repeats, device)
    render_time = median_seconds(lambda: render(), repeats, device)
    t = torch.full((renders,), 500, device=device)
    eps_hat = distill.guided_noise(text)
    with torch.no_grad():
        teacher_eval = median_seconds(
            lambda: eps_hat(latents, t, torch.arange(renders, device=device)), repeats, device
        )
    return {
        "render": render_time / renders,
        "encode": (encode - render_time) / renders,
        "encode_backward": (encode_and_backward - encode) / renders,
        "teacher_eval": teacher_eval / renders,
    }


def step_seconds(teacher, renders: int, k: int, repeats: int, device: torch.device) -> float:
    """Median seconds of one full step: render, encode, K guided evaluations per render, backward."""
    render = RenderStandIn(renders, teacher.native_resolution).to(device)
    distill, text = distillation(teacher, k), random_text(teacher, renders, device)
    generator = cpu_generator(device)

    def step() -> None:
        distill(render(), text, generator=generator)["loss_sds"].backward()

    return median_seconds(step, repeats, device)


def benchmark_teacher(
    teacher, *, renders=(1, 4), ks=(1, 2, 4, 8, 16), repeats: int = 3, device="cpu"
) -> dict[str, float]:
    """Flat results: phase milliseconds, a, b, a/b, and per (R, K) the step ms, measured and predicted ratios."""
    device = torch.device(device)
    phases = phase_seconds(teacher, max(renders), repeats, device)
    a = phases["render"] + phases["encode"] + phases["encode_backward"]
    b = phases["teacher_eval"]
    results = {f"{name}_ms": 1e3 * value for name, value in phases.items()}
    results.update(a_ms=1e3 * a, b_ms=1e3 * b, a_over_b=a / b)
    for r in renders:
        base = None
        for k in ks:
            seconds = step_seconds(teacher, r, k, repeats, device)
            base = base or seconds
            results[f"R{r}_K{k}_step_ms"] = 1e3 * seconds
            results[f"R{r}_K{k}_ratio"] = seconds / base
            results[f"R{r}_K{k}_predicted_ratio"] = (a + k * b) / (a + b)
    return results


def format_table(name: str, results: dict[str, float], renders=(1, 4), ks=(1, 2, 4, 8, 16)) -> str:
    """A text table of one teacher's results."""
    lines = [
        f"== {name}: render {results['render_ms']:.2f} ms, encode {results['encode_ms']:.2f} ms, "
        f"encode backward {results['encode_backward_ms']:.2f} ms (per render); guided teacher eval "
        f"{results['teacher_eval_ms']:.2f} ms (per draw); a/b = {results['a_over_b']:.3f}",
        f"{'R':>3} {'K':>3} {'step ms':>10} {'ratio':>7} {'predicted':>10}",
    ]
    for r in renders:
        for k in ks:
            key = f"R{r}_K{k}"
            lines.append(
                f"{r:>3} {k:>3} {results[key + '_step_ms']:>10.2f} {results[key + '_ratio']:>7.2f} "
                f"{results[key + '_predicted_ratio']:>10.2f}"
            )
    return "\n".join(lines)
