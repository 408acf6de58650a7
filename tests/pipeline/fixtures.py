"""A tiny random teacher that knows the toy world's words, a random judge, and shrunken run overrides."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import CLIPTokenizer

from carv.testing.teachers import build_tiny_sd_teacher, seeded, tiny_text_encoder
from carv.toyworld.judge import Judge, ToyJudge
from carv.toyworld.tokenizer import write_clip_tokenizer
from carv.toyworld.world import VOCABULARY


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
