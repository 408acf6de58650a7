"""Seconds per phase of a training step (CUDA work is waited for at each boundary): the one training clock and the
one phase clock of the CPU pipeline and the threestudio systems, and the teacher wrapper that times its encode and
UNet calls.

The training clock is wall-clock (time.perf_counter) unless $CARV_CLOCK=process, where it is this process's CPU
seconds (time.process_time: user + system, all threads), which a load spike from other processes does not inflate.
CPU seconds do not count GPU work, so the process clock is refused where CUDA is available.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch

CLOCK_VARIABLE = "CARV_CLOCK"
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


class ClockError(ValueError):
    """$CARV_CLOCK names no clock, or the process clock where CUDA does work it cannot see."""


def clock_name() -> str:
    """The training clock $CARV_CLOCK chooses ("wall" when unset); ClockError, one line, if it cannot be used."""
    name = os.environ.get(CLOCK_VARIABLE) or "wall"
    if name not in CLOCKS:
        raise ClockError(f"${CLOCK_VARIABLE}={name!r} names no clock; choose {' or '.join(CLOCKS)}")
    if name == "process" and torch.cuda.is_available():
        raise ClockError(f"${CLOCK_VARIABLE}=process counts CPU seconds only, not CUDA's work: unset it on a GPU")
    return name


def training_time() -> float:
    """Now on the training clock, in seconds (only differences mean anything)."""
    return CLOCKS[clock_name()]()


def synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def out_of_budget(spent: float, last_step: float, budget: float) -> bool:
    """Stop before the next step: another as long as the last would end past `budget` training seconds (0: none).

    So a run stopped by its budget ends, and is checked, at or just before it, never past it."""
    return budget > 0 and spent + last_step > budget


class PhaseClock:
    """Seconds per phase on the training clock: `last` of the current step and `total` over the run."""

    def __init__(self, total: dict[str, float] | None = None):
        self.last: dict[str, float] = {}
        self.total: dict[str, float] = dict(total or {})
        self._started: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.last[phase] = self.last.get(phase, 0.0) + seconds
        self.total[phase] = self.total.get(phase, 0.0) + seconds

    def new_step(self) -> None:
        self.last = {}

    def start(self, phase: str) -> None:
        """Open a phase that stop() closes (for hooks that cannot hold a context, e.g. around a backward)."""
        synchronize()
        self._started[phase] = training_time()

    def stop(self, phase: str) -> float:
        """Close a phase opened by start(); its seconds are added to last and total and returned."""
        synchronize()
        seconds = training_time() - self._started.pop(phase)
        self.add(phase, seconds)
        return seconds

    @contextmanager
    def phase(self, phase: str):
        self.start(phase)
        try:
            yield
        finally:
            self.stop(phase)


class TimedTeacher:
    """A teacher whose encode and predict_noise calls count as the "encode" and "teacher" phases."""

    def __init__(self, teacher, clock: PhaseClock):
        self.__dict__.update(teacher=teacher, clock=clock)

    def encode(self, *args, **kwargs):
        with self.clock.phase("encode"):
            return self.teacher.encode(*args, **kwargs)

    def predict_noise(self, *args, **kwargs):
        with self.clock.phase("teacher"):
            return self.teacher.predict_noise(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["teacher"], name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self.__dict__["teacher"], name, value)
