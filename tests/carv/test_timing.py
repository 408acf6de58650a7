"""carv.timing's one training clock: wall-clock by default, the process's CPU seconds with $CARV_CLOCK=process
(refused where CUDA would do work it cannot see), used by PhaseClock. Fake clocks, never real timing."""

import time

import pytest
import torch

from carv import timing
from carv.timing import CLOCK_VARIABLE, ClockError, PhaseClock, clock_name, out_of_budget, training_time


@pytest.fixture
def fake_clocks(monkeypatch):
    """Both clocks replaced by fakes whose readings the test sets."""
    readings = {"wall": [0.0], "process": [0.0]}
    monkeypatch.setattr(timing, "CLOCKS", {name: (lambda name=name: readings[name][0]) for name in readings})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return readings


def test_the_shipped_clocks_are_perf_counter_and_process_time():
    assert timing.CLOCKS == {"wall": time.perf_counter, "process": time.process_time}


def test_wall_clock_unless_the_variable_says_process(monkeypatch, fake_clocks):
    fake_clocks["wall"][0], fake_clocks["process"][0] = 5.0, 7.0
    monkeypatch.delenv(CLOCK_VARIABLE, raising=False)
    assert (clock_name(), training_time()) == ("wall", 5.0)
    monkeypatch.setenv(CLOCK_VARIABLE, "wall")
    assert training_time() == 5.0
    monkeypatch.setenv(CLOCK_VARIABLE, "process")
    assert (clock_name(), training_time()) == ("process", 7.0)


def test_phase_clock_reads_the_training_clock(monkeypatch, fake_clocks):
    monkeypatch.setenv(CLOCK_VARIABLE, "process")
    clock = PhaseClock()
    fake_clocks["process"][0], fake_clocks["wall"][0] = 1.0, 100.0
    clock.start("render")
    fake_clocks["process"][0], fake_clocks["wall"][0] = 3.5, 900.0
    assert clock.stop("render") == 2.5 and clock.total == {"render": 2.5}


def test_unknown_clock_and_process_clock_on_cuda_are_one_line_errors(monkeypatch, fake_clocks):
    monkeypatch.setenv(CLOCK_VARIABLE, "cpu")
    with pytest.raises(ClockError, match="wall or process"):
        training_time()
    monkeypatch.setenv(CLOCK_VARIABLE, "process")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ClockError, match="CUDA") as error:
        clock_name()
    assert "\n" not in str(error.value)
    monkeypatch.setenv(CLOCK_VARIABLE, "wall")
    assert clock_name() == "wall"  # wall-clock counts GPU work (PhaseClock synchronizes)


def test_a_budget_stops_a_run_before_a_step_as_long_as_the_last_would_pass_it():
    assert not out_of_budget(4.0, 0.9, 5.0) and out_of_budget(4.0, 1.1, 5.0)
    assert not out_of_budget(5.0, 0.0, 5.0) and out_of_budget(5.5, 0.0, 5.0)
    assert not out_of_budget(1e9, 1e9, 0.0)  # no budget
