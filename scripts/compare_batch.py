"""Benchmark (not a test): `carv compare` over prompts x seeds: the ground-truth race and the fidelity threshold.

    python scripts/compare_batch.py [--prompts load/prompts.txt] [--seeds 0 1 2] [--seconds 240]
        [--baseline cpu-baseline] [--carv cpu-carv] [--jobs 1 --threads 2] [--clock wall|process]
        [--out outputs/compare-batch.json [--resume]] [key=value ...]

Each comparison trains the baseline and CARV for --seconds of training each, so the batch takes about
2 x seconds x prompts x seeds / jobs plus teacher loads and turntables. Results are written to --out as they come.
With --jobs N > 1, comparisons run in N processes of --threads torch threads each (on a machine with at
least N x threads cores): the two sides of one comparison run one after the other in the same process, so
they share whatever load the other jobs put on the machine. --clock process (CARV_CLOCK=process, carv.timing)
measures training seconds as each process's CPU seconds, which other work on a shared machine does not inflate
(take --threads 1 with it: idle-spinning threads count too); --clock wall is wall-clock. The report records which.
An existing --out is refused unless --resume, which keeps its comparisons and runs only the missing ones.

The report's "race" is carv.pipeline.race.summarise_races over the comparisons' ground-truth races: the share
each side won, and the geometric-mean speedup to the ground-truth target with a bootstrap 95% interval.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from carv.paths import load_dir
from carv.pipeline.compare import compare, summarise_batch
from carv.pipeline.config import load_config
from carv.pipeline.errors import UserError
from carv.pipeline.race import summarise_races
from carv.pipeline.runner import quiet_lightning
from carv.timing import CLOCK_VARIABLE, CLOCKS, ClockError, clock_name


def one_comparison(prompt: str, seed: int, args: argparse.Namespace, overrides: list[str]) -> dict:
    torch.set_num_threads(args.threads)
    quiet_lightning()
    result = compare(
        prompt,
        baseline=args.baseline,
        carv=args.carv,
        seconds=args.seconds,
        threshold=args.threshold,
        eval_every=args.eval_every,
        overrides=[*overrides, f"seed={seed}"],
    )
    return {**result.summary, "folder": str(result.folder)}


def batch_race(summaries: list[dict]) -> dict:
    """The ground-truth race over the comparisons (carv.pipeline.race.summarise_races)."""
    return summarise_races([s["ground_truth"] for s in summaries])


def done_comparisons(out: Path, resume: bool, clock: str) -> list[dict]:
    """The comparisons an existing report holds (with --resume, on the same clock; without it it is refused)."""
    if not out.exists():
        return []
    if not resume:
        raise UserError(f"{out} exists: give another --out, or --resume to run only the comparisons it lacks")
    report = json.loads(out.read_text())
    if report.get("clock", "wall") != clock:
        raise UserError(f"{out} was measured on the {report.get('clock', 'wall')} clock, not --clock {clock}")
    return report["comparisons"]


def write_report(out: Path, summaries: list[dict], clock: str) -> dict:
    report = {"clock": clock, "race": batch_race(summaries), "batch": summarise_batch(summaries)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "comparisons": summaries}, indent=1), encoding="utf-8")
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default=str(load_dir() / "prompts.txt"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--baseline", default="cpu-baseline", help="baseline config (default: %(default)s)")
    parser.add_argument("--carv", default="cpu-carv", help="CARV config, e.g. cpu-carv-auto (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, help="comparisons run at once, each in its own process")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads per job")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall", help="training clock (CARV_CLOCK)")
    parser.add_argument("--out", type=Path, default=Path("outputs/compare-batch.json"))
    parser.add_argument("--resume", action="store_true", help="keep an existing --out, run what it lacks")
    args, overrides = parser.parse_known_args(argv)
    if args.jobs < 1 or args.threads < 1:
        parser.error("--jobs and --threads must be at least 1")
    os.environ[CLOCK_VARIABLE] = args.clock  # the spawned workers inherit it
    try:
        clock_name()
        summaries = done_comparisons(args.out, args.resume, args.clock)
        prompts = [line.strip() for line in Path(args.prompts).read_text().splitlines() if line.strip()]
        for config in (args.baseline, args.carv):  # fail here, not in the first worker
            load_config(config, [*overrides, f"seed={args.seeds[0]}"], prompt=prompts[0] if prompts else None)
    except (OSError, UserError, ClockError) as error:
        parser.error(str(error))
    if not prompts:
        parser.error(f"{args.prompts} holds no prompt")
    done = {(s["prompt"], s["seed"]) for s in summaries}
    tasks = [(prompt, seed) for seed in args.seeds for prompt in prompts if (prompt, seed) not in done]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(one_comparison, p, s, args, overrides): (p, s) for p, s in tasks}
        for future in as_completed(futures):
            try:
                summary = future.result()
            except UserError as error:  # a prompt the teacher or judge cannot take: stop the batch
                pool.shutdown(cancel_futures=True)
                parser.exit(2, f"compare_batch: {futures[future]}: {error}\n")
            summaries.append(summary)
            write_report(args.out, summaries, args.clock)
            b, c, truth = summary["baseline"], summary["carv"], summary["ground_truth"]
            print(
                f"{summary['prompt']!r} seed {summary['seed']}: to the ground-truth target {truth['target']} "
                f"baseline {truth['baseline']['seconds_to_target']} s, CARV {truth['carv']['seconds_to_target']} s "
                f"(speedup {truth['speedup']}); to the fidelity threshold baseline {b['seconds_to_threshold']} s, "
                f"CARV {c['seconds_to_threshold']} s",
                flush=True,
            )
    print(json.dumps(write_report(args.out, summaries, args.clock), indent=1))


if __name__ == "__main__":
    main()
