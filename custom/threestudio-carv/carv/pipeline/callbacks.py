"""The runner's Lightning callbacks: ckpts/last.ckpt kept current, the whole run's clock, an honest progress bar."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytorch_lightning as pl
from tqdm.auto import tqdm


def save_checkpoint(trainer: pl.Trainer, path: Path) -> float:
    """trainer.save_checkpoint to path via a temporary file, so that a kill mid-save leaves the previous one; seconds."""
    started = time.perf_counter()
    partial = path.with_name(path.name + ".partial")
    trainer.save_checkpoint(partial)
    os.replace(partial, path)
    return time.perf_counter() - started


class LastCheckpoint(pl.Callback):
    """Rewrites `path` every `every_n_steps` steps and whenever `every_seconds` of wall-clock passed since the last
    save (0 turns either off), so that a run killed mid-way can be resumed; `seconds` lists each save's cost."""

    def __init__(self, path: Path, every_n_steps: int = 0, every_seconds: float = 0.0):
        self.path, self.every_n_steps, self.every_seconds = Path(path), every_n_steps, every_seconds
        self.saved_at = time.perf_counter()
        self.seconds: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.saved_at = time.perf_counter()

    def due(self, step: int, now: float) -> bool:
        by_steps = self.every_n_steps > 0 and step % self.every_n_steps == 0
        return by_steps or (self.every_seconds > 0 and now - self.saved_at >= self.every_seconds)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step < trainer.max_steps and self.due(trainer.global_step, time.perf_counter()):
            self.save(trainer)

    def save(self, trainer: pl.Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.seconds.append(save_checkpoint(trainer, self.path))
        self.saved_at = time.perf_counter()


class RunClock(pl.Callback):
    """This process's share of the run (steps, training and phase seconds since fit began) and the wall-clock of the
    whole run: that of the processes up to the checkpoint this one resumed from (kept in checkpoints), plus this one."""

    def __init__(self, started: float):
        self.started = started  # time.perf_counter() when this process began the run
        self.before = 0.0
        self.start_step, self.start_train, self.start_phases = 0, 0.0, {}

    def state_dict(self) -> dict:
        return {"wall_seconds": self.before + self.elapsed()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.before = float(state_dict.get("wall_seconds", 0.0))

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step, self.start_train = trainer.global_step, pl_module.train_seconds
        self.start_phases = dict(pl_module.clock.total)

    def this_process(self, pl_module) -> dict:
        """Training and phase seconds of this process only."""
        phases = {k: v - self.start_phases.get(k, 0.0) for k, v in pl_module.clock.total.items()}
        return {"train": pl_module.train_seconds - self.start_train, **phases}


class ProgressBar(pl.Callback):
    """tqdm over the steps up to trainer.max_steps, or over the training seconds of a budget (compare), starting
    where a resumed run starts; `label` says which run is training."""

    def __init__(self, label: str, budget_seconds: float = 0.0):
        self.label, self.budget = label, budget_seconds
        self.bar = None

    def position(self, trainer, pl_module) -> float:
        return pl_module.train_seconds if self.budget > 0 else trainer.global_step

    def on_train_start(self, trainer, pl_module) -> None:
        if self.budget > 0:
            layout = (
                "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:g} s of training [{elapsed}<{remaining}{postfix}]"
            )
            total, unit = self.budget, "s"
        else:
            layout, total, unit = None, trainer.max_steps, "step"
        start = min(self.position(trainer, pl_module), total)
        self.bar = tqdm(total=total, initial=start, desc=self.label, unit=unit, bar_format=layout, dynamic_ncols=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = float(trainer.progress_bar_metrics.get("loss", math.nan))
        postfix = {"step": trainer.global_step} if self.budget > 0 else {}
        self.bar.set_postfix(postfix | {"loss": f"{loss:.3g}"}, refresh=False)
        self.bar.update(min(self.position(trainer, pl_module), self.bar.total) - self.bar.n)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_train_end(trainer, pl_module)
