"""The Lightning system: one manual-optimisation step = render R views, CARV guidance, backward, Adam.

Randomness of step s comes from generators seeded by (seed, s), so a resumed run draws what the
uninterrupted run would have drawn. The teacher and judge are attached, never checkpointed.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from ..cameras import Cameras
from ..render.volume import render_rays
from ..timing import PhaseClock, out_of_budget, training_time
from ..toyworld import light_directions
from .cameras import CameraBatch, azimuth_start, orbit, train_batch
from .config import scheduled
from .field import VoxelGridField

RENDER_CHUNK_RAYS = 16384


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of training step `step` of a run seeded `seed`."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)


class TextTo3DSystem(pl.LightningModule):
    """A voxel-grid NeRF trained by score distillation (attach guidance and prompts before fitting)."""

    def __init__(self, config: DictConfig):
        super().__init__()
        self.config = config
        self.field = VoxelGridField(config.system.geometry)
        self.automatic_optimization = False
        self.guidance = self.prompts = self.judge = self.auto_k = self.ground_truth = None
        self.clock = PhaseClock()
        self.train_seconds = self.last_step_seconds = 0.0
        self.fidelity_history: list[dict] = []

    def attach(self, guidance=None, prompts=None, judge=None, auto_k=None, ground_truth=None) -> None:
        """The frozen parts: a ScoreDistillation over a TimedTeacher on self.clock, ViewDependentPrompts, a Judge,
        for `noise_samples_per_render: auto` a carv.autotune.AutoKController, and a GroundTruth
        (carv.pipeline.ground_truth) scored beside the judge's fidelity."""
        self.guidance, self.prompts, self.judge = guidance, prompts, judge
        self.auto_k, self.ground_truth = auto_k, ground_truth

    def configuration(self, step: int) -> tuple[int, int]:
        """(R, K) of this step: the config's, or the auto controller's after its probe (timed as training), whose
        choice applies from this step on (the step's cameras are drawn after it)."""
        if self.auto_k is None:
            return self.config.data.batch_size, self.guidance.config.noise_samples_per_render
        from . import probe

        configuration, record = self.auto_k.configuration_for_step(step, lambda *args: probe.auto_k_probe(self, *args))
        if record is not None and self.logger is not None:
            self.logger.log_metrics(probe_metrics(record), step)
        return configuration

    def configure_optimizers(self):
        optimizer = self.config.system.optimizer
        groups = [
            {"params": [self.field.density_grid], "lr": optimizer.args.lr},
            {"params": [self.field.colour_grid], "lr": optimizer.args.lr * optimizer.colour_lr_scale},
        ]
        return torch.optim.Adam(groups, betas=tuple(optimizer.args.betas), eps=optimizer.args.eps)

    def render(self, batch: CameraBatch, *, randomized: bool, generator: torch.Generator | None = None) -> dict:
        """rgb [R, H, W, 3] and opacity [R, H, W, 1] of a camera batch, in chunks of rays."""
        c = self.config.system
        background = torch.tensor(list(c.background.color), device=self.device)
        origins, directions = batch.rays_o.reshape(-1, 3).to(self.device), batch.rays_d.reshape(-1, 3).to(self.device)
        lights = light_directions(batch.cameras).repeat_interleave(batch.size[0] * batch.size[1], dim=0)
        lights = lights.to(self.device)
        parts = [
            render_rays(
                self.field_for(lights[i : i + RENDER_CHUNK_RAYS]),
                origins[i : i + RENDER_CHUNK_RAYS],
                directions[i : i + RENDER_CHUNK_RAYS],
                background,
                radius=c.geometry.radius,
                num_samples=c.renderer.num_samples_per_ray,
                stratified=randomized,
                generator=generator,
            )
            for i in range(0, origins.shape[0], RENDER_CHUNK_RAYS)
        ]
        shape = (len(batch.cameras), *batch.size)
        rgb = torch.cat([p.rgb for p in parts]).reshape(*shape, 3).clamp(0.0, 1.0)
        return {"rgb": rgb, "opacity": torch.cat([p.opacity for p in parts]).reshape(*shape, 1)}

    def update_guidance_schedule(self, step: int) -> None:
        """threestudio's update_step: the timestep range of this step (the sampler re-weights to it)."""
        g = self.config.system.guidance
        low, high = scheduled(g.min_step_percent, step), scheduled(g.max_step_percent, step)
        if (self.guidance.min_step, self.guidance.max_step) != self.guidance.step_range(low, high):
            self.guidance.update_schedule(low, high, self.guidance.grad_clip)

    def field_for(self, lights: torch.Tensor):
        """The radiance field seen by rays with these light directions [N, 3] (shaded or plain albedo)."""
        material = self.config.system.material
        if not material.shading:
            return self.field
        return lambda positions, directions: self.field.shaded(positions, lights, material.ambient)

    def losses(self, out: dict, guidance_out: dict) -> dict:
        """threestudio's weighted terms: lambda_sds * loss_sds, sparsity sqrt(opacity^2 + 0.01), opaque BCE."""
        weights = self.config.system.loss
        opacity = out["opacity"].clamp(1e-3, 1.0 - 1e-3)
        terms = {
            "loss_sds": (weights.lambda_sds, guidance_out["loss_sds"]),
            "loss_sparsity": (weights.lambda_sparsity, (out["opacity"] ** 2 + 0.01).sqrt().mean()),
            "loss_opaque": (weights.lambda_opaque, F.binary_cross_entropy(opacity, opacity)),
        }
        return {name: weight * value for name, (weight, value) in terms.items() if weight > 0}

    def training_step(self, batch, batch_idx):
        started = training_time()
        step, seed = self.global_step, self.config.seed
        self.update_guidance_schedule(step)
        renders, k = self.configuration(step)
        self.clock.new_step()
        cameras = train_batch(
            self.config.data, step_generator(seed, step), renders, step=step, start=azimuth_start(seed)
        )
        generator = step_generator(seed, step, self.device)
        with self.clock.phase("render"):
            out = self.render(cameras, randomized=self.config.system.renderer.randomized, generator=generator)
        with self.clock.phase("guidance"):
            guidance_out = self.guidance(
                out["rgb"], self.prompts.conditioning(cameras.view_classes), generator=generator, k=k
            )
        losses = self.losses(out, guidance_out)
        loss = sum(losses.values())
        optimizer = self.optimizers()
        with self.clock.phase("backward"):
            self.manual_backward(loss)
        with self.clock.phase("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        self.last_step_seconds = training_time() - started
        self.train_seconds += self.last_step_seconds
        if self.auto_k is not None:
            self.auto_k.observe_step(self.clock.last, len(cameras.cameras), k)
        auto = {"auto_k": k, "auto_renders": len(cameras.cameras)} if self.auto_k is not None else {}
        self.log_step(loss, losses, {**guidance_out, **auto})

    def log_step(self, loss: torch.Tensor, losses: dict, guidance_out: dict) -> None:
        scalars = {
            f"train/{k}": float(v)
            for k, v in guidance_out.items()
            if k != "loss_sds" and torch.as_tensor(v).numel() == 1
        }
        scalars.update({f"train/{k}": v.item() for k, v in losses.items()})
        scalars.update(
            {f"time/{k}": v for k, v in self.clock.last.items()}, **{"time/train_seconds": self.train_seconds}
        )
        self.log_dict(scalars, on_step=True, on_epoch=False)
        self.log("loss", loss.item(), prog_bar=True, on_step=True, on_epoch=False, logger=False)

    def render_views(self, batch: CameraBatch) -> torch.Tensor:
        """Deterministic renders [N, H, W, 3] of evaluation views, one view at a time."""
        return self.render_outputs(batch)["rgb"]

    @torch.no_grad()
    def render_outputs(self, batch: CameraBatch) -> dict:
        """Deterministic rgb [N, H, W, 3] and opacity [N, H, W, 1] of evaluation views, one view at a time."""
        was_training = self.training
        self.eval()
        outs = [self.render(batch_slice(batch, i), randomized=False) for i in range(len(batch.cameras))]
        self.train(was_training)
        return {key: torch.cat([out[key] for out in outs]).cpu() for key in ("rgb", "opacity")}

    def fidelity(self, n_views: int) -> float:
        """The judge's mean prompt fidelity over n evenly spaced views at the evaluation elevation."""
        views = self.render_views(orbit(self.config.data, n_views, endpoint=False))
        return self.judge.fidelity_over_views(views, self.config.system.prompt_processor.prompt)[0]

    def record_fidelity(self) -> None:
        """Add (step, training seconds, fidelity) to the history; evaluation time is off the training clock."""
        if self.judge is None or self.config.evaluation.every_n_steps <= 0:
            return
        value = self.fidelity(self.config.evaluation.n_views)
        entry = {"step": self.global_step, "train_seconds": self.train_seconds, "fidelity": value}
        if self.ground_truth is not None:  # carv.pipeline.ground_truth.GroundTruth, also off the clock
            entry["ground_truth"] = self.ground_truth.score_system(self)
        self.fidelity_history.append(entry)
        if self.logger is not None:
            truth = {f"eval/ground_truth_{k}": v for k, v in entry.get("ground_truth", {}).items() if k != "views"}
            self.logger.log_metrics(
                {"eval/fidelity": value, "eval/train_seconds": self.train_seconds, **truth}, self.global_step
            )

    def on_train_start(self) -> None:
        if self.global_step == 0:
            self.record_fidelity()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        every = self.config.evaluation.every_n_steps
        out_of_time = out_of_budget(self.train_seconds, self.last_step_seconds, self.config.trainer.max_train_seconds)
        last = out_of_time or self.global_step == self.config.trainer.max_steps  # the final scene is checked too
        if every > 0 and (self.global_step % every == 0 or last):
            self.record_fidelity()
        if out_of_time:
            self.trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["carv"] = {
            "train_seconds": self.train_seconds,
            "phase_seconds": self.clock.total,
            "fidelity_history": self.fidelity_history,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("carv", {})
        self.train_seconds = state.get("train_seconds", 0.0)
        self.clock.total = dict(state.get("phase_seconds", {}))
        self.fidelity_history = list(state.get("fidelity_history", []))


def probe_metrics(record: dict) -> dict:
    """An auto probe's record as train/carv_<name> scalars (the step itself is the logger's)."""
    return {f"train/carv_{name}": float(value) for name, value in record.items() if name != "step"}


def batch_slice(batch: CameraBatch, i: int) -> CameraBatch:
    """Camera i of a batch as a batch of one."""
    cams = batch.cameras
    one = Cameras(*(getattr(cams, k)[i : i + 1] for k in ("elevation", "azimuth", "distance", "fovy", "c2w")))
    return CameraBatch(one, batch.rays_o[i : i + 1], batch.rays_d[i : i + 1])
