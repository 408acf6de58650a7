"""Per-draw parameter-space gradients of the CPU pipeline at a checkpoint, and the phase costs a and b.

Adapter: renders, encodes and back-propagates through the pipeline's system; all statistics are carv's.
Each render of an R x K grid is rendered and encoded once; each of its K weighted directions
f_rk = rho w (eps_hat - eps) is back-propagated on its own (one backward per draw), giving
G_rk = J_r^T f_rk. a = render + encode + one backward (per render), b = one guided teacher evaluation.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
from omegaconf import OmegaConf

from ..accounting import CostMeter
from ..autotune import ProbeResult
from ..guidance_cost import guidance_cost_curve
from ..probe import flat_gradient, per_draw_gradients, probe_directions
from ..score_distillation import ScoreDistillation
from ..stratified_variance import grid_components
from ..variance_model import Grid, Setting
from .cameras import train_batch
from .config import guidance_options, scheduled
from .system import batch_slice

CAMERA_RULES = {
    "training": {},  # data.* as the run trained
    "iid": {"carv_azimuth_sampling": "threestudio", "batch_uniform_azimuth": False},  # independent cameras
    "threestudio": {
        "carv_azimuth_sampling": "threestudio",
        "batch_uniform_azimuth": True,
    },  # a jittered draw per stratum
    "stratified": {"carv_azimuth_sampling": "stratified"},  # one per stratum, one shared uniform offset
}
"""How the probe draws a batch's azimuths (data overrides); the other camera variables are always independent."""


class Probe:
    """The system, guidance and prompts of one run at one checkpoint, with a cost meter."""

    def __init__(self, system, guidance: ScoreDistillation, prompts, step: int):
        self.system, self.guidance, self.prompts, self.step = system, guidance, prompts, step
        self.meter = CostMeter()
        self.parameters = [p for p in system.parameters() if p.requires_grad]
        self.distillations: dict[tuple[Setting, int], ScoreDistillation] = {}

    def distillation(self, setting: Setting, k: int) -> ScoreDistillation:
        """A ScoreDistillation of this setting and K over the same teacher (kept: adaptive state persists)."""
        key = (setting, k if setting.proposal != "adaptive" else 0)
        if key not in self.distillations:
            g = self.system.config.system.guidance
            options = replace(
                guidance_options(self.system.config),
                timestep_proposal=setting.proposal,
                timestep_stratified=setting.stratified,
                timestep_strata=0,
                min_step_percent=scheduled(g.min_step_percent, self.step),
                max_step_percent=scheduled(g.max_step_percent, self.step),
            )
            self.distillations[key] = ScoreDistillation(self.guidance.teacher, options)
        return self.distillations[key]

    def render(self, renders: int, generator: torch.Generator, grad: bool = True, camera_rule: str = "training"):
        """Latents of R random training cameras, one [1, C, h, w] graph per render (a backward of one render
        then costs one render's backward), and their text conditioning. camera_rule: a key of CAMERA_RULES."""
        data = OmegaConf.merge(self.system.config.data, {"batch_size": renders, **CAMERA_RULES[camera_rule]})
        golden = data.get("carv_azimuth_sampling") == "golden"  # each call a new run: its own uniform start
        start = torch.rand(1, generator=generator, dtype=torch.float64).item() if golden else 0.0
        cameras = train_batch(data, generator, start=start)
        randomized = self.system.config.system.renderer.randomized
        started = time.perf_counter()
        with torch.set_grad_enabled(grad):
            latents = [
                self.guidance.latents(
                    self.system.render(batch_slice(cameras, r), randomized=randomized, generator=generator)["rgb"],
                    generator,
                )
                for r in range(renders)
            ]
        if grad:  # a is the cost of a training render (forward with graph); no-grad warm-up renders are cheaper
            self.meter.add("render", time.perf_counter() - started, renders)
        return latents, self.prompts.conditioning(cameras.view_classes)

    def directions(self, setting, latents, text, k: int, generator, keep_draws: bool = True):
        """RenoiseResult of K draws per render (the training rule; stratified: one stratum per draw)."""
        distillation = self.distillation(setting, k)
        return probe_directions(distillation, torch.cat(latents), text, k, generator, self.meter, keep_draws)

    def warm_up(self, setting: Setting, renders: int, k: int, batches: int, generator) -> None:
        """Feed the adaptive proposal with draws on other renders than the grid's (no-op for fixed proposals)."""
        if setting.proposal != "adaptive":
            return
        for _ in range(batches):
            latents, text = self.render(renders, generator, grad=False)
            self.directions(setting, latents, text, k, generator, keep_draws=False)

    def grid(
        self,
        setting: Setting,
        renders: int,
        k: int,
        generator: torch.Generator,
        progress=None,
        camera_rule: str = "training",
    ) -> Grid:
        """Per-draw parameter gradients G_rk [R, K, D] of one setting on fresh renders."""
        latents, text = self.render(renders, generator, camera_rule=camera_rule)
        result = self.directions(setting, latents, text, k, generator)
        g = per_draw_gradients(latents, result.draws, self.parameters, self.meter, progress=progress)
        unweighted = g.pow(2).sum(dim=2) / result.weight.to(g).pow(2)
        return Grid(g, result.t.cpu(), result.weight.cpu(), result.sq_norm.cpu(), unweighted.cpu())

    def step_gradient(
        self, setting: Setting, renders: int, k: int, generator: torch.Generator, camera_rule: str = "training"
    ) -> torch.Tensor:
        """One whole per-step estimate mean_r J_r^T d_r [D] (one backward per render, as in training)."""
        latents, text = self.render(renders, generator, camera_rule=camera_rule)
        result = self.directions(setting, latents, text, k, generator, keep_draws=False)
        objective = sum((z * d).sum() for z, d in zip(latents, result.direction.unsqueeze(1), strict=True)) / renders
        return flat_gradient(objective, self.parameters, None).detach()


def auto_k_probe(system, renders: int, draws: int, step: int, curve_draws: int = 0) -> ProbeResult:
    """The probe of `noise_samples_per_render: auto` at step: the training guidance (adaptive state included) on
    fresh renders, with its own generator, so no draw of it enters a step; with curve_draws > 0 also c(n) up to
    curve_draws, measured through the training guidance on one more (no-grad) render of the probe.

    The probe's renders have independent azimuths, whatever the run's rule: the model takes sigma_b^2 as the
    variance of one render's gradient, which the spread of R renders drawn one per azimuth stratum (the training
    default, batch_uniform_azimuth) overstates by up to R / (R - 1), as in `carv variance`'s grids."""
    config = system.config.system.guidance
    setting = Setting(config.timestep_proposal, bool(config.timestep_stratified))
    probe = Probe(system, system.guidance, system.prompts, step)
    for key in ((setting, 0), (setting, draws)):
        probe.distillations[key] = system.guidance
    generator = torch.Generator().manual_seed(system.config.seed * 1_000_003 + step + 500_009)
    grid = probe.grid(setting, renders, draws, generator, camera_rule="iid")  # the model's cameras (docstring)
    curve = None
    if curve_draws > 0:
        latents, text = probe.render(1, generator, grad=False)
        curve = guidance_cost_curve(system.guidance, text, latents[0], max_draws=curve_draws)
    return ProbeResult(grid_components(grid.g, grid.t, setting.stratified), probe.meter.a, probe.meter.b, curve)
