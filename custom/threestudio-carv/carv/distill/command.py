"""`carv distill`: check the inputs, load the world, train both students, write the run folder.

outputs/distill/<tag>@<timestamp>/: student-carv.pt and student-baseline.pt (student + fake-score head +
options), report.json, variance.png, quality.png, samples.png.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from ..pipeline.errors import UserError
from ..pipeline.runner import new_folder
from .files import plot_quality, plot_variance, sample_grid
from .objective import estimator_settings
from .quality import bootstrap_frechet, decode, judge_features, mean_with_se, teacher_samples
from .run import DistillOptions, World, check_options, evaluate, one_step_samples, train


def load_world(options: DistillOptions, teacher_folder: str, judge_folder: str) -> World:
    """Teacher, scheduler, embeddings and judge; UserError for anything the user can fix."""
    from ..diffusion.teacher import load_scheduler, load_teacher
    from ..pipeline.prompts import check_vocabulary, prompt_encoder
    from ..pipeline.runner import load_judge
    from ..toyworld.world import parse_prompt

    if not Path(teacher_folder).is_dir():
        raise UserError(
            f"teacher folder {teacher_folder} does not exist; give --teacher FOLDER (a diffusers SD folder)"
        )
    judge = load_judge(OmegaConf.create({"evaluation": {"judge": judge_folder}}))
    if judge is None:
        raise UserError("carv distill needs a judge for its quality curves; give --judge FOLDER")
    for prompt in options.prompts:
        try:
            parse_prompt(prompt)
        except ValueError as error:
            raise UserError(f"the judge cannot score prompt {prompt!r}: {error}") from None
    try:
        encoder = prompt_encoder(teacher_folder, options.prompts[0])
        for prompt in options.prompts[1:]:
            check_vocabulary(prompt, encoder.tokenizer, teacher_folder)
        teacher = load_teacher(teacher_folder)
        scheduler = load_scheduler(Path(teacher_folder))
    except (FileNotFoundError, OSError, ValueError) as error:
        raise UserError(f"cannot load the teacher in {teacher_folder}: {error}") from None
    if teacher.vae is None:
        raise UserError(f"the teacher in {teacher_folder} has no VAE; carv distill needs a latent (SD-format) teacher")
    generator = torch.Generator().manual_seed(options.seed + 7)
    prompts = torch.arange(len(options.prompts)).repeat_interleave(options.eval_samples)
    side = int(teacher.unet.config.sample_size)
    noise = torch.randn((prompts.numel(), teacher.noise_channels, side, side), generator=generator)
    cond, uncond = encoder(options.prompts), encoder([""])
    return World(teacher, scheduler, cond, uncond, judge, noise, prompts)


def reference_set(world: World, options: DistillOptions) -> dict:
    """The teacher's multi-step samples for the evaluation prompts (their own noise): images, features, fidelity."""
    generator = torch.Generator().manual_seed(options.seed + 11)
    noise = torch.randn(world.eval_noise.shape, generator=generator)
    latents = teacher_samples(
        world.teacher,
        world.scheduler,
        world.cond[world.eval_prompts],
        world.uncond,
        noise,
        options.reference_steps,
        options.guidance_scale,
    )
    quality = evaluate(world, latents, options.prompts, None)
    return {"latents": latents, "features": quality["features"], "fidelity": quality["fidelity"]}


def final_comparison(world: World, runs: dict, reference: dict, options: DistillOptions) -> dict:
    """Paired differences CARV - baseline at the end: Frechet distance (bootstrap) and prompt fidelity (SE)."""
    features, fidelity = {}, {}
    for name in ("baseline", "carv"):
        images = decode(world.teacher, one_step_samples(runs[name]["student"], world, options.guidance_scale))
        features[name] = judge_features(world.judge, images)
        fidelity[name] = torch.cat(
            [world.judge.prompt_fidelity(images[world.eval_prompts == i], p) for i, p in enumerate(options.prompts)]
        )
    generator = torch.Generator().manual_seed(options.seed + 13)
    frechet = bootstrap_frechet(features, reference["features"], generator)
    difference = mean_with_se(fidelity["carv"] - fidelity["baseline"])
    return {"frechet": frechet, "fidelity_carv_minus_baseline": difference}


def write_grid(world: World, runs: dict, reference: dict, options: DistillOptions, path: Path) -> None:
    images = {"teacher (multi-step)": decode(world.teacher, reference["latents"])}
    for name in ("baseline", "carv"):
        images[f"{name} (one step)"] = decode(
            world.teacher, one_step_samples(runs[name]["student"], world, options.guidance_scale)
        )
    rows = {p: {s: im[world.eval_prompts == i] for s, im in images.items()} for i, p in enumerate(options.prompts)}
    sample_grid(rows, path)


def distill(
    options: DistillOptions, *, teacher_folder: str, judge_folder: str, out_root: str, tag: str
) -> tuple[Path, dict]:
    """Run the whole comparison and write the run folder; returns it and the report."""
    try:
        check_options(options)
    except ValueError as error:
        raise UserError(str(error)) from None
    started = time.perf_counter()
    world = load_world(options, teacher_folder, judge_folder)
    folder = new_folder(Path(out_root), tag)
    settings = estimator_settings(options.samples, options.k, options.proposal)
    progress = tqdm(total=2 * options.steps, desc="carv distill", unit="step")
    progress.set_postfix_str("teacher reference samples")
    reference = reference_set(world, options)
    runs = {
        name: train(name, world, settings, options, reference["features"], progress) for name in ("baseline", "carv")
    }
    progress.close()
    for name, run in runs.items():
        torch.save(
            {"student": run["student"].state_dict(), "fake_head": run["head"].state_dict(), "options": asdict(options)},
            folder / f"student-{name}.pt",
        )
    checkpoints = runs["carv"]["variance"]
    plot_variance(
        checkpoints, folder / "variance.png", f"DMD step-gradient variance, R={options.samples} K={options.k}"
    )
    plot_quality({n: r["history"] for n, r in runs.items()}, folder / "quality.png", "Frechet distance to the teacher")
    write_grid(world, runs, reference, options, folder / "samples.png")
    report = {
        "options": asdict(options),
        "teacher": str(teacher_folder),
        "settings": {name: asdict(s) for name, s in settings.items()},
        "variance_reduction": [c["variance_reduction"] for c in checkpoints],
        "checkpoints": checkpoints,
        "quality": {name: run["history"] for name, run in runs.items()},
        "teacher_fidelity": reference["fidelity"],
        "final": final_comparison(world, runs, reference, options),
        "train_seconds": {name: run["train_seconds"] for name, run in runs.items()},
        "seconds": time.perf_counter() - started,
    }
    (folder / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return folder, report
