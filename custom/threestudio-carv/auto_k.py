"""`noise_samples_per_render: auto` for the threestudio systems: carv.autotune.AutoKController with a probe of
threestudio's own renders.

The option set is the CPU pipeline's (carv.autotune.AutoKOptions on system.guidance). Before step s, at multiples
of auto_every_n_steps, the probe renders fresh cameras from the training dataset (batches until auto_probe_size
renders), draws its (t, eps) per render by the training rule and back-propagates each draw on its own
(carv.probe); the controller sets K to the K* of the cost model, with a and b from the phase clock of each step.
K of step s is a function of draws made before step s only, so each step stays unbiased.
"""

import torch
from pytorch_lightning.utilities import move_data_to_device

from carv.accounting import CostMeter, CostModel, configuration_ecm
from carv.autotune import AutoKController, AutoKOptions, ProbeResult, auto_requested
from carv.probe import per_draw_gradients, probe_directions
from carv.stratified_variance import grid_components


def auto_k_options(guidance_cfg) -> AutoKOptions:
    """The AutoKOptions of a carv guidance config."""
    return AutoKOptions(**{name: getattr(guidance_cfg, name) for name in AutoKOptions.__dataclass_fields__})


class AutoKMixin:
    """`auto` K for a threestudio system (put it before the system class in the bases)."""

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.carv_auto, self.carv_k = None, None
        cfg = self.guidance.cfg
        if auto_requested(getattr(cfg, "noise_samples_per_render", 1)):
            self.carv_auto = AutoKController(auto_k_options(cfg), cfg.timestep_strata)

    def on_train_batch_start(self, batch, batch_idx, unused=0):
        super().on_train_batch_start(batch, batch_idx, unused)
        if self.carv_auto is None:
            return
        self.carv_k, probed = self.carv_auto.k_for_step(self.true_global_step, self.carv_variance_probe)
        self.phase_clock.new_step()  # the probe's phases are not the step's
        self.log("train/auto_k", float(self.carv_k))
        if probed is not None:  # probe values on probe steps only
            self.log_probe(probed.components, batch["elevation"].shape[0], self.carv_k)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        super().on_train_batch_end(outputs, batch, batch_idx)
        if self.carv_auto is not None:
            self.carv_auto.observe_step(self.phase_clock.last, batch["elevation"].shape[0], self.carv_k)

    def carv_probe_batch(self, meter: CostMeter, k: int):
        """Per-draw parameter gradients [R_b, K, D] and timesteps [R_b, K] of one fresh training batch."""
        distillation = self.guidance.distillation
        batch = move_data_to_device(self.dataset.collate(None), self.device)
        with meter.timed("render", batch["elevation"].shape[0]):
            latents = distillation.latents(self(batch)["comp_rgb"])
        text = self.guidance.text_conditioning(
            self.prompt_utils, batch["elevation"], batch["azimuth"], batch["camera_distances"]
        )
        result = probe_directions(distillation, latents, text, k, None, meter)
        parameters = [p for p in self.parameters() if p.requires_grad]
        rows = [latents[r : r + 1] for r in range(latents.shape[0])]
        # one draw's backward traverses the whole batch's graph: it counts as latents.shape[0] render backwards
        g = per_draw_gradients(rows, result.draws, parameters, meter, renders_per_backward=latents.shape[0])
        return g, result.t.cpu()

    def carv_variance_probe(self, renders: int, draws: int, step: int) -> ProbeResult:
        """Components and costs at the current parameters, from batches of fresh renders."""
        self.prompt_utils = self.prompt_processor()
        meter, grids, timesteps = CostMeter(), [], []
        while sum(g.shape[0] for g in grids) < renders:
            g, t = self.carv_probe_batch(meter, draws)
            grids.append(g)
            timesteps.append(t)
        stratified = self.guidance.distillation.sampler.stratified
        return ProbeResult(grid_components(torch.cat(grids), torch.cat(timesteps), stratified), meter.a, meter.b)

    def log_probe(self, components, renders: int, k: int) -> None:
        """sigma_b^2, sigma_w^2, a, b, K* and the reuse ECM of the running (R, K) against threestudio's R=4, K=1."""
        auto = self.carv_auto.auto
        costs = CostModel(auto.a, auto.b)
        sigmas = (max(components.sigma_b2, 0.0), components.sigma_w2)
        values = {
            "sigma_b2": components.sigma_b2,
            "sigma_w2": components.sigma_w2,
            "cost_a": auto.a,
            "cost_b": auto.b,
            "k_star": float(auto.k_star()),
            "ecm_reuse_vs_baseline": configuration_ecm(costs, sigmas, sigmas, renders, k, baseline_renders=4),
        }
        # straight to the loggers: self.log would repeat these values on every later step until the next probe
        metrics = {f"train/carv_{name}": float(value) for name, value in values.items()}
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)
