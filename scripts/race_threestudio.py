"""Benchmark (not a test): the ground-truth race through threestudio's launch.py, CARV against its baseline.

    python scripts/race_threestudio.py --threestudio-root ~/threestudio [--prompts FILE | --prompt "a red mug"]
        [--seeds 0 1 2] [--seconds 120] [--check-every 50] [--views 8] [--clock wall|process] [--jobs 1] [--threads 1]
        [--out outputs/race-threestudio [--resume]] [key=value ...]

For each prompt x seed, trains configs/carv-toy-teacher.yaml as shipped (CARV: R = 1, K = 16, SDS-weighted
stratified t; found through carv.paths) and its equal-cost baseline (configs/variants.yaml `baseline`: R = 4,
K = 1, uniform t) with one `launch.py --train` each, from the same seed, for --seconds of training: the logged
render + guidance + backward seconds of the CARV system on carv.timing's training clock (--clock process: CPU
seconds, which other work on a shared machine does not inflate), where system.max_train_seconds stops the fit;
trainer.max_time, which counts wall-clock and validation too, is only a backstop at --wall-cap times that
(on 2 cores shared with 6-8 other processes a run got a quarter of a core: 3x was too little); where it or
--max-steps stops a side first, both curves are cut at that side's logged seconds (race.json: reached_budget).
The quality checks are threestudio's validation stage inside the same process, off the training clock: every
--check-every steps (trainer.val_check_interval) and before the first step (the sanity check over all views),
validation_step renders data.n_val_views = --views cameras (azimuth linspace(0, 360, n + 1)[:n]) to
save/it{step}-{index}.png, and carv.pipeline.ground_truth scores them against the true object at the same
cameras. A check's time is the run's logged training seconds up to its step. The budget stops a side before a
step as long as its last would pass --seconds, and Lightning checks the scene once more there, so each curve
ends at or just before the budget; both are cut at it (carv.pipeline.race), which gives the target, seconds to
it and the speedup; the final test stage
(data.n_test_views = --views + 1, launch.py --train renders it after fitting) is scored too, as `final_test`.

Writes, as results come: <out>/<prompt>-seed<seed>/race.json (+ ground_truth_vs_time.png, and each side's
launch.py output in <label>.log), the runs in <out>/<label>/<prompt>-seed<seed>/, and race-threestudio.json
(carv.pipeline.race.summarise_races) over all. An existing --out is refused unless --resume, which skips the
comparisons whose race.json exists (an interrupted one's run folders are moved aside, never reused).
--jobs N runs N comparisons at once (each: one prompt x seed, its two sides one after the other), each launch.py
with --threads torch threads (OMP_NUM_THREADS; 1 by default: two jobs of torch's default threads on 2 cores
oversubscribe them).

launch.py runs from --workdir (default: the threestudio root, whose custom/ holds this extension); --site-dir
folders go first on the subprocesses' PYTHONPATH (a test-only CPU stand-in, for instance). --dry-run prints the
training commands.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling sweep_rk script, also when loaded by path
from sweep_rk import read_metrics, slug, step_seconds, variant_overrides  # noqa: E402

from carv.paths import config_dir  # noqa: E402
from carv.pipeline.ground_truth import ValStageScorer, score_test_stage  # noqa: E402
from carv.pipeline.race import LABELS, plot_race, race, summarise_races  # noqa: E402
from carv.timing import CLOCK_VARIABLE, CLOCKS, ClockError, clock_name, out_of_budget  # noqa: E402
from carv.toyworld.ground_truth import RACE_FIGURE  # noqa: E402

CONFIG_NAME = "carv-toy-teacher.yaml"
SETTINGS = {"baseline": "R=4 K=1 uniform", "carv": "R=1 K=16 sds stratified"}
VAL_IMAGE = re.compile(r"it(\d+)-0\.png$")
TEST_FOLDER = re.compile(r"it(\d+)-test$")
EVAL_CAMERA_DEFAULTS = {
    "eval_elevation_deg": 15.0,
    "eval_camera_distance": 1.5,
    "eval_fovy_deg": 70.0,
    "eval_height": 512,
}
"""threestudio's RandomCameraDataModuleConfig defaults (data/uncond.py), for keys a parsed.yaml leaves out."""


def config_path() -> Path:
    return config_dir() / CONFIG_NAME


def side_overrides(label: str) -> list[str]:
    """CARV is the config as shipped; the baseline is its equal-cost variant."""
    return variant_overrides("baseline") if label == "baseline" else []


def comparison_name(prompt: str, seed: int) -> str:
    return f"{slug(prompt)}-seed{seed}"


def train_command(args, label: str, prompt: str, seed: int, extra: list[str]) -> list[str]:
    """launch.py --train of one side; its folder is <out>/<label>/<prompt>-seed<seed>. The race's keys come last."""
    return [
        sys.executable,
        str(Path(args.threestudio_root) / "launch.py"),
        "--config",
        str(config_path()),
        "--train",
        "--gpu",
        "0",
        *side_overrides(label),
        *extra,
        f"system.prompt_processor.prompt={prompt}",
        f"seed={seed}",
        f"data.n_val_views={args.views}",
        f"data.n_test_views={args.views + 1}",
        f"trainer.val_check_interval={args.check_every}",
        "trainer.num_sanity_val_steps=-1",  # every val view before the first step: the untrained scene's check
        f"trainer.max_steps={args.max_steps}",
        f"system.max_train_seconds={args.seconds}",
        f"trainer.max_time={max_time(args.wall_cap * args.seconds)}",
        f"exp_root_dir={Path(args.out).resolve()}",
        f"name={label}",
        f"tag={comparison_name(prompt, seed)}",
        "use_timestamp=false",
    ]


def max_time(seconds: float) -> str:
    """Lightning's trainer.max_time as DD:HH:MM:SS (whole seconds, at least 1)."""
    total = max(int(round(seconds)), 1)
    return f"{total // 86400:02d}:{total % 86400 // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def launch(args, command: list[str], log: Path) -> None:
    """Run launch.py with its output in `log`; CalledProcessError naming the log if it fails."""
    paths = [*args.site_dir, os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p), OMP_NUM_THREADS=str(args.threads))
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as stream:
        stream.write(shlex.join(command) + "\n")
        stream.flush()
        cwd = args.workdir or args.threestudio_root
        subprocess.run(command, cwd=cwd, env=env, stdout=stream, stderr=subprocess.STDOUT, check=True)


def training_seconds(trial: Path) -> list[float]:
    """Cumulative logged training seconds after each step: [0, s_1, s_1 + s_2, ...] (render + guidance + backward)."""
    totals = [0.0]
    for seconds in step_seconds(read_metrics(trial)):
        totals.append(totals[-1] + seconds)
    return totals


def eval_cameras(trial: Path) -> dict:
    """The run's eval camera keys (parsed.yaml's, threestudio's defaults for those it leaves out)."""
    return {**EVAL_CAMERA_DEFAULTS, **yaml.safe_load((trial / "configs" / "parsed.yaml").read_text())["data"]}


def val_steps(trial: Path) -> list[int]:
    """The steps at which the validation stage saved images (save/it{step}-0.png), in order."""
    return sorted(int(m.group(1)) for p in trial.glob("save/it*-0.png") if (m := VAL_IMAGE.search(p.name)))


def quality_curve(trial: Path, prompt: str, views: int) -> list[tuple[float, float]]:
    """[(training seconds, ground-truth RACE_FIGURE)] of the run's validation checks."""
    data = eval_cameras(trial)
    scorer = ValStageScorer(
        prompt,
        n_val_views=views,
        elevation=data["eval_elevation_deg"],
        distance=data["eval_camera_distance"],
        fovy=data["eval_fovy_deg"],
        size=data["eval_height"],
    )
    seconds = training_seconds(trial)
    return [(seconds[step], scorer.score(trial / "save", step)[RACE_FIGURE]) for step in val_steps(trial)]


def final_test(trial: Path, prompt: str, views: int) -> dict | None:
    """Ground-truth figures of the last test stage (--views of its --views + 1 frames) and its step and seconds."""
    stages = sorted((int(m.group(1)), p) for p in trial.glob("save/it*-test") if (m := TEST_FOLDER.search(p.name)))
    if not stages:
        return None
    step, folder = stages[-1]
    data = eval_cameras(trial)
    camera = {"elevation": data["eval_elevation_deg"], "distance": data["eval_camera_distance"]}
    figures = score_test_stage(
        folder, prompt, n_test_views=views + 1, fovy=data["eval_fovy_deg"], views=views, **camera
    )
    seconds = training_seconds(trial)
    return {"step": step, "train_seconds": seconds[min(step, len(seconds) - 1)], **figures}


def stopped_by_budget(logged: list[float], budget: float) -> bool:
    """Whether a run's cumulative logged seconds end where the budget stopped it (not a wall-clock or step cap)."""
    return out_of_budget(logged[-1], logged[-1] - logged[-2] if len(logged) > 1 else 0.0, budget)


def common_budget(logged: dict[str, list[float]], budget: float) -> float:
    """The seconds both curves are cut at: the budget, or less where a side stopped short of it (trainer.max_time
    or max_steps), so that neither is compared over seconds the other did not get."""
    return min([budget, *(seconds[-1] for seconds in logged.values() if not stopped_by_budget(seconds, budget))])


def move_aside(trial: Path) -> None:
    """An interrupted comparison's run folder, kept under a new name (launch.py would add to it)."""
    if trial.exists():
        n = next(i for i in range(1, 10_000) if not trial.with_name(f"{trial.name}.interrupted{i}").exists())
        trial.rename(trial.with_name(f"{trial.name}.interrupted{n}"))


def one_race(args, prompt: str, seed: int, extra: list[str]) -> dict:
    """Train both sides one after the other, score their checks, and write race.json and the plot."""
    name = comparison_name(prompt, seed)
    folder = Path(args.out) / name
    trials = {label: Path(args.out) / label / name for label in LABELS}
    for label in LABELS:
        move_aside(trials[label])
        launch(args, train_command(args, label, prompt, seed, extra), folder / f"{label}.log")
    curves = {label: quality_curve(trials[label], prompt, args.views) for label in LABELS}
    logged = {label: training_seconds(trials[label]) for label in LABELS}
    result = {
        "prompt": prompt,
        "seed": seed,
        "clock": args.clock,
        "figure": RACE_FIGURE,
        **race(curves, args.fraction, budget=common_budget(logged, args.seconds)),
    }
    for label in LABELS:
        result[label].update(
            steps=len(logged[label]) - 1,
            train_seconds=logged[label][-1],
            reached_budget=stopped_by_budget(logged[label], args.seconds),
            final_test=final_test(trials[label], prompt, args.views),
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "race.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    plot_race(result, RACE_FIGURE, SETTINGS, folder / "ground_truth_vs_time.png", f"{prompt!r}, seed {seed}")
    return result


def finished_races(out: Path, clock: str) -> dict[tuple[str, int], dict]:
    """The races an --out folder holds already, by (prompt, seed); ClockError if one was timed on another clock."""
    found = {}
    for path in sorted(out.glob("*/race.json")):
        result = json.loads(path.read_text())
        if result.get("clock", "wall") != clock:
            raise ClockError(f"{path} was timed on the {result.get('clock', 'wall')} clock, not --clock {clock}")
        found[(result["prompt"], result["seed"])] = result
    return found


def write_summary(out: Path, races: list[dict], clock: str, failed: list[dict]) -> dict:
    summary = {"clock": clock, "race": summarise_races(races), "failed": failed}
    out.mkdir(parents=True, exist_ok=True)
    (out / "race-threestudio.json").write_text(json.dumps({**summary, "comparisons": races}, indent=1))
    return summary


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threestudio-root", default=os.environ.get("THREESTUDIO_ROOT"), help="holds launch.py")
    parser.add_argument("--prompts", type=Path, help="a file of prompts, one a line (default: --prompt)")
    parser.add_argument("--prompt", default="a red mug")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="logged training seconds of each side")
    parser.add_argument("--check-every", type=int, default=50, help="steps between quality checks (val stage)")
    parser.add_argument("--max-steps", type=int, default=100000, help="a step cap beyond the training budget")
    parser.add_argument("--wall-cap", type=float, default=10.0, help="trainer.max_time: this many times --seconds")
    parser.add_argument("--views", type=int, default=8, help="val views scored per check (data.n_val_views)")
    parser.add_argument("--fraction", type=float, default=0.9, help="target: this share of the way to the best")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall", help="training clock (CARV_CLOCK)")
    parser.add_argument("--jobs", type=int, default=1, help="comparisons run at once, each in its own process")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of each launch.py (OMP_NUM_THREADS)")
    parser.add_argument("--out", type=Path, default=Path("outputs/race-threestudio"))
    parser.add_argument("--resume", action="store_true", help="keep an existing --out, run what it lacks")
    parser.add_argument("--workdir", help="folder launch.py runs from (default: --threestudio-root)")
    parser.add_argument("--site-dir", action="append", default=[], help="a folder put first on PYTHONPATH")
    parser.add_argument("--dry-run", action="store_true")
    args, extra = parser.parse_known_args(argv)
    if not args.threestudio_root or not (Path(args.threestudio_root) / "launch.py").is_file():
        parser.error("give --threestudio-root (or THREESTUDIO_ROOT): a threestudio checkout holding launch.py")
    if args.seconds <= 0 or args.check_every < 1 or args.views < 1 or not 0 < args.fraction <= 1:
        parser.error("need --seconds > 0, --check-every >= 1, --views >= 1 and 0 < --fraction <= 1")
    if args.jobs < 1 or args.wall_cap < 1 or args.threads < 1:
        parser.error("need --jobs >= 1, --wall-cap >= 1 and --threads >= 1")
    if args.views in (2, 3):  # 3 val or 3 test cameras: threestudio's RandomCameraDataset calls torch.cross badly
        parser.error(f"--views {args.views} gives threestudio 3 val or test cameras, where it fails; take 1 or >= 4")
    if args.out.exists() and not args.resume and not args.dry_run:
        parser.error(f"{args.out} exists: give another --out, or --resume to run only the comparisons it lacks")
    args.site_dir = [str(Path(folder).resolve()) for folder in args.site_dir]  # launch.py runs from --workdir
    args.threestudio_root = str(Path(args.threestudio_root).resolve())  # so does launch.py's own path
    os.environ[CLOCK_VARIABLE] = args.clock  # launch.py's subprocesses inherit it
    try:
        clock_name()
    except ClockError as error:
        parser.error(str(error))
    return args, extra


def main(argv=None) -> None:
    args, extra = parse_arguments(argv)
    prompts = [args.prompt]
    if args.prompts is not None:
        prompts = [line.strip() for line in args.prompts.read_text().splitlines() if line.strip()]
    tasks = [(prompt, seed) for seed in args.seeds for prompt in prompts]
    if args.dry_run:
        for prompt, seed in tasks:
            for label in LABELS:
                print(shlex.join(train_command(args, label, prompt, seed, extra)))
        return
    try:
        done = finished_races(args.out, args.clock)
    except ClockError as error:
        raise SystemExit(f"race_threestudio: {error}") from None
    races, failed = [done[task] for task in tasks if task in done], []
    for (prompt, seed), outcome in run_races(args, [task for task in tasks if task not in done], extra):
        if isinstance(outcome, subprocess.CalledProcessError):  # one comparison failed: the others go on
            log = Path(args.out) / comparison_name(prompt, seed)
            failed.append({"prompt": prompt, "seed": seed, "returncode": outcome.returncode, "logs": str(log)})
            print(f"{prompt!r} seed {seed}: launch.py exited {outcome.returncode}; see {log}/*.log", flush=True)
        else:
            races.append(outcome)
            print(
                f"{prompt!r} seed {seed}: target {outcome['target']}, baseline "
                f"{outcome['baseline']['seconds_to_target']} s, CARV {outcome['carv']['seconds_to_target']} s, "
                f"speedup {outcome['speedup']}",
                flush=True,
            )
        write_summary(args.out, races, args.clock, failed)
    print(json.dumps(write_summary(args.out, races, args.clock, failed), indent=1))
    if failed:
        raise SystemExit(1)


def run_races(args, tasks: list[tuple[str, int]], extra: list[str]):
    """(task, race or CalledProcessError) as each comparison ends: in this process for --jobs 1, else in a pool."""
    if args.jobs == 1:
        for prompt, seed in tasks:
            try:
                yield (prompt, seed), one_race(args, prompt, seed, extra)
            except subprocess.CalledProcessError as error:
                yield (prompt, seed), error
        return
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(one_race, args, prompt, seed, extra): (prompt, seed) for prompt, seed in tasks}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except subprocess.CalledProcessError as error:
                yield futures[future], error


if __name__ == "__main__":
    main()
