"""carv-dreamfusion-system and carv-magic3d-system: threestudio's systems with CARV bookkeeping.

The training step is threestudio's own (its losses, its logging of every scalar the guidance
returns, so the CARV diagnostics appear as train/<name> every step); these subclasses add the
per-phase seconds of each step on carv.timing's training clock (wall-clock, or CPU seconds with
$CARV_CLOCK=process): render, guidance and backward, logged as train/time_<phase>; with
system.max_train_seconds, a stop at or just before their sum reaches it (carv.timing.out_of_budget;
trainer.max_time counts wall-clock, validation included); and, with system.guidance.noise_samples_per_render: auto, K chosen online (auto_k.py).
"""

from dataclasses import dataclass

from threestudio.systems.dreamfusion import DreamFusion
from threestudio.systems.magic3d import Magic3D
from threestudio.utils.base import Updateable

from carv.timing import PhaseClock, TimedTeacher, out_of_budget

from .auto_k import AutoKMixin
from .registration import register_once

PHASES = ("render", "guidance", "backward")


class PhaseTimedGuidance(Updateable):
    """Calls the guidance under the "guidance" phase with the K of the step; everything else is the guidance's own."""

    def __init__(self, guidance, clock: PhaseClock, k_of_step):
        self.guidance = guidance
        self.clock = clock
        self.k_of_step = k_of_step

    def __call__(self, *args, **kwargs):
        with self.clock.phase("guidance"):
            return self.guidance(*args, carv_k=self.k_of_step(), **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["guidance"], name)


class PhaseTimingMixin:
    """Times render (forward in training), guidance and backward of every training step; stops the fit before they
    would add up to more than cfg.max_train_seconds (if > 0)."""

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.phase_clock = PhaseClock()
        distillation = getattr(self.guidance, "distillation", None)  # a carv guidance: time encode and teacher too
        if distillation is not None:
            distillation.teacher = TimedTeacher(distillation.teacher, self.phase_clock)
        self.guidance = PhaseTimedGuidance(self.guidance, self.phase_clock, lambda: getattr(self, "carv_k", None))

    def on_train_batch_start(self, batch, batch_idx, unused=0):
        super().on_train_batch_start(batch, batch_idx, unused)
        self.phase_clock.new_step()

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
            if phase in self.phase_clock.last:
                self.log(f"train/time_{phase}", self.phase_clock.last[phase])

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        spent, last = (
            sum(seconds.get(p, 0.0) for p in PHASES) for seconds in (self.phase_clock.total, self.phase_clock.last)
        )
        if out_of_budget(spent, last, self.cfg.max_train_seconds):
            self.trainer.should_stop = True  # Lightning then runs the validation stage once more: the last check


@register_once("carv-dreamfusion-system")
class CarvDreamFusion(AutoKMixin, PhaseTimingMixin, DreamFusion):
    """dreamfusion-system with per-phase wall-clock and optional auto K; use with a carv-*-guidance."""

    @dataclass
    class Config(DreamFusion.Config):
        max_train_seconds: float = 0.0  # training budget: render + guidance + backward seconds (0: no limit)

    cfg: Config


@register_once("carv-magic3d-system")
class CarvMagic3D(AutoKMixin, PhaseTimingMixin, Magic3D):
    """magic3d-system (coarse or mesh refinement stage) with per-phase wall-clock and optional auto K."""

    @dataclass
    class Config(Magic3D.Config):
        max_train_seconds: float = 0.0  # training budget: render + guidance + backward seconds (0: no limit)

    cfg: Config
