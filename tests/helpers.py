"""Helpers shared by the tests (the one module tests import besides conftest): statistical tolerances from
standard errors, planted variance grids, the tiny toy-world teacher and judge with shrunken run overrides, and
the CLI's one-line-error check."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import CLIPTokenizer

from carv.testing.teachers import build_tiny_sd_teacher, seeded, tiny_text_encoder
from carv.toyworld.judge import Judge, ToyJudge
from carv.toyworld.tokenizer import write_clip_tokenizer
from carv.toyworld.world import VOCABULARY

CONFIDENCE = 0.99


def two_sided_z(confidence: float = CONFIDENCE, comparisons: int = 1) -> float:
    """z such that |N(0,1)| < z with probability `confidence`, Bonferroni-corrected over `comparisons`."""
    tail = (1.0 - confidence) / (2 * comparisons)
    return float(torch.special.ndtri(torch.tensor(1.0 - tail, dtype=torch.float64)))


def chi2_lower_quantile(dof: int, probability: float) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile at `probability`."""
    z = float(torch.special.ndtri(torch.tensor(probability, dtype=torch.float64)))
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + z * math.sqrt(c)) ** 3


def variance_upper_bound(samples: torch.Tensor, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound of the variance of normal-ish samples."""
    m = samples.numel()
    return samples.var().item() * (m - 1) / chi2_lower_quantile(m - 1, 1.0 - confidence)


def planted_grid(r: int, k: int, d: int, sigma_b2: float, sigma_w2: float, seed: int, dtype=torch.float64):
    """g_rk = mu + b_r + e_rk with trace Var(b) = sigma_b2 and trace Var(e) = sigma_w2."""
    mu = torch.linspace(-1.0, 1.0, d, dtype=dtype).view(1, 1, d)  # the expectation, fixed across seeds
    g = torch.Generator().manual_seed(seed)
    between = torch.randn(r, 1, d, generator=g, dtype=dtype) * math.sqrt(sigma_b2 / d)
    within = torch.randn(r, k, d, generator=g, dtype=dtype) * math.sqrt(sigma_w2 / d)
    return mu + between + within


def build_toy_vocabulary_teacher(folder: Path) -> Path:
    """build_tiny_sd_teacher with the toy world's tokenizer and a text encoder sized for it."""
    build_tiny_sd_teacher(folder)
    (folder / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)
    write_clip_tokenizer(str(folder / "tokenizer"), VOCABULARY, model_max_length=16)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    tokenizer.save_pretrained(folder / "tokenizer")
    seeded(1, lambda: tiny_text_encoder(tokenizer)).save_pretrained(folder / "text_encoder")
    return folder


def build_random_judge(folder: Path) -> Path:
    seeded(2, lambda: Judge(ToyJudge())).save(str(folder))
    return folder


def shrunken(teacher: Path, judge: Path, outputs: Path, steps: int = 2) -> list[str]:
    """Overrides that make a run take a few seconds: tiny renders and grid, few views and steps."""
    return [
        f"system.guidance.pretrained_model_name_or_path={teacher}",
        f"evaluation.judge={judge}",
        f"exp_root_dir={outputs}",
        f"trainer.max_steps={steps}",
        "trainer.enable_progress_bar=false",
        "data.width=8",
        "data.height=8",
        "data.eval_width=16",
        "data.eval_height=16",
        "data.n_test_views=3",
        "evaluation.n_final_views=2",
        "evaluation.n_views=2",
        "system.geometry.grid_resolution=8",
        "system.renderer.num_samples_per_ray=8",
    ]


def parameters_of(checkpoint: Path) -> torch.Tensor:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]["field.density_grid"]


def assert_same_parameters(first: Path, second: Path) -> None:
    """The scenes of two checkpoints are equal: bit for bit on the CPU; to float32 rounding where CUDA trained them.

    On CUDA the backward pass of the grid lookup adds with atomics in no fixed order,
    so two identical runs differ in the last bits (about 1e-5 after a few steps); a
    difference in what was drawn changes the scene by orders of magnitude more.
    """
    a, b = parameters_of(first), parameters_of(second)
    if torch.cuda.is_available():
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    else:
        assert torch.equal(a, b)


def run_folder_of(output: str) -> Path:
    return Path(next(line for line in output.splitlines() if line.startswith("run folder: ")).split(": ", 1)[1])


def assert_one_line_error(capsys, argv, *fragments):
    from carv.cli import main

    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("carv ")]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
