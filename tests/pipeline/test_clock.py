"""The CPU pipeline's training seconds and its --seconds budget are on carv.timing's training clock (fake clocks)."""

import itertools

import pytest
import torch

from carv import timing
from carv.pipeline.compare import compare
from carv.pipeline.errors import UserError
from carv.pipeline.runner import text_to_3d
from carv.timing import CLOCK_VARIABLE

from ..helpers import shrunken


def use_fake_process_clock(monkeypatch, readings) -> None:
    monkeypatch.setenv(CLOCK_VARIABLE, "process")
    monkeypatch.setattr(timing, "CLOCKS", {**timing.CLOCKS, "process": readings})


def test_a_stopped_clock_gives_zero_training_seconds(toy_teacher, random_judge, tmp_path, monkeypatch):
    use_fake_process_clock(monkeypatch, lambda: 42.0)
    metrics = text_to_3d("a red mug", "cpu-carv", shrunken(toy_teacher, random_judge, tmp_path, steps=3)).metrics
    assert metrics["steps"] == 3 and metrics["run_seconds"]["train"] == 0.0
    assert all(h["train_seconds"] == 0.0 for h in metrics["fidelity_history"])


def test_the_budget_is_checked_on_the_training_clock(toy_teacher, random_judge, tmp_path, monkeypatch):
    """A clock that jumps 100 s a reading uses up a 50 s budget in the first step, however fast it ran."""
    use_fake_process_clock(monkeypatch, itertools.count(0.0, 100.0).__next__)
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path, steps=5), "trainer.max_train_seconds=50"]
    metrics = text_to_3d("a red mug", "cpu-carv", overrides).metrics
    assert metrics["steps"] == 1 and metrics["run_seconds"]["train"] % 100.0 == 0.0


def test_compare_refuses_the_process_clock_on_cuda(monkeypatch):
    monkeypatch.setenv(CLOCK_VARIABLE, "process")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(UserError, match="CUDA"):
        compare("a red mug", seconds=1.0)


def test_a_budget_run_stops_and_is_checked_at_or_just_before_the_budget(
    toy_teacher, random_judge, tmp_path, monkeypatch
):
    """A clock that ticks 1 s a reading makes every step equally long: the run ends within the budget, where
    one more step would have passed it, and its last check is there."""
    use_fake_process_clock(monkeypatch, itertools.count(0.0, 1.0).__next__)
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path, steps=100), "trainer.max_train_seconds=200.5"]
    metrics = text_to_3d("a red mug", "cpu-carv", [*overrides, "evaluation.every_n_steps=1000"]).metrics
    spent, steps = metrics["run_seconds"]["train"], metrics["steps"]
    assert 1 < steps < 100 and spent <= 200.5 < spent + spent / steps
    assert metrics["fidelity_history"][-1]["train_seconds"] == spent
