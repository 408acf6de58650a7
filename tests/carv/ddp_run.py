"""A tiny distillation run for Lightning's DDP: the real ScoreDistillation (adaptive proposal) and AutoKController.

Each rank renders its own views (a shared learnable image plus rank-specific noise, like cameras of its own),
probes them for auto's variance components, and reports rank-specific costs (a slow teacher on rank 1, from a
fake clock, so the ranks' own K* differ for certain). After fitting, each rank writes rank<i>.pt: its proposal pmf,
K history and reduced probe results, plus its local observations (recorded before any reduction) for replay.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from carv.accounting import CostMeter
from carv.autotune import AutoKController, AutoKOptions, ProbeResult
from carv.conditioning import TextConditioning
from carv.cost_curve import TeacherCostCurve, doubling_ladder
from carv.diffusion.teacher import load_teacher
from carv.probe import per_draw_gradients, probe_directions
from carv.score_distillation import ScoreDistillation, ScoreDistillationConfig
from carv.stratified_variance import grid_components
from carv.testing.teachers import MAX_TOKENS, TEXT_WIDTH

SIDE = 16  # render side in pixels (the tiny teacher's native resolution)
RENDERS = 2  # R per training step
FAKE_COSTS = ((1.0, 0.02), (1.0, 1.0))  # (a, b) seconds per rank: rank 1's teacher is 50x slower
OPTIONS = AutoKOptions(auto_every_n_steps=2, auto_k_initial=2, auto_k_max=16, auto_probe_size=3)
GUIDANCE = ScoreDistillationConfig(timestep_proposal="adaptive", adaptive_bins=10, guidance_scale=7.5)


def rank_generator(rank: int, step: int, stream: int) -> torch.Generator:
    """Randomness of one rank's step (stream 0: training, 1: probe): the ranks never share draws."""
    return torch.Generator().manual_seed(1_000_003 * rank + 1009 * step + stream)


def recording(update, log: list):
    """sampler.update that first records the local (t, ||f||^2) it is given (before any reduction)."""

    def update_and_record(t: torch.Tensor, sq_norms: torch.Tensor) -> None:
        log.append((t.detach().cpu().clone(), sq_norms.detach().cpu().clone()))
        update(t, sq_norms)

    return update_and_record


class TinyDistillationRun(pl.LightningModule):
    def __init__(self, teacher_folder: str, out_dir: str):
        super().__init__()
        self.teacher_folder, self.out_dir = teacher_folder, out_dir
        self.logits = torch.nn.Parameter(torch.zeros(1, SIDE, SIDE, 3))

    def setup(self, stage: str) -> None:
        torch.set_num_threads(1)
        self.distillation = ScoreDistillation(load_teacher(self.teacher_folder), GUIDANCE)
        self.local = {"draws": [], "probes": [], "phases": []}
        sampler = self.distillation.sampler
        sampler.update = recording(sampler.update, self.local["draws"])
        embeddings = torch.randn(2, 1, MAX_TOKENS, TEXT_WIDTH, generator=torch.Generator().manual_seed(7))
        self.text = TextConditioning(embeddings[0], embeddings[1])  # the same prompt on every rank
        self.controller = AutoKController(OPTIONS)
        self.reduced_probes = []  # what the controller observed: the probes reduced across ranks
        observe = self.controller.observe_probe
        self.controller.observe_probe = lambda result: (self.reduced_probes.append(result), observe(result))[1]

    def renders(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """rgb [n, SIDE, SIDE, 3] in (0, 1): the shared image seen through this rank's own noise."""
        return torch.sigmoid(self.logits + torch.randn(n, SIDE, SIDE, 3, generator=generator))

    def probe(self, renders: int, draws: int, step: int, curve_draws: int) -> ProbeResult:
        """Per-draw gradients of fresh renders -> components; the costs from this rank's fake clock."""
        generator = rank_generator(self.global_rank, step, 1)
        latents = self.distillation.latents(self.renders(renders, generator), generator)
        result = probe_directions(self.distillation, latents, self.text, draws, generator, CostMeter())
        rows = [latents[r : r + 1] for r in range(renders)]
        g = per_draw_gradients(rows, result.draws, [self.logits], CostMeter())
        a, b = FAKE_COSTS[self.global_rank]
        curve = TeacherCostCurve.linear(b, doubling_ladder(curve_draws)) if curve_draws else None  # fake clock
        probed = ProbeResult(grid_components(g, result.t.cpu(), stratified=False), a, b, curve)
        self.local["probes"].append(probed)
        return probed

    def training_step(self, batch, batch_idx):
        step = self.global_step
        (renders, k), _ = self.controller.configuration_for_step(step, self.probe)
        generator = rank_generator(self.global_rank, step, 0)
        out = self.distillation(self.renders(renders, generator), self.text, generator=generator, k=k)
        a, b = FAKE_COSTS[self.global_rank]
        phases = {"render": a * renders, "teacher": b * renders * k}
        self.local["phases"].append(phases)
        self.controller.observe_step(phases, renders, k)
        return out["loss_sds"]

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(list(range(64)), batch_size=1)

    def on_train_end(self) -> None:
        torch.save(
            {
                "pmf": self.distillation.sampler.proposal_pmf(),
                "k": [(entry["renders"], entry["k"]) for entry in self.controller.history],  # (R, K) per step
                "probes": self.reduced_probes,
                "logits": self.logits.detach().clone(),
                "local": self.local,
            },
            Path(self.out_dir) / f"rank{self.global_rank}.pt",
        )


def fit(teacher_folder: Path, out_dir: Path, steps: int, devices: int = 2) -> list[dict]:
    """Fit on `devices` gloo CPU ranks (Lightning's ddp_fork: no re-import per rank) and read back every rank's file."""
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_fork" if devices > 1 else "auto",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(TinyDistillationRun(str(teacher_folder), str(out_dir)))
    return [torch.load(out_dir / f"rank{rank}.pt", weights_only=False) for rank in range(devices)]
