"""`noise_samples_per_render: auto` for the threestudio systems: carv.autotune.AutoKController with a probe of
threestudio's own renders, choosing R (the training dataset's batch size) and K.

The option set is the CPU pipeline's (carv.autotune.AutoKOptions on system.guidance). Before step s, at multiples
of auto_every_n_steps, the probe renders fresh cameras from the training dataset (batches until auto_probe_size
renders, with independent azimuths whatever the training rule), draws its (t, eps) per render by the training
rule and back-propagates each draw on its own (carv.probe); the first probe also measures c(n) through the run's
guidance on its latents (carv.guidance_cost). The controller picks the (R, K) of least Var C within the measured
cost of the baseline step, never a batch size whose cameras threestudio collates wrongly
(renders_without_valid_cameras).

When the choice is made (on_train_batch_start of step s) Lightning holds the batch of step s and has already
collated that of step s + 1 (its fetcher prefetches one batch), so the new batch size first reaches the batch of
step s + 2: the controller runs the pair, R and K together, from step s + 2 on (lag 2). The batch size is set
after threestudio's own dataset update_step, every step, so it also overrides a data.batch_size schedule.
R and K of step s are functions of draws made before step s only, so each step stays unbiased.
"""

import random
import warnings
from contextlib import contextmanager

import torch
from pytorch_lightning.utilities import move_data_to_device

from carv.accounting import CostMeter
from carv.autotune import AutoKController, AutoKOptions, ProbeResult, auto_requested
from carv.guidance_cost import guidance_cost_curve
from carv.probe import per_draw_gradients, probe_directions
from carv.stratified_variance import grid_components

LIGHTNING_PREFETCH = 1  # batches Lightning's fetcher collates beyond the one a step holds (an iterable dataset)


@contextmanager
def independent_azimuths(dataset):
    """The dataset collates independent azimuths within the block: the model takes sigma_b^2 as one render's
    variance, which the spread of a batch drawn one azimuth per stratum (threestudio's batch_uniform_azimuth, the
    carv datamodule's stratified and golden rules) overstates by up to R / (R - 1). The rules are restored after."""
    cfg = dataset.cfg
    saved = {name: cfg[name] for name in ("batch_uniform_azimuth", "carv_azimuth_sampling") if name in cfg}
    cfg.batch_uniform_azimuth = False
    if "carv_azimuth_sampling" in saved:
        cfg.carv_azimuth_sampling = "threestudio"
    try:
        yield dataset
    finally:
        for name, value in saved.items():
            cfg[name] = value


def collates_one_camera_at_a_time(dataset) -> bool:
    """The carv datamodule's stratified and golden rules build a batch from single-camera collates."""
    return getattr(getattr(dataset, "cfg", None), "carv_azimuth_sampling", "threestudio") != "threestudio"


def cameras_orthonormal(batch: dict, tolerance: float = 1e-4) -> bool:
    """Whether every camera-to-world rotation of a batch is orthonormal. threestudio 0.2.3's random-camera collate
    calls torch.cross without dim, which takes the first axis of size 3: at batch_size 3 that is the batch axis, and
    the cameras' right and up vectors mix the batch's cameras (their views are skewed, the step's gradient has
    another expectation than at any other R)."""
    rotation = batch["c2w"][:, :3, :3].double()
    identity = torch.eye(3, dtype=rotation.dtype, device=rotation.device)
    return bool(torch.allclose(rotation.transpose(1, 2) @ rotation, identity.expand_as(rotation), atol=tolerance))


def renders_without_valid_cameras(dataset, r_max: int) -> frozenset[int]:
    """The batch sizes R in 2..r_max whose collated cameras are not rotations (cameras_orthonormal: on threestudio
    0.2.3, R = 3). Found by collating one batch of each size; the dataset's batch size, its last fovy and
    projection and torch's and Python's random states are as they were afterwards, so training draws what it would
    have drawn."""
    if collates_one_camera_at_a_time(dataset):
        return frozenset()
    saved = {name: getattr(dataset, name) for name in ("batch_size", "fovy", "proj_mtx") if hasattr(dataset, name)}
    python_state = random.getstate()
    broken = set()
    try:
        with torch.random.fork_rng(devices=[]):
            for renders in range(2, r_max + 1):
                dataset.batch_size = renders
                if not cameras_orthonormal(dataset.collate(None)):
                    broken.add(renders)
    finally:
        for name, value in saved.items():
            setattr(dataset, name, value)
        random.setstate(python_state)
    return frozenset(broken)


def auto_k_options(guidance_cfg) -> AutoKOptions:
    """The AutoKOptions of a carv guidance config."""
    return AutoKOptions(**{name: getattr(guidance_cfg, name) for name in AutoKOptions.__dataclass_fields__})


class AutoKMixin:
    """`auto` R and K for a threestudio system (put it before the system class in the bases)."""

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.carv_auto, self.carv_k = None, None
        self.carv_auto_requested = auto_requested(getattr(self.guidance.cfg, "noise_samples_per_render", 1))

    def carv_controller(self, renders_initial: int) -> AutoKController:
        """The controller, made at the first step (whose batch tells the R in force until the first choice)."""
        if self.carv_auto is None:
            cfg = self.guidance.cfg
            lag = 1 + LIGHTNING_PREFETCH
            options = auto_k_options(cfg)
            excluded = renders_without_valid_cameras(self.dataset, options.auto_r_max)
            self.carv_auto = AutoKController(options, cfg.timestep_strata, renders_initial, lag, excluded)
        return self.carv_auto

    def on_train_batch_start(self, batch, batch_idx, unused=0):
        super().on_train_batch_start(batch, batch_idx, unused)  # threestudio's update_step sets its batch size
        if not self.carv_auto_requested:
            return
        renders = batch["elevation"].shape[0]
        controller = self.carv_controller(renders)
        (planned, self.carv_k), record = controller.configuration_for_step(
            self.true_global_step, self.carv_variance_probe
        )
        self.dataset.batch_size = controller.renders_ahead  # the batches collated from now on
        self.phase_clock.new_step()  # the probe's phases are not the step's
        if planned != renders:
            warnings.warn(
                f"auto planned R = {planned} for step {self.true_global_step}, the batch has {renders}", stacklevel=2
            )
        self.log("train/auto_k", float(self.carv_k))
        self.log("train/auto_renders", float(renders))
        if record is not None:  # probe values on probe steps only
            self.log_probe(record)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        super().on_train_batch_end(outputs, batch, batch_idx)
        if self.carv_auto is not None:
            self.carv_auto.observe_step(self.phase_clock.last, batch["elevation"].shape[0], self.carv_k)

    def carv_probe_batch(self, meter: CostMeter, k: int):
        """Per-draw parameter gradients [R_b, K, D], timesteps [R_b, K], latents and text of one fresh batch."""
        distillation = self.guidance.distillation
        with independent_azimuths(self.dataset):
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
        return g, result.t.cpu(), latents, text

    def carv_variance_probe(self, renders: int, draws: int, step: int, curve_draws: int = 0) -> ProbeResult:
        """Components and costs at the current parameters, from batches of fresh renders; with curve_draws > 0
        also c(n) up to curve_draws through the run's guidance, on the last batch's first latent."""
        self.prompt_utils = self.prompt_processor()
        meter, grids, timesteps = CostMeter(), [], []
        while sum(g.shape[0] for g in grids) < renders:
            g, t, latents, text = self.carv_probe_batch(meter, draws)
            grids.append(g)
            timesteps.append(t)
        stratified = self.guidance.distillation.sampler.stratified
        components = grid_components(torch.cat(grids), torch.cat(timesteps), stratified)
        curve = None
        if curve_draws > 0:
            curve = guidance_cost_curve(self.guidance.distillation, text, latents, max_draws=curve_draws)
        return ProbeResult(components, meter.a, meter.b, curve)

    def log_probe(self, record: dict) -> None:
        """The probe's record: chosen R and K, sigma_b^2, sigma_w^2, a, b, the budget, the predicted ECM of the
        choice against the baseline under the measured model, and the linear model's choice (train/carv_<name>)."""
        # straight to the loggers: self.log would repeat these values on every later step until the next probe
        metrics = {f"train/carv_{name}": float(value) for name, value in record.items() if name != "step"}
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)
