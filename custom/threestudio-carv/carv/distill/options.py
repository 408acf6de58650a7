"""The sizes of one `carv distill` run (no torch import: `carv --help` builds its parser from these defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DistillOptions:
    """Sizes of one `carv distill` run (defaults: 19.4 min measured on the 2-core CPU at load 7-9, one torch thread)."""

    steps: int = 80  # student updates per estimator
    samples: int = 4  # R: generated samples per CARV step (the baseline draws R K)
    k: int = 8  # K: re-noisings per sample
    proposal: str = "sds"  # CARV's q(t) (stratified); the baseline draws t uniformly
    guidance_scale: float = 2.0  # real score's CFG, eps_c + s (eps_c - eps_u) (diffusers' s + 1)
    min_step_percent: float = 0.02  # DMD2's t range [0.02 T, 0.98 T]
    max_step_percent: float = 0.98
    fake_updates: int = 3  # critic updates per student update (DMD2's SD v1.5 runs: 10)
    student_lr: float = 1e-3
    fake_lr: float = 1e-3
    checkpoints: int = 3  # variance checkpoints along the CARV run (first at step 0, last at the end)
    repeats: int = 8  # independent steps per estimator and checkpoint
    eval_every: int = 20  # steps between quality evaluations
    eval_samples: int = 16  # one-step samples per prompt at each evaluation (fixed noise)
    reference_steps: int = 16  # DDIM steps of the teacher's reference samples
    seed: int = 0
    prompts: list[str] = field(default_factory=lambda: ["a red mug", "a blue car", "a green house", "a purple robot"])
