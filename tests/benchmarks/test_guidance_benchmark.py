"""carv.benchmarks.guidance on the tiny teacher: every figure is present and positive (no timing assertions)."""

import math

import torch

from carv.benchmarks.guidance import RenderStandIn, auto_choices, benchmark_teacher, format_table
from carv.diffusion.teacher import load_teacher
from carv.testing.teachers import build_tiny_sd_teacher


def test_benchmark_reports_phases_and_ratios(tmp_path):
    teacher = load_teacher(build_tiny_sd_teacher(tmp_path / "sd"))
    results = benchmark_teacher(teacher, renders=(1, 2), ks=(1, 2), repeats=1)
    scalars = {key: value for key, value in results.items() if key not in ("curve", "render_curve")}
    assert all(math.isfinite(value) for value in scalars.values())
    assert all(value > 0 for key, value in scalars.items() if not key.startswith("encode") and "error" not in key)
    assert [point["draws"] for point in results["curve"]] == [1, 2, 4]  # the ladder up to max R x max K
    seconds = [point["seconds"] for point in results["curve"]]
    assert seconds == sorted(seconds)
    assert [point["draws"] for point in results["render_curve"]] == [1, 2]  # A(R) on the ladder up to max R
    a2, c4 = 1e3 * results["render_curve"][1]["seconds"], 1e3 * seconds[2]
    assert math.isclose(results["R2_K2_predicted_ms_curve"], a2 + c4, rel_tol=1e-9)
    assert math.isclose(
        results["R2_K2_curve_error"], results["R2_K2_predicted_ms_curve"] / results["R2_K2_step_ms"] - 1
    )
    assert results["R1_K1_ratio"] == results["R2_K1_ratio"] == 1.0
    assert results["R2_K2_predicted_ratio"] == (results["a_ms"] + 2 * results["b_ms"]) / (
        results["a_ms"] + results["b_ms"]
    )
    table = format_table("tiny", results, renders=(1, 2), ks=(1, 2))
    assert "a/b" in table and "c(n)" in table and len(table.splitlines()) == 4 + 4 + 1


def test_render_stand_in_is_a_differentiable_image_in_0_1():
    render = RenderStandIn(renders=2, size=8)
    rgb = render()
    assert rgb.shape == (2, 8, 8, 3) and 0 < rgb.min() and rgb.max() < 1
    rgb.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in render.parameters())


def test_auto_choices_follow_the_variance_ratio_on_the_measured_curve():
    """A flat teacher curve (64 draws cost what one does) with cheap renders: noise-dominated variance goes to one
    render and many draws, camera-dominated variance keeps the baseline's renders."""
    flat = [{"draws": n, "seconds": 1.0 + 1e-3 * n} for n in (1, 2, 4, 8, 16, 32, 64)]
    renders = [{"draws": r, "seconds": 0.1 * r} for r in (1, 2, 4, 8)]
    results = {"a_ms": 100.0, "curve": flat, "render_curve": renders}
    noise, cameras = auto_choices(results, [1000.0, 1e-3])
    assert (noise["renders"], noise["k"]) == (1, 64) and noise["ecm"] > 10
    assert noise["linear_k"] < noise["k"]  # the linear model prices every draw at c(1)
    assert cameras["renders"] >= 4 and cameras["ecm"] >= 1.0
