"""Benchmark (not a test): the ground-truth race through threestudio's launch.py, CARV against its baseline.

    python scripts/race_threestudio.py --threestudio-root ~/threestudio [--prompts FILE | --prompt "a red mug"]
        [--seeds 0 1 2] [--seconds 120] [--checks 6] [--views 8] [--out outputs/race-threestudio] [key=value ...]

For each prompt x seed, trains configs/carv-toy-teacher.yaml as shipped (CARV: R = 1, K = 16, SDS-weighted
stratified t) and its equal-cost baseline (configs/variants.yaml `baseline`: R = 4, K = 1, uniform t) with
`launch.py --train`, each for the same wall-clock (Lightning's trainer.max_time, --seconds), from the same seed,
saving a checkpoint every --check-every steps. Off the clock, `launch.py --test` renders each checkpoint's test
stage (and the untrained scene's, step 0) at data.n_test_views = --views + 1 cameras, and carv.pipeline.ground_truth
scores the --views distinct ones against the true object. A check's time is the run's training seconds up to its
step (render + guidance + backward, as the CARV system logs them). carv.pipeline.race gives the target, seconds to
it and the speedup; race.json per comparison, race-threestudio.json (carv.pipeline.race.summarise_races) over all.

launch.py runs from --workdir (default: the threestudio root, whose custom/ holds this extension); --site-dir
folders go first on the subprocesses' PYTHONPATH (a test-only CPU stand-in, for instance). --dry-run prints the
training commands.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling sweep_rk script, also when loaded by path
from sweep_rk import read_metrics, slug, step_seconds, variant_overrides  # noqa: E402

from carv.pipeline.ground_truth import score_test_stage  # noqa: E402
from carv.pipeline.race import LABELS, plot_race, race, summarise_races  # noqa: E402
from carv.toyworld.ground_truth import RACE_FIGURE  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG = PROJECT_ROOT / "configs" / "carv-toy-teacher.yaml"
SETTINGS = {"baseline": "R=4 K=1 uniform", "carv": "R=1 K=16 sds stratified"}
TEST_FOLDER = re.compile(r"it(\d+)-test$")
TEST_CAMERA_DEFAULTS = {"eval_elevation_deg": 15.0, "eval_camera_distance": 1.5, "eval_fovy_deg": 70.0}
"""threestudio's RandomCameraDataModuleConfig defaults (data/uncond.py), for keys a parsed.yaml leaves out."""


def side_overrides(label: str) -> list[str]:
    """CARV is the config as shipped; the baseline is its equal-cost variant."""
    return variant_overrides("baseline") if label == "baseline" else []


def train_command(args, label: str, prompt: str, seed: int, extra: list[str]) -> list[str]:
    """launch.py --train of one side; its folder is <out>/<label>/<prompt>-seed<seed>. The race's keys come last."""
    return [
        sys.executable,
        str(Path(args.threestudio_root) / "launch.py"),
        "--config",
        str(CONFIG),
        "--train",
        "--gpu",
        "0",
        *side_overrides(label),
        *extra,
        f"system.prompt_processor.prompt={prompt}",
        f"seed={seed}",
        f"data.n_test_views={args.views + 1}",
        f"trainer.max_steps={args.max_steps}",
        f"trainer.max_time={max_time(args.seconds)}",
        f"checkpoint.every_n_train_steps={args.check_every}",
        "checkpoint.save_top_k=-1",
        f"exp_root_dir={Path(args.out).resolve()}",
        f"name={label}",
        f"tag={slug(prompt)}-seed{seed}",
        "use_timestamp=false",
    ]


def max_time(seconds: float) -> str:
    """Lightning's trainer.max_time as DD:HH:MM:SS (whole seconds, at least 1)."""
    total = max(int(round(seconds)), 1)
    return f"{total // 86400:02d}:{total % 86400 // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def test_command(args, trial: Path, checkpoint: Path | None) -> list[str]:
    """launch.py --test of a trained run's parsed config, from a checkpoint (None: the untrained scene)."""
    command = [sys.executable, str(Path(args.threestudio_root) / "launch.py"), "--config"]
    command += [str(trial / "configs" / "parsed.yaml"), "--test", "--gpu", "0"]
    return command + ([f"resume={checkpoint}"] if checkpoint is not None else [])


def launch(args, command: list[str]) -> None:
    paths = [*args.site_dir, os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    print(shlex.join(command), flush=True)
    subprocess.run(command, cwd=args.workdir or args.threestudio_root, env=env, check=True)


def checkpoints(trial: Path) -> list[tuple[int, Path]]:
    """(step, checkpoint) of the run's step checkpoints (Lightning's epoch=E-step=N.ckpt), in step order."""
    found = [(int(m.group(1)), p) for p in trial.glob("ckpts/*.ckpt") if (m := re.search(r"step=(\d+)", p.name))]
    return sorted(found)


def training_seconds_at(trial: Path, step: int) -> float:
    """Training seconds of the run's first `step` steps (render + guidance + backward per logged step)."""
    return sum(step_seconds(read_metrics(trial))[:step])


def test_stages(trial: Path) -> list[tuple[int, Path]]:
    """(step, save/it<step>-test/) of every test stage the run holds, in step order."""
    found = [
        (int(m.group(1)), p) for p in trial.glob("save/it*-test") if (m := TEST_FOLDER.search(p.name)) and p.is_dir()
    ]
    return sorted(found)


def quality_curve(trial: Path, prompt: str, views: int) -> list[tuple[float, float]]:
    """[(training seconds, ground-truth RACE_FIGURE)] of the run's test stages."""
    data = {**TEST_CAMERA_DEFAULTS, **yaml.safe_load((trial / "configs" / "parsed.yaml").read_text())["data"]}
    camera = {
        "n_test_views": views + 1,
        "elevation": data["eval_elevation_deg"],
        "distance": data["eval_camera_distance"],
        "fovy": data["eval_fovy_deg"],
        "views": views,
    }
    return [
        (training_seconds_at(trial, step), score_test_stage(folder, prompt, **camera)[RACE_FIGURE])
        for step, folder in test_stages(trial)
    ]


def one_race(args, prompt: str, seed: int, extra: list[str]) -> dict:
    trials = {label: Path(args.out) / label / f"{slug(prompt)}-seed{seed}" for label in LABELS}
    for label in LABELS:
        launch(args, train_command(args, label, prompt, seed, extra))
        trial = trials[label]
        tested = {step for step, _ in test_stages(trial)}  # the final step's, by --train itself
        for step, checkpoint in [(0, None), *checkpoints(trial)]:
            if step not in tested:
                launch(args, test_command(args, trial, checkpoint))
    curves = {label: quality_curve(trials[label], prompt, args.views) for label in LABELS}
    result = {"prompt": prompt, "seed": seed, "figure": RACE_FIGURE, **race(curves, args.fraction)}
    folder = Path(args.out) / f"{slug(prompt)}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "race.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    plot_race(result, RACE_FIGURE, SETTINGS, folder / "ground_truth_vs_time.png", f"{prompt!r}, seed {seed}")
    return result


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threestudio-root", default=os.environ.get("THREESTUDIO_ROOT"), help="holds launch.py")
    parser.add_argument("--prompts", type=Path, help="a file of prompts, one a line (default: --prompt)")
    parser.add_argument("--prompt", default="a red mug")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="training wall-clock of each side")
    parser.add_argument("--check-every", type=int, default=50, help="steps between checkpoints (quality checks)")
    parser.add_argument("--max-steps", type=int, default=100000, help="a step cap beyond the wall-clock budget")
    parser.add_argument("--views", type=int, default=8, help="distinct test views scored per check")
    parser.add_argument("--fraction", type=float, default=0.9, help="target: this share of the way to the best")
    parser.add_argument("--out", default="outputs/race-threestudio")
    parser.add_argument("--workdir", help="folder launch.py runs from (default: --threestudio-root)")
    parser.add_argument("--site-dir", action="append", default=[], help="a folder put first on PYTHONPATH")
    parser.add_argument("--dry-run", action="store_true")
    args, extra = parser.parse_known_args(argv)
    if not args.threestudio_root or not (Path(args.threestudio_root) / "launch.py").is_file():
        parser.error("give --threestudio-root (or THREESTUDIO_ROOT): a threestudio checkout holding launch.py")
    if args.seconds <= 0 or args.check_every < 1 or args.views < 1 or not 0 < args.fraction <= 1:
        parser.error("need --seconds > 0, --check-every >= 1, --views >= 1 and 0 < --fraction <= 1")
    if args.views == 2:  # data.n_test_views=3: threestudio's test cameras call torch.cross without dim and fail
        parser.error("--views 2 makes data.n_test_views 3, where threestudio's test cameras fail; take 1 or >= 3")
    return args, extra


def main(argv=None) -> None:
    args, extra = parse_arguments(argv)
    prompts = [args.prompt]
    if args.prompts is not None:
        prompts = [line.strip() for line in args.prompts.read_text().splitlines() if line.strip()]
    if args.dry_run:
        for prompt in prompts:
            for seed in args.seeds:
                for label in LABELS:
                    print(shlex.join(train_command(args, label, prompt, seed, extra)))
        return
    races = []
    for seed in args.seeds:
        for prompt in prompts:
            races.append(one_race(args, prompt, seed, extra))
            r = races[-1]
            print(
                f"{prompt!r} seed {seed}: target {r['target']}, baseline {r['baseline']['seconds_to_target']} s, "
                f"CARV {r['carv']['seconds_to_target']} s, speedup {r['speedup']}",
                flush=True,
            )
            report = {"race": summarise_races(races), "comparisons": races}
            Path(args.out, "race-threestudio.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(json.dumps(summarise_races(races), indent=1))


if __name__ == "__main__":
    main()
