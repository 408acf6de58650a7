"""carv-dreamfusion-system and carv-magic3d-system: threestudio's systems with CARV bookkeeping.

The training step is threestudio's own (its losses, its logging of every scalar the guidance
returns, so the CARV diagnostics appear as train/<name> every step); these subclasses add the
per-phase wall-clock of each step: render, guidance and backward, logged as train/time_<phase>;
and, with system.carv_auto_k, K chosen online (auto_k.py).
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from threestudio.systems.dreamfusion import DreamFusion
from threestudio.systems.magic3d import Magic3D
from threestudio.utils.base import Updateable

from .auto_k import AutoKMixin, AutoKOptions
from .registration import register_once

PHASES = ("render", "guidance", "backward")


def synchronize() -> None:
    """Wait for queued CUDA work so that wall-clock phases are attributed correctly."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class PhaseClock:
    """Seconds spent in each named phase of the current step."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def start(self, phase: str) -> None:
        synchronize()
        self._started[phase] = time.perf_counter()

    def stop(self, phase: str) -> float:
        synchronize()
        self.seconds[phase] = time.perf_counter() - self._started.pop(phase)
        return self.seconds[phase]

    @contextmanager
    def phase(self, phase: str):
        self.start(phase)
        try:
            yield
        finally:
            self.stop(phase)


class PhaseTimedGuidance(Updateable):
    """Calls the guidance under the "guidance" phase; everything else is the guidance's own."""

    def __init__(self, guidance, clock: PhaseClock):
        self.guidance = guidance
        self.clock = clock

    def __call__(self, *args, **kwargs):
        with self.clock.phase("guidance"):
            return self.guidance(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["guidance"], name)


class PhaseTimingMixin:
    """Times render (forward in training), guidance and backward of every training step."""

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.phase_clock = PhaseClock()
        self.guidance = PhaseTimedGuidance(self.guidance, self.phase_clock)

    def forward(self, batch):
        if not self.training:
            return super().forward(batch)
        with self.phase_clock.phase("render"):
            return super().forward(batch)

    def on_before_backward(self, loss) -> None:
        self.phase_clock.start("backward")

    def on_after_backward(self) -> None:
        self.phase_clock.stop("backward")
        for phase in PHASES:
            if phase in self.phase_clock.seconds:
                self.log(f"train/time_{phase}", self.phase_clock.seconds[phase])


@register_once("carv-dreamfusion-system")
class CarvDreamFusion(AutoKMixin, PhaseTimingMixin, DreamFusion):
    """dreamfusion-system with per-phase wall-clock and optional carv_auto_k; use with a carv-*-guidance."""

    @dataclass
    class Config(DreamFusion.Config, AutoKOptions):
        pass

    cfg: Config


@register_once("carv-magic3d-system")
class CarvMagic3D(AutoKMixin, PhaseTimingMixin, Magic3D):
    """magic3d-system (coarse or mesh refinement stage) with per-phase wall-clock and optional carv_auto_k."""

    @dataclass
    class Config(Magic3D.Config, AutoKOptions):
        pass

    cfg: Config
