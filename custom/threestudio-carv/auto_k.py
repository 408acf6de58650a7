"""`system.carv_auto_k` for the threestudio systems: K re-chosen every N steps from a small variance probe.

Before step s (every carv_auto_every_n_steps steps) the probe renders carv_probe_renders fresh cameras from the
training dataset, draws carv_probe_draws (t, eps) per render from the guidance's own sampler and
back-propagates each draw on its own; carv gives sigma_b^2 and sigma_w^2 (nested ANOVA, or collapsed strata
for stratified draws) and the timed phases a and b; carv.autotune.AutoK sets K to the K* of the cost model.
K of step s is a function of draws made before step s only, so each step stays unbiased. The guidance's
noise_samples_per_render is the initial K.
"""

import time
from dataclasses import dataclass

import torch
from pytorch_lightning.utilities import move_data_to_device

from carv.accounting import CostMeter, CostModel, configuration_ecm
from carv.autotune import AutoK
from carv.stratified_variance import draw_timesteps, grid_components


@dataclass
class AutoKOptions:
    """System options (flat, next to threestudio's own)."""

    carv_auto_k: bool = False  # choose K online (the guidance's noise_samples_per_render is the initial K)
    carv_auto_every_n_steps: int = 50  # steps between variance probes and K choices
    carv_auto_k_max: int = 64  # largest K
    carv_probe_renders: int = 4  # renders per probe (>= 3)
    carv_probe_draws: int = 4  # (t, eps) draws per probe render (even, >= 2)


class AutoKMixin:
    """Adds carv_auto_k to a threestudio system (put it before the system class in the bases)."""

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.carv_auto = None
        if self.cfg.carv_auto_k:
            if self.cfg.carv_probe_renders < 3 or self.cfg.carv_probe_draws < 2 or self.cfg.carv_probe_draws % 2:
                raise ValueError("carv_auto_k needs carv_probe_renders >= 3 and an even carv_probe_draws >= 2")
            k = self.guidance.distillation.config.noise_samples_per_render
            k_max = self.cfg.carv_auto_k_max
            self.carv_auto = AutoK(k_initial=min(k, k_max), k_max=k_max, every=self.cfg.carv_auto_every_n_steps)

    def on_train_batch_start(self, batch, batch_idx, unused=0):
        super().on_train_batch_start(batch, batch_idx, unused)
        if self.carv_auto is None:
            return
        step = self.true_global_step
        if step % self.carv_auto.every == 0:
            self.carv_variance_probe()
        k = self.carv_auto.k_for_step(step)
        self.guidance.distillation.config.noise_samples_per_render = k
        self.log("train/auto_k", float(k))

    def carv_probe_batch(self, clock: CostMeter, k: int):
        """Per-draw parameter gradients [R_b, K, D] and timesteps [R_b, K] of one fresh training batch."""
        distillation = self.guidance.distillation
        batch = move_data_to_device(self.dataset.collate(None), self.device)
        started = time.perf_counter()
        latents = distillation.latents(self(batch)["comp_rgb"])
        clock.add("render", time.perf_counter() - started, latents.shape[0])
        text = self.guidance.text_conditioning(
            self.prompt_utils, batch["elevation"], batch["azimuth"], batch["camera_distances"]
        )
        draws = draw_timesteps(distillation.sampler, latents.shape[0], k, distillation.config.timestep_stratified, None)
        started = time.perf_counter()
        result = distillation.direction(latents.detach(), text, draws=draws, keep_draws=True)
        clock.add("teacher", time.perf_counter() - started, latents.shape[0] * k)
        parameters = [p for p in self.parameters() if p.requires_grad]
        rows = []
        for r in range(latents.shape[0]):
            row = []
            for j in range(k):
                started = time.perf_counter()
                grads = torch.autograd.grad(
                    latents[r : r + 1], parameters, result.draws[r, j : j + 1], retain_graph=True, allow_unused=True
                )
                # one draw's backward traverses the whole batch's graph: a training step's one backward,
                # shared by the batch's renders, so it counts as latents.shape[0] render backwards
                clock.add("backward", time.perf_counter() - started, latents.shape[0])
                row.append(torch.cat([g.reshape(-1) for g in grads if g is not None]))
            rows.append(torch.stack(row))
        return torch.stack(rows).detach(), result.t.cpu(), latents.shape[0]

    def carv_variance_probe(self) -> None:
        """Observe components and costs at the current parameters (the training K is restored after)."""
        distillation = self.guidance.distillation
        k_training, k = distillation.config.noise_samples_per_render, self.cfg.carv_probe_draws
        self.prompt_utils = self.prompt_processor()
        distillation.config.noise_samples_per_render = k
        clock, grids, timesteps = CostMeter(), [], []
        while sum(g.shape[0] for g in grids) < self.cfg.carv_probe_renders:
            g, t, renders_per_batch = self.carv_probe_batch(clock, k)
            grids.append(g)
            timesteps.append(t)
        distillation.config.noise_samples_per_render = k_training
        g, t = torch.cat(grids), torch.cat(timesteps)
        components = grid_components(g, t, distillation.config.timestep_stratified)
        self.carv_auto.observe_components(components)
        self.carv_auto.observe_costs(clock.a, clock.b)
        self.log_probe(components, renders_per_batch, k_training)

    def log_probe(self, components, renders: int, k: int) -> None:
        """sigma_b^2, sigma_w^2, a, b, K* and the reuse ECM of the running (R, K) against threestudio's R=4, K=1."""
        auto = self.carv_auto
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
