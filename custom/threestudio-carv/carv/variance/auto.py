"""`noise_samples_per_render: auto` for the CPU pipeline: a Lightning callback around carv.autotune.AutoK.

Every `every` steps, before the step draws anything, a small probe (R_p renders x K_p draws of per-draw
parameter gradients, its own generator) re-estimates sigma_b^2 and sigma_w^2; a and b come from the phase
clock of the steps already made (and from the probe at step 0). K of step s is thus a function of draws
made before step s only, never of the draws step s averages: given the past, each step is an unbiased
estimate of the SDS gradient, whatever K the rule picks. The probe's wall-clock counts as training time.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch

from ..autotune import AutoK
from ..stratified_variance import grid_components
from .probe import Probe, Setting

AUTO = "auto"


def auto_requested(guidance_config) -> bool:
    return str(guidance_config.noise_samples_per_render) == AUTO


def auto_k_of(guidance_config) -> AutoK:
    """AutoK from system.guidance's auto_* options."""
    g = guidance_config
    return AutoK(k_initial=g.auto_k_initial, k_min=1, k_max=g.auto_k_max, every=g.auto_every_n_steps, smoothing=0.5)


def step_costs(clock_last: dict, renders: int, draws_per_render: int) -> tuple[float, float] | None:
    """(a, b) of the last step's phases: render + encode + backward per render, teacher per draw."""
    if "teacher" not in clock_last:
        return None
    a = sum(clock_last.get(phase, 0.0) for phase in ("render", "encode", "backward")) / renders
    return a, clock_last["teacher"] / (renders * draws_per_render)


class AutoNoiseSamples(pl.Callback):
    """Sets guidance K to the K* of AutoK before each step; probes components every `every` steps."""

    def __init__(self, auto: AutoK, probe_size: int = 4, seed: int = 0):
        if probe_size < 3:
            raise ValueError(f"auto_probe_size must be >= 3 (renders and draws of the probe), got {probe_size}")
        self.auto, self.probe_size, self.seed = auto, probe_size + probe_size % 2, seed
        self.history: list[dict] = []

    def probe(self, module, step: int) -> None:
        """Components (and, before any step, costs) from a probe of the scene as it is now."""
        started = time.perf_counter()
        config = module.config.system.guidance
        setting = Setting(config.timestep_proposal, bool(config.timestep_stratified))
        probe = Probe(module, module.guidance, module.prompts, step)
        for key in ((setting, 0), (setting, self.probe_size)):  # the training proposal (adaptive state included)
            probe.distillations[key] = module.guidance
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 500_009)
        grid = probe.grid(setting, self.probe_size, self.probe_size, generator)
        self.auto.observe_components(grid_components(grid.g, grid.t, setting.stratified))
        if self.auto.a is None:
            self.auto.observe_costs(probe.meter.a, probe.meter.b)
        module.train_seconds += time.perf_counter() - started

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        step = module.global_step
        if step % self.auto.every == 0:
            self.probe(module, step)
        k = self.auto.k_for_step(step)
        module.guidance.config.noise_samples_per_render = k
        self.history.append({"step": step, "k": k})
        if trainer.logger is not None:
            trainer.logger.log_metrics({"train/auto_k": k}, step)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        costs = step_costs(
            module.clock.last, module.config.data.batch_size, module.guidance.config.noise_samples_per_render
        )
        if costs is not None and costs[1] > 0:
            self.auto.observe_costs(*costs)
