"""`carv text-to-3d`: check the inputs, make the run folder, train, write the turntable and metrics.json.

Run folder (threestudio's layout): <exp_root_dir>/<name>/<tag>@<timestamp>/ with ckpts/last.ckpt,
configs/parsed.yaml, csv_logs/, save/it{N}-test/ frames, save/it{N}-test.mp4 and .gif, metrics.json.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

from .cameras import orbit
from .config import DEFAULT_CONFIG, guidance_options, load_config
from .errors import UserError
from .ground_truth import pipeline_ground_truth
from .prompts import ViewDependentPrompts, prompt_encoder
from .system import TextTo3DSystem
from .timing import TimedTeacher
from .video import to_uint8, write_frames, write_videos

QUIET_WARNINGS = (".*does not have many workers.*", ".*resuming from a checkpoint that ended before the epoch.*")


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict


def device_of(config: DictConfig) -> torch.device:
    """CUDA when present and allowed by trainer.accelerator, else the CPU."""
    wants_gpu = config.trainer.accelerator in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def new_folder(parent: Path, tag: str) -> Path:
    """A new folder parent/<tag>@<timestamp>[-n], never an existing one; UserError if parent is not writable."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            candidate = parent / (f"{tag}@{stamp}" + (f"-{n}" if n else ""))
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except OSError as error:
        raise UserError(f"cannot write the output folder {parent}: {error.strerror or error}") from None


def prompt_tag(prompt: str) -> str:
    """threestudio's run tag: the prompt with spaces as underscores (and no path separators)."""
    return prompt.replace(" ", "_").replace("/", "-")


def make_run_dir(config: DictConfig) -> Path:
    """<exp_root_dir>/<name>/<tag or prompt>@<timestamp>[-n]."""
    tag = config.tag or prompt_tag(config.system.prompt_processor.prompt)
    return new_folder(Path(config.exp_root_dir) / config.name, tag)


def load_judge(config: DictConfig):
    """The judge of evaluation.judge, or None when the option is empty."""
    folder = config.evaluation.judge
    if not folder:
        return None
    if not Path(folder).is_dir():
        raise UserError(
            f"judge folder {folder} does not exist; give evaluation.judge=FOLDER, or evaluation.judge='' to skip fidelity"
        )
    from ..toyworld.judge import Judge

    try:
        return Judge.load(folder)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise UserError(
            f"judge folder {folder} holds no usable judge ({error}); give evaluation.judge=FOLDER"
        ) from None


def judge_can_score(judge, prompt: str) -> str | None:
    """None if the judge can score the prompt, else why not."""
    from ..toyworld.world import parse_prompt

    if judge is None:
        return "no judge (evaluation.judge is empty)"
    try:
        parse_prompt(prompt)
    except ValueError as error:
        return f"the judge cannot score this prompt: {error}"
    return None


def build_guidance(config: DictConfig, device: torch.device, clock):
    """ScoreDistillation over the teacher folder (timed), and the seconds the teacher took to load."""
    from ..score_distillation import ScoreDistillation
    from ..teachers import load_teacher

    folder = config.system.guidance.pretrained_model_name_or_path
    started = time.perf_counter()
    try:
        teacher = load_teacher(
            folder, half_precision_weights=config.system.guidance.half_precision_weights, device=device
        )
    except (FileNotFoundError, OSError) as error:
        raise UserError(f"cannot load the teacher in {folder}: {error}") from None
    try:
        guidance = ScoreDistillation(TimedTeacher(teacher, clock), guidance_options(config))
    except ValueError as error:
        raise UserError(f"config system.guidance: {error}") from None
    return guidance, time.perf_counter() - started


def check_inputs(config: DictConfig):
    """Teacher folder, prompt vocabulary, judge and resume checkpoint, before anything is written."""
    folder = config.system.guidance.pretrained_model_name_or_path
    if not Path(folder).is_dir():
        raise UserError(
            f"teacher folder {folder} does not exist; pass system.guidance.pretrained_model_name_or_path=FOLDER "
            "(a local diffusers Stable Diffusion folder)"
        )
    if config.resume and not Path(config.resume).is_file():
        raise UserError(f"resume checkpoint {config.resume} does not exist")
    try:
        encoder = prompt_encoder(folder, config.system.prompt_processor.prompt, device_of(config))
    except (FileNotFoundError, OSError) as error:
        raise UserError(f"cannot load the text encoder of {folder}: {error}") from None
    return encoder, load_judge(config)


def make_trainer(config: DictConfig, run_dir: Path, device: torch.device) -> pl.Trainer:
    callbacks = [TQDMProgressBar(refresh_rate=1)] if config.trainer.enable_progress_bar else []
    if str(config.system.guidance.noise_samples_per_render) == "auto":  # K chosen online (carv.variance.auto)
        from ..variance.auto import AutoNoiseSamples, auto_k_of

        callbacks.append(
            AutoNoiseSamples(auto_k_of(config.system.guidance), config.system.guidance.auto_probe_size, config.seed)
        )
    if config.checkpoint.every_n_train_steps > 0:
        callbacks.append(
            ModelCheckpoint(run_dir / "ckpts", every_n_train_steps=config.checkpoint.every_n_train_steps, save_top_k=-1)
        )
    return pl.Trainer(
        max_steps=config.trainer.max_steps,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        logger=CSVLogger(run_dir, name="csv_logs"),
        callbacks=callbacks,
        enable_checkpointing=config.checkpoint.every_n_train_steps > 0,
        log_every_n_steps=config.trainer.log_every_n_steps,
        enable_progress_bar=config.trainer.enable_progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=run_dir,
    )


class StepPlaceholders(torch.utils.data.IterableDataset):
    """Placeholder batches (the system draws step s's cameras from its own (seed, s) generator); the length
    is max_steps so that the progress bar knows the total."""

    def __init__(self, steps: int):
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.repeat(0, self.steps)


def write_turntable(system: TextTo3DSystem, run_dir: Path, stem: str, frames: int, size: int | None = None) -> dict:
    """Render frames views at azimuth linspace(0, 360) into save/<stem>/ and save/<stem>.mp4, .gif."""
    config = system.config.data
    views = system.render_views(orbit(config, frames, endpoint=True, height=size, width=size))
    images = to_uint8(views)
    write_frames(images, run_dir / "save" / stem)
    mp4, gif = write_videos(images, run_dir / "save" / stem)
    return {"frames": str(run_dir / "save" / stem), "mp4": str(mp4), "gif": str(gif)}


def final_fidelity(system: TextTo3DSystem, judge) -> dict:
    """Mean and standard error of the prompt fidelity over evaluation.n_final_views views, or why there is none."""
    prompt = system.config.system.prompt_processor.prompt
    reason = judge_can_score(judge, prompt)
    if reason is not None:
        return {"mean": None, "stderr": None, "note": reason}
    n = system.config.evaluation.n_final_views
    views = system.render_views(orbit(system.config.data, n, endpoint=False))
    mean, stderr = judge.fidelity_over_views(views, prompt)
    return {"mean": mean, "stderr": stderr, "views": n}


def text_to_3d(
    prompt: str, config_name: str = DEFAULT_CONFIG, overrides: list[str] = (), run_dir: Path | None = None
) -> RunResult:
    """Train on the prompt and write the run folder; UserError for inputs the user can fix."""
    started = time.perf_counter()
    config = load_config(config_name, overrides, prompt=prompt)
    encoder, judge = check_inputs(config)
    run_dir = make_run_dir(config) if run_dir is None else run_dir
    (run_dir / "configs").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, run_dir / "configs" / "parsed.yaml")
    device = device_of(config)
    if config.trainer.cpu_threads > 0:
        torch.set_num_threads(config.trainer.cpu_threads)
    system = TextTo3DSystem(config)
    guidance, teacher_seconds = build_guidance(config, device, system.clock)
    p = config.system.prompt_processor
    prompts = ViewDependentPrompts(encoder, p.prompt, p.negative_prompt, p.view_dependent_prompting).to(device)
    truth = pipeline_ground_truth(config)
    system.attach(guidance, prompts, judge if judge_can_score(judge, p.prompt) is None else None, truth)
    trainer = make_trainer(config, run_dir, device)
    with warnings.catch_warnings():
        for pattern in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", pattern)
        trainer.fit(
            system,
            torch.utils.data.DataLoader(StepPlaceholders(config.trainer.max_steps), batch_size=None),
            ckpt_path=config.resume,
        )
    trainer.save_checkpoint(run_dir / "ckpts" / "last.ckpt")
    system.to(device)
    turntable_started = time.perf_counter()
    files = write_turntable(system, run_dir, f"it{system.global_step}-test", config.data.n_test_views)
    turntable_seconds = time.perf_counter() - turntable_started
    metrics = run_metrics(system, config, final_fidelity(system, judge), files)
    metrics["ground_truth"] = truth.score_system(system) if truth is not None else None
    metrics["seconds"].update(teacher_load=teacher_seconds, turntable=turntable_seconds)
    metrics["seconds"]["total"] = time.perf_counter() - started
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    return RunResult(run_dir, metrics)


def run_metrics(system: TextTo3DSystem, config: DictConfig, fidelity: dict, files: dict) -> dict:
    g = config.system.guidance
    steps = system.global_step
    return {
        "prompt": config.system.prompt_processor.prompt,
        "config": config.name,
        "seed": config.seed,
        "steps": steps,
        "renders_per_step": config.data.batch_size,
        "noise_samples_per_render": g.noise_samples_per_render,
        "timestep_proposal": g.timestep_proposal,
        "timestep_stratified": g.timestep_stratified,
        "device": str(device_of(config)),
        "seconds": {"train": system.train_seconds, **system.clock.total},
        "seconds_per_step": {
            k: v / max(steps, 1) for k, v in {"train": system.train_seconds, **system.clock.total}.items()
        },
        "fidelity": fidelity,
        "fidelity_history": system.fidelity_history,
        "files": files,
    }


def quiet_lightning() -> None:
    """Lightning's info banners (GPU available, tips) off; warnings stay."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
