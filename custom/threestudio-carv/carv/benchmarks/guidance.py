"""Phase costs and step time versus K of ScoreDistillation on one teacher (CARV sec. 3's a and b).

a = render + encode + backward through encoder and render, per render;
b = one guided teacher evaluation (both CFG passes), per draw. One step costs
R (a + K b) in the linear model and R a + c(R K) in the measured one, where c(n)
is the measured time of n guided evaluations in one call (carv.guidance_cost), and
R a is replaced by A(R), the measured seconds of R renders' render, encode and
backward (carv.cost_curve). The measured step times are reported as ratios to
K = 1 of the same run, beside both predictions.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable

import torch

from ..autotune import AutoKOptions, choose_configuration
from ..cost_curve import MeasuredCostModel, TeacherCostCurve, doubling_ladder, interleaved_medians
from ..guidance_cost import guidance_draws
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


def step_calls(teacher, renders, ks, device: torch.device) -> dict[tuple, Callable[[], None]]:
    """Everything the bench times, as calls: ("c", n) n guided draws of one latent through the guidance's own path
    (carv.guidance_cost), ("A", R) render, encode, the SDS loss against a fixed target and the backward of R renders
    (a step less its teacher evaluations), and ("step", R, K) one full step."""
    generator = cpu_generator(device)
    one = distillation(teacher, 1)
    with torch.no_grad():
        latent = one.latents(RenderStandIn(1, teacher.native_resolution).to(device)(), generator)
    draws = guidance_draws(one, random_text(teacher, 1, device), latent)
    calls: dict[tuple, Callable[[], None]] = {
        ("c", n): (lambda n=n: draws(n)) for n in doubling_ladder(max(renders) * max(ks))
    }
    for r in sorted(set(doubling_ladder(max(renders))) | set(renders)):
        stand_in = RenderStandIn(r, teacher.native_resolution).to(device)

        def without_teacher(stand_in=stand_in, r=r) -> None:
            latents = one.latents(stand_in(), generator)
            target = (latents - torch.ones_like(latents)).detach()
            (0.5 * torch.nn.functional.mse_loss(latents, target, reduction="sum") / r).backward()

        calls[("A", r)] = without_teacher
        text = random_text(teacher, r, device)
        for k in ks if r in renders else ():
            step_distillation = distillation(teacher, k)

            def step(stand_in=stand_in, text=text, step_distillation=step_distillation) -> None:
                step_distillation(stand_in(), text, generator=generator)["loss_sds"].backward()

            calls[("step", r, k)] = step
    return calls


def curve_of(medians: dict[tuple, float], kind: str) -> TeacherCostCurve:
    """The curve of one kind of call ("c" or "A") from the interleaved medians."""
    points = sorted((key[1], seconds) for key, seconds in medians.items() if key[0] == kind)
    return TeacherCostCurve(tuple(n for n, _ in points), tuple(seconds for _, seconds in points))


def benchmark_teacher(
    teacher, *, renders=(1, 4), ks=(1, 2, 4, 8, 16), repeats: int = 3, device="cpu"
) -> dict[str, float]:
    """Phase milliseconds, a, b, a/b, the teacher curve c(n) up to max(R) max(K), the render curve A(R), and per
    (R, K) the step ms measured and predicted by both models (R (a + K b) and A(R) + c(R K)), as ratios to K = 1
    and as errors. The curves and the steps are timed in the same interleaved rounds (cost_curve.interleaved_medians)."""
    device = torch.device(device)
    phases = phase_seconds(teacher, max(renders), repeats, device)
    a = phases["render"] + phases["encode"] + phases["encode_backward"]
    b = phases["teacher_eval"]
    results = {f"{name}_ms": 1e3 * value for name, value in phases.items()}
    results.update(a_ms=1e3 * a, b_ms=1e3 * b, a_over_b=a / b)
    calls = step_calls(teacher, renders, ks, device)
    for call in calls.values():  # warm-up
        call()
    medians = interleaved_medians(calls, repeats, synchronize=synchronizer(device))
    curve, render_curve = curve_of(medians, "c"), curve_of(medians, "A")
    measured = MeasuredCostModel(a, curve, render_curve=render_curve)
    results["curve"] = curve.as_records()
    results["render_curve"] = render_curve.as_records()
    for r in renders:
        base = medians[("step", r, ks[0])]
        for k in ks:
            seconds = medians[("step", r, k)]
            key = f"R{r}_K{k}"
            results[f"{key}_step_ms"] = 1e3 * seconds
            results[f"{key}_ratio"] = seconds / base
            results[f"{key}_predicted_ratio"] = (a + k * b) / (a + ks[0] * b)
            results[f"{key}_predicted_ms_linear"] = 1e3 * r * (a + k * b)
            results[f"{key}_predicted_ms_curve"] = 1e3 * measured.step_cost(r, k)
            results[f"{key}_curve_error"] = measured.step_cost(r, k) / seconds - 1.0
            results[f"{key}_linear_error"] = r * (a + k * b) / seconds - 1.0
    return results


def auto_choices(results: dict, ratios) -> list[dict]:
    """For each sigma_w^2 / sigma_b^2 ratio (sigma_b^2 = 1), what `auto` (carv.autotune.choose_configuration, default
    options, R K within the bench's ladder) would choose on the bench's measured model, and the linear model's
    choice, each with its ECM against the R = 4, K = 1 baseline."""
    curve = TeacherCostCurve(*zip(*((p["draws"], p["seconds"]) for p in results["curve"]), strict=True))
    render_curve = TeacherCostCurve(*zip(*((p["draws"], p["seconds"]) for p in results["render_curve"]), strict=True))
    measured = MeasuredCostModel(results["a_ms"] / 1e3, curve, render_curve=render_curve)
    options = AutoKOptions(auto_max_draws_per_step=curve.draws[-1])
    return [
        {"ratio": ratio, **dataclasses.asdict(choose_configuration(measured, 1.0, ratio, options))} for ratio in ratios
    ]


def format_table(name: str, results: dict[str, float], renders=(1, 4), ks=(1, 2, 4, 8, 16)) -> str:
    """A text table of one teacher's results."""
    lines = [
        f"== {name}: render {results['render_ms']:.2f} ms, encode {results['encode_ms']:.2f} ms, "
        f"encode backward {results['encode_backward_ms']:.2f} ms (per render); guided teacher eval "
        f"{results['teacher_eval_ms']:.2f} ms (per draw); a/b = {results['a_over_b']:.3f}",
        "teacher curve c(n), ms: " + ", ".join(f"{p['draws']}: {1e3 * p['seconds']:.2f}" for p in results["curve"]),
        "render curve A(R), ms: "
        + ", ".join(f"{p['draws']}: {1e3 * p['seconds']:.2f}" for p in results["render_curve"]),
        f"{'R':>3} {'K':>3} {'step ms':>10} {'ratio':>7} {'linear':>8} {'A(R) + c(RK) ms':>15} {'error':>7} "
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
    lines.append(f"largest |error| of A(R) + c(R K): {100 * worst:.1f}%")
    return "\n".join(lines)
