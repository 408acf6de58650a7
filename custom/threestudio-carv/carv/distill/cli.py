"""The arguments of `carv distill` and the call into `carv.distill.command.distill` (registered by carv/cli/distill.py)."""

from __future__ import annotations

import argparse
import json

from .options import DistillOptions

DEFAULTS = DistillOptions()


def add_arguments(parser: argparse.ArgumentParser):
    """Add the options to `parser`; returns the runner."""
    from ..paths import carv_load

    parser.add_argument("--prompts", nargs="+", default=DEFAULTS.prompts, help="prompts the student learns")
    parser.add_argument("--teacher", default=carv_load("toy-teacher"), help="a diffusers SD folder (default: toy)")
    parser.add_argument("--judge", default=carv_load("judge"), help="the judge folder (default: load/judge)")
    for name, help in (
        ("steps", "student updates per estimator"),
        ("samples", "R: generated samples per CARV step (the baseline draws R K, one t each)"),
        ("k", "K: re-noisings per generated sample"),
        ("fake_updates", "fake-score updates per student update (DMD2's SD v1.5 runs: 10)"),
        ("checkpoints", "variance checkpoints along the CARV run"),
        ("repeats", "independent steps per estimator and checkpoint"),
        ("eval_every", "steps between quality evaluations"),
        ("eval_samples", "one-step samples per prompt per evaluation"),
        ("reference_steps", "DDIM steps of the teacher's reference samples"),
        ("seed", "seed of every draw"),
    ):
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=getattr(DEFAULTS, name), help=f"{help} (default: %(default)s)")
    parser.add_argument("--proposal", default=DEFAULTS.proposal, help="CARV's timestep proposal (default: %(default)s)")
    parser.add_argument("--guidance-scale", type=float, default=DEFAULTS.guidance_scale, help="real score's CFG scale")
    parser.add_argument("--out", default="outputs/distill", help="parent of the run folder (default: %(default)s)")
    parser.add_argument("--tag", default="toy-teacher", help="run folder name before @<timestamp>")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")

    def run(args):
        import torch

        from ..pipeline.errors import UserError
        from .command import distill

        if args.threads < 1:
            raise UserError(f"--threads must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
        names = [
            n for n in vars(DEFAULTS) if n not in ("min_step_percent", "max_step_percent", "student_lr", "fake_lr")
        ]
        options = DistillOptions(**{n: getattr(args, n) for n in names})
        folder, report = distill(
            options, teacher_folder=args.teacher, judge_folder=args.judge, out_root=args.out, tag=args.tag
        )
        print(json.dumps(report, indent=1) if args.json else summary(folder, report))

    return run


def summary(folder, report: dict) -> str:
    """A few lines: variance reduction per checkpoint and the final quality difference with its interval."""
    lines = [f"run folder: {folder}"]
    for c in report["checkpoints"]:
        lines.append(
            f"step {c['step']}: variance reduction vs baseline {c['variance_reduction']:.2f} +- "
            f"{c['variance_reduction_se']:.2f}, vs matched IID {c['variance_reduction_vs_matched_iid']:.2f}, "
            f"vs R samples K=1 {c['variance_reduction_vs_same_samples']:.2f}, ECM {c['ecm']:.2f}"
        )
    final = report["final"]
    frechet, fidelity = final["frechet"], final["fidelity_carv_minus_baseline"]
    difference = frechet["carv_minus_baseline"]
    lines.append(
        f"final Frechet distance: baseline {frechet['baseline']['value']:.1f}, CARV {frechet['carv']['value']:.1f}, "
        f"CARV - baseline {difference['value']:.1f} (95% {difference['low']:.1f} to {difference['high']:.1f})"
    )
    lines.append(f"final prompt fidelity CARV - baseline: {fidelity['mean']:.3f} +- {fidelity['se']:.3f}")
    lines.append(f"wall-clock: {report['seconds']:.0f} s")
    return "\n".join(lines)
