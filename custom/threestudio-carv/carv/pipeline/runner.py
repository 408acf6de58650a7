"""`carv text-to-3d`: check every input, then make the run folder, train, write the turntable and metrics.json.

Run folder (threestudio's layout): <exp_root_dir>/<name>/<tag>@<timestamp>/ with ckpts/last.ckpt (kept current
during training, see checkpoint.*), configs/parsed.yaml, csv_logs/, save/it{N}-test/ frames, save/it{N}-test.mp4
and .gif, metrics.json. Nothing is written before the inputs are checked; Lightning is imported only to train.
"""

from __future__ import annotations

import itertools
import json
import logging
import pickle
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ..autotune import AutoKController
from ..host_memory import keep_freed_memory
from ..timing import TimedTeacher
from .cameras import orbit
from .config import DEFAULT_CONFIG, auto_k_options, guidance_options, load_config, schedule_breakpoints, scheduled
from .errors import UserError
from .ground_truth import pipeline_ground_truth
from .prompts import ViewDependentPrompts, check_prompt, load_prompt_encoder, teacher_prompt
from .video import to_uint8, write_frames, write_videos

QUIET_WARNINGS = (
    ".*does not have many workers.*",  # the placeholder batches need no workers
    ".*resuming from a checkpoint that ended before the epoch.*",  # steps draw from (seed, step): nothing to replay
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # torch's deprecation inside Lightning's own code
    ".*Using ModelCheckpoint with manual optimization.*",  # checkpoint.every_n_train_steps saves after the step
)
"""Lightning warnings that a user of this pipeline cannot act on; every other warning still shows."""
TAG_BYTES = 96
"""Longest run tag in UTF-8 bytes (a file name holds 255, the tag is followed by @<timestamp>)."""


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict


@dataclass
class PreparedRun:
    """A run whose inputs are checked and loaded, nothing written yet: the config (its prompt as the teacher reads
    it, resume= the checkpoint's path), the system with guidance, prompts and judge attached."""

    config: DictConfig
    prompt_as_given: str
    system: object  # TextTo3DSystem (its module imports Lightning)
    judge: object | None
    device: torch.device
    teacher_seconds: float
    started: float  # time.perf_counter() when the run began in this process


def device_of(config: DictConfig) -> torch.device:
    """CUDA when present and allowed by trainer.accelerator, else the CPU."""
    wants_gpu = config.trainer.accelerator in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def prepare_device(config: DictConfig) -> torch.device:
    """The run's device, with torch's CPU threads (trainer.cpu_threads > 0) and, on the CPU, freed host memory kept
    in the process (carv.host_memory: steps stop paying page faults for the same tensors, and the measured cost
    curve adds up to a step)."""
    device = device_of(config)
    if config.trainer.cpu_threads > 0:
        torch.set_num_threads(config.trainer.cpu_threads)
    if device.type == "cpu":
        keep_freed_memory()
    return device


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
    """threestudio's run tag: the prompt with spaces as underscores, no path separators, at most TAG_BYTES bytes."""
    tag = prompt.strip().replace(" ", "_").replace("/", "-")
    return tag.encode("utf-8")[:TAG_BYTES].decode("utf-8", errors="ignore")


def make_run_dir(config: DictConfig, prompt: str | None = None) -> Path:
    """<exp_root_dir>/<name>/<tag, or the prompt as given>@<timestamp>[-n]."""
    tag = config.tag or prompt_tag(prompt or config.system.prompt_processor.prompt)
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
    from ..toyworld import Judge

    try:
        return Judge.load(folder)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise UserError(
            f"judge folder {folder} holds no usable judge ({error}); give evaluation.judge=FOLDER"
        ) from None


def judge_can_score(judge, prompt: str) -> str | None:
    """None if the judge can score the prompt, else why not."""
    from ..toyworld import parse_prompt

    if judge is None:
        return "no judge (evaluation.judge is empty)"
    try:
        parse_prompt(prompt)
    except ValueError as error:
        return f"the judge cannot score this prompt: {error}"
    return None


def build_guidance(config: DictConfig, device: torch.device, clock):
    """ScoreDistillation over the teacher folder (timed), and the seconds the teacher took to load."""
    from ..diffusion.teacher import load_teacher
    from ..score_distillation import ScoreDistillation

    folder = config.system.guidance.pretrained_model_name_or_path
    started = time.perf_counter()
    try:
        teacher = load_teacher(
            folder, half_precision_weights=config.system.guidance.half_precision_weights, device=device
        )
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise UserError(f"cannot load the teacher in {folder}: {error}") from None
    try:
        guidance = ScoreDistillation(TimedTeacher(teacher, clock), guidance_options(config))
    except ValueError as error:
        raise UserError(f"config system.guidance: {error}") from None
    return guidance, time.perf_counter() - started


def check_schedule(config: DictConfig, guidance) -> None:
    """The timestep range at every step where a schedule bends (it is linear between), before training starts."""
    g = config.system.guidance
    steps = {0, config.trainer.max_steps, *schedule_breakpoints(g.min_step_percent)}
    for step in sorted(steps | set(schedule_breakpoints(g.max_step_percent))):
        try:
            guidance.step_range(scheduled(g.min_step_percent, step), scheduled(g.max_step_percent, step))
        except ValueError as error:
            raise UserError(f"config system.guidance at step {step}: {error}") from None


def resume_checkpoint(config: DictConfig) -> dict | None:
    """The checkpoint of resume= (a file, or a run folder's ckpts/last.ckpt), read; config.resume becomes its path.

    UserError if there is none, it cannot be read, or it is already at trainer.max_steps (nothing to train)."""
    if not config.resume:
        return None
    path = Path(config.resume)
    if path.is_dir():
        path = path / "ckpts" / "last.ckpt"
        if not path.is_file():
            raise UserError(f"run folder {config.resume} has no ckpts/last.ckpt to resume from")
    elif not path.is_file():
        raise UserError(f"resume checkpoint {config.resume} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        step = int(checkpoint["global_step"])
    except (OSError, RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise UserError(f"resume checkpoint {path} cannot be read: {error}") from None
    if step >= config.trainer.max_steps:
        raise UserError(
            f"resume checkpoint {path} is already at step {step} and trainer.max_steps is {config.trainer.max_steps}: "
            f"nothing to train; give trainer.max_steps=N with N > {step} (carv turntable re-renders a run)"
        )
    config.resume = str(path)
    return checkpoint


def check_resumable(system, checkpoint: dict | None, resume: str) -> None:
    """The checkpoint's scene has this config's shapes (the same grid resolution)."""
    if checkpoint is None:
        return
    own = system.state_dict()
    for name, value in checkpoint.get("state_dict", {}).items():
        if name in own and tuple(own[name].shape) != tuple(value.shape):
            raise UserError(
                f"resume checkpoint {resume} holds {name} of shape {list(value.shape)}, this config makes "
                f"{list(own[name].shape)}; resume with the config of the run that wrote it"
            )


def check_inputs(config: DictConfig):
    """Teacher folder, the prompt (put in the teacher's caption form; vocabulary and length) and the judge."""
    folder = config.system.guidance.pretrained_model_name_or_path
    if not Path(folder).is_dir():
        raise UserError(
            f"teacher folder {folder} does not exist; pass system.guidance.pretrained_model_name_or_path=FOLDER "
            "(a local diffusers Stable Diffusion folder)"
        )
    encoder = load_prompt_encoder(folder, device_of(config))
    p = config.system.prompt_processor
    p.prompt = teacher_prompt(p.prompt, encoder.tokenizer)
    check_prompt(p.prompt, encoder.tokenizer, folder, p.negative_prompt, p.view_dependent_prompting)
    return encoder, load_judge(config)


def prepare(prompt: str, config_name: str = DEFAULT_CONFIG, overrides: list[str] = ()) -> PreparedRun:
    """Load and check everything a run needs (config, resume checkpoint, teacher, prompt, judge); writes nothing."""
    started = time.perf_counter()
    config = load_config(config_name, overrides, prompt=prompt)
    checkpoint = resume_checkpoint(config)
    encoder, judge = check_inputs(config)
    device = prepare_device(config)
    from .system import TextTo3DSystem

    system = TextTo3DSystem(config)
    check_resumable(system, checkpoint, config.resume)
    guidance, teacher_seconds = build_guidance(config, device, system.clock)
    check_schedule(config, guidance)
    p = config.system.prompt_processor
    prompts = ViewDependentPrompts(encoder, p.prompt, p.negative_prompt, p.view_dependent_prompting).to(device)
    options = auto_k_options(config)
    auto_k = None
    if options is not None:  # the step's cameras are drawn after the choice: it applies at once (lag 0)
        auto_k = AutoKController(options, config.system.guidance.timestep_strata, config.data.batch_size, lag=0)
    truth = pipeline_ground_truth(config)
    system.attach(guidance, prompts, judge if judge_can_score(judge, p.prompt) is None else None, auto_k, truth)
    return PreparedRun(config, prompt, system, judge, device, teacher_seconds, started)


def quiet_lightning() -> None:
    """Lightning's info banners (GPU available, tips) off; warnings stay. Imports Lightning, which turns them on."""
    import pytorch_lightning  # noqa: F401

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def quiet_warnings():
    """QUIET_WARNINGS off inside the block; other warnings and every error pass."""
    with warnings.catch_warnings():
        for pattern in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        yield


def make_trainer(config: DictConfig, run_dir: Path, device: torch.device, callbacks: list):
    """A Lightning Trainer with the given callbacks, auto-K's and the numbered checkpoints of every_n_train_steps."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    quiet_lightning()
    callbacks = list(callbacks)
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
        enable_progress_bar=False,  # the runner's own bar (callbacks.ProgressBar)
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=run_dir,
    )


class StepPlaceholders(torch.utils.data.IterableDataset):
    """`steps` placeholder batches: the system draws step s's cameras from its own (seed, s) generator."""

    def __init__(self, steps: int):
        self.steps = steps

    def __iter__(self):
        return itertools.repeat(0, self.steps)


def write_turntable(system, run_dir: Path, stem: str, frames: int, size: int | None = None) -> dict:
    """Render frames views at azimuth linspace(0, 360) into save/<stem>/ and save/<stem>.mp4, .gif."""
    config = system.config.data
    views = system.render_views(orbit(config, frames, endpoint=True, height=size, width=size))
    images = to_uint8(views)
    write_frames(images, run_dir / "save" / stem)
    mp4, gif = write_videos(images, run_dir / "save" / stem)
    return {"frames": str(run_dir / "save" / stem), "mp4": str(mp4), "gif": str(gif)}


def final_fidelity(system, judge) -> dict:
    """Mean and standard error of the prompt fidelity over evaluation.n_final_views views, or why there is none."""
    prompt = system.config.system.prompt_processor.prompt
    reason = judge_can_score(judge, prompt)
    if reason is not None:
        return {"mean": None, "stderr": None, "note": reason}
    n = system.config.evaluation.n_final_views
    views = system.render_views(orbit(system.config.data, n, endpoint=False))
    mean, stderr = judge.fidelity_over_views(views, prompt)
    return {"mean": mean, "stderr": stderr, "views": n}


def write_config(config: DictConfig, run_dir: Path) -> None:
    try:
        (run_dir / "configs").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, run_dir / "configs" / "parsed.yaml")
    except OSError as error:
        raise UserError(f"cannot write the run folder {run_dir}: {error.strerror or error}") from None


def train(run: PreparedRun, run_dir: Path, label: str | None = None) -> RunResult:
    """Train a prepared run in run_dir, then write its last checkpoint, turntable and metrics.json."""
    from .callbacks import LastCheckpoint, ProgressBar, RunClock, save_checkpoint

    config, system = run.config, run.system
    write_config(config, run_dir)
    c = config.checkpoint
    clock, saver = (
        RunClock(run.started),
        LastCheckpoint(run_dir / "ckpts" / "last.ckpt", c.last_every_n_steps, c.last_every_seconds),
    )
    callbacks = [clock, saver]
    if config.trainer.enable_progress_bar:
        callbacks.append(ProgressBar(label or config.name, config.trainer.max_train_seconds))
    trainer = make_trainer(config, run_dir, run.device, callbacks)
    with quiet_warnings():
        trainer.fit(
            system,
            torch.utils.data.DataLoader(StepPlaceholders(config.trainer.max_steps), batch_size=None),
            ckpt_path=config.resume,
        )
    saver.seconds.append(save_checkpoint(trainer, saver.path))
    system.to(run.device)
    turntable_started = time.perf_counter()
    files = write_turntable(system, run_dir, f"it{system.global_step}-test", config.data.n_test_views)
    turntable_seconds = time.perf_counter() - turntable_started
    metrics = run_metrics(system, config, final_fidelity(system, run.judge), files)
    metrics.update(prompt_as_given=run.prompt_as_given, steps_this_process=system.global_step - clock.start_step)
    metrics["checkpoint_saves"] = {"count": len(saver.seconds), "seconds": sum(saver.seconds)}
    metrics["seconds"] = {
        **clock.this_process(system),
        "teacher_load": run.teacher_seconds,
        "turntable": turntable_seconds,
        "checkpoints": sum(saver.seconds),
        "total": clock.elapsed(),
    }
    metrics["run_seconds"] = {
        "train": system.train_seconds,
        **system.clock.total,
        "total": clock.before + clock.elapsed(),
    }
    metrics["ground_truth"] = system.ground_truth.score_system(system) if system.ground_truth is not None else None
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    return RunResult(run_dir, metrics)


def text_to_3d(
    prompt: str,
    config_name: str = DEFAULT_CONFIG,
    overrides: list[str] = (),
    run_dir: Path | None = None,
    label: str | None = None,
) -> RunResult:
    """Train on the prompt and write the run folder (a new one unless run_dir is given); UserError for inputs the
    user can fix, raised before anything is written. `label` names the run on its progress bar."""
    run = prepare(prompt, config_name, overrides)
    return train(run, make_run_dir(run.config, prompt) if run_dir is None else Path(run_dir), label)


def configuration_used(system) -> tuple[int, int]:
    """(R, K) of the run's last step: the config's, or the pair `auto` chose (never the word "auto")."""
    if system.auto_k is None or not system.auto_k.history:
        return system.config.data.batch_size, system.guidance.config.noise_samples_per_render
    last = system.auto_k.history[-1]
    return last["renders"], last["k"]


def run_metrics(system, config: DictConfig, fidelity: dict, files: dict) -> dict:
    """metrics.json but for the seconds of this process; steps and seconds per step are the whole run's."""
    g = config.system.guidance
    steps = system.global_step
    return {
        "prompt": config.system.prompt_processor.prompt,
        "config": config.name,
        "seed": config.seed,
        "steps": steps,
        "renders_per_step": configuration_used(system)[0],
        "noise_samples_per_render": configuration_used(system)[1],
        "timestep_proposal": g.timestep_proposal,
        "timestep_stratified": g.timestep_stratified,
        "device": str(device_of(config)),
        "seconds_per_step": {
            k: v / max(steps, 1) for k, v in {"train": system.train_seconds, **system.clock.total}.items()
        },
        "fidelity": fidelity,
        "fidelity_history": system.fidelity_history,
        "files": files,
        **(
            {"auto_k": system.auto_k.history, "auto_probes": system.auto_k.choices} if system.auto_k is not None else {}
        ),
    }
