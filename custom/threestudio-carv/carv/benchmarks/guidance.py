"""Phase costs and step time versus K of ScoreDistillation on one teacher (CARV sec. 3's a and b).

a = render + encode + backward through encoder and render, per render;
b = one guided teacher evaluation (both CFG passes), per draw. One step costs
R (a + K b) in the linear model and R a + c(R K) in the measured one, where c(n)
is the measured time of n guided evaluations in one call (carv.cost_curve). The
measured step times are reported as ratios to K = 1 of the same run, beside both
predictions.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from ..cost_curve import MeasuredCostModel, TeacherCostCurve, doubling_ladder, measure_teacher_curve
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


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for the device's queued work (a no-op on the CPU)."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def median_seconds(run: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Median wall time of run() over `repeats` calls after one warm-up call."""
    synchronize = synchronizer(device)

    def once() -> float:
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
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


def distillation(teacher, k: int, max_unet_batch: int = 0) -> ScoreDistillation:
    half = teacher.weights_dtype == torch.float16
    config = ScoreDistillationConfig(
        noise_samples_per_render=k, half_precision_weights=half, max_unet_batch=max_unet_batch
    )
    return ScoreDistillation(teacher, config)


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


def teacher_cost_curve(
    teacher, max_draws: int = 64, repeats: int = 3, device="cpu", max_unet_batch: int = 0
) -> TeacherCostCurve:
    """c(n) on the ladder 1, 2, 4, ... max_draws: n re-noised latents through the guided teacher in one call,
    split by max_unet_batch as the guidance splits them; on CUDA with the peak memory of each batch, the ladder
    ending at the first batch that does not fit."""
    device = torch.device(device)
    distill, text = distillation(teacher, 1, max_unet_batch), random_text(teacher, 1, device)
    render = RenderStandIn(1, teacher.native_resolution).to(device)
    with torch.no_grad():
        latent = distill.latents(render(), cpu_generator(device))
    eps_hat = distill.guided_noise(text)

    @torch.no_grad()
    def evaluate(n: int) -> None:
        index = torch.zeros(n, dtype=torch.long, device=device)
        eps_hat(latent.expand(n, *latent.shape[1:]), torch.full((n,), 500, device=device), index)

    cuda = device.type == "cuda"

    def peak_memory(n: int) -> float:
        torch.cuda.reset_peak_memory_stats(device)
        evaluate(n)
        return float(torch.cuda.max_memory_allocated(device))

    return measure_teacher_curve(
        evaluate,
        doubling_ladder(max_draws),
        repeats,
        synchronize=synchronizer(device),
        peak_memory=peak_memory if cuda else None,
        out_of_memory=(torch.cuda.OutOfMemoryError,) if cuda else (),
    )


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
    """Phase milliseconds, a, b, a/b, the teacher curve c(n) up to max(R) max(K), and per (R, K) the step ms
    measured and predicted by both models (R (a + K b) and R a + c(R K)), as ratios to K = 1 and as errors."""
    device = torch.device(device)
    phases = phase_seconds(teacher, max(renders), repeats, device)
    a = phases["render"] + phases["encode"] + phases["encode_backward"]
    b = phases["teacher_eval"]
    results = {f"{name}_ms": 1e3 * value for name, value in phases.items()}
    results.update(a_ms=1e3 * a, b_ms=1e3 * b, a_over_b=a / b)
    curve = teacher_cost_curve(teacher, max(renders) * max(ks), repeats, device)
    measured = MeasuredCostModel(a, curve)
    results["curve"] = curve.as_records()
    for r in renders:
        base = None
        for k in ks:
            seconds = step_seconds(teacher, r, k, repeats, device)
            base = base or seconds
            key = f"R{r}_K{k}"
            results[f"{key}_step_ms"] = 1e3 * seconds
            results[f"{key}_ratio"] = seconds / base
            results[f"{key}_predicted_ratio"] = (a + k * b) / (a + b)
            results[f"{key}_predicted_ms_linear"] = 1e3 * r * (a + k * b)
            results[f"{key}_predicted_ms_curve"] = 1e3 * measured.step_cost(r, k)
            results[f"{key}_curve_error"] = measured.step_cost(r, k) / seconds - 1.0
            results[f"{key}_linear_error"] = r * (a + k * b) / seconds - 1.0
    return results


def format_table(name: str, results: dict[str, float], renders=(1, 4), ks=(1, 2, 4, 8, 16)) -> str:
    """A text table of one teacher's results."""
    lines = [
        f"== {name}: render {results['render_ms']:.2f} ms, encode {results['encode_ms']:.2f} ms, "
        f"encode backward {results['encode_backward_ms']:.2f} ms (per render); guided teacher eval "
        f"{results['teacher_eval_ms']:.2f} ms (per draw); a/b = {results['a_over_b']:.3f}",
        "teacher curve c(n), ms: " + ", ".join(f"{p['draws']}: {1e3 * p['seconds']:.2f}" for p in results["curve"]),
        f"{'R':>3} {'K':>3} {'step ms':>10} {'ratio':>7} {'linear':>8} {'R a + c(RK) ms':>15} {'error':>7} "
        f"{'R(a+Kb) ms':>11} {'error':>7}",
    ]
    for r in renders:
        for k in ks:
            key = f"R{r}_K{k}"
            lines.append(
                f"{r:>3} {k:>3} {results[key + '_step_ms']:>10.2f} {results[key + '_ratio']:>7.2f} "
                f"{results[key + '_predicted_ratio']:>8.2f} {results[key + '_predicted_ms_curve']:>15.2f} "
                f"{100 * results[key + '_curve_error']:>6.1f}% {results[key + '_predicted_ms_linear']:>11.2f} "
                f"{100 * results[key + '_linear_error']:>6.1f}%"
            )
    worst = max(abs(results[f"R{r}_K{k}_curve_error"]) for r in renders for k in ks)
    lines.append(f"largest |error| of R a + c(R K): {100 * worst:.1f}%")
    return "\n".join(lines)
