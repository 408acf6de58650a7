"""Sweep equal-cost (R, K) configurations of a threestudio config, then tabulate the runs.

Given a base config, a per-step budget and a cost model, lists the (R, K) pairs that fit the budget
(the most renders R for each K), runs threestudio's launch.py for each pair x prompt x seed (or prints
the commands with --dry-run), and collects every run's logged metrics into sweep.csv and sweep.png.
The cost model is the measured C(R, K) = A(R) + c(R K) of a teacher curve c(n) (--cost-curve: a
`carv variance` report.json, its last checkpoint's, or a `scripts/bench_guidance.py --json` output,
with --cost-curve-teacher naming its teacher), else the linear C(R, K) = R (a + K b) (given a, b, or
fitted to the phase timings that earlier runs logged). The first line of output names the model.

    python scripts/sweep_rk.py --config configs/carv-dreamfusion-sd.yaml --threestudio-root ~/threestudio \\
        --prompts prompts.txt --seeds 0 1 2 --a 4 --b 1 --budget 20 [--variant baseline] [--dry-run]
    python scripts/sweep_rk.py ... --cost-curve bench.json --cost-curve-teacher sd21_base_512   # seconds
    python scripts/sweep_rk.py --collect-only --out sweeps/sd   # tables runs already made

launch.py runs from --workdir (default: the threestudio root), whose custom/ must hold threestudio-carv.
A run whose folder exists already is not started again (nothing is overwritten): choose another --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from carv.accounting import CostModel, equal_cost_configurations
from carv.cost_curve import MeasuredCostModel, curve_from_records

PHASES = ("train/time_render", "train/time_guidance", "train/time_backward")
SUMMARY_METRICS = ("train/loss_sds", "train/grad_norm", "train/weight_ess", "train/t_mean")
VARIANTS_FILE = Path(__file__).resolve().parents[1] / "configs" / "variants.yaml"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60] or "prompt"


def variant_overrides(name: str | None) -> list[str]:
    """The overrides of a named variant in configs/variants.yaml ([] for none)."""
    if not name:
        return []
    variants = OmegaConf.to_container(OmegaConf.load(VARIANTS_FILE))
    if name not in variants:
        raise SystemExit(f"unknown variant {name!r}; configs/variants.yaml has: {', '.join(variants)}")
    return list(variants[name])


def run_name(config: Path, renders: int, k: int) -> str:
    return f"{config.stem}-R{renders}K{k}"


def run_folder(config: Path, out: Path, renders: int, k: int, prompt: str, seed: int) -> Path:
    return out.resolve() / run_name(config, renders, k) / f"{slug(prompt)}-seed{seed}"


def launch_command(
    config: Path,
    out: Path,
    renders: int,
    k: int,
    prompt: str,
    seed: int,
    extra: list[str],
    threestudio_root: Path | None = None,
) -> list[str]:
    """launch.py arguments of one run; its folder is run_folder(): <out>/<config>-R<R>K<K>/<prompt>-seed<seed>.

    The sweep's own keys come after `extra`, so that a variant cannot undo the (R, K) of the run.
    """
    return [
        sys.executable,
        str(threestudio_root.resolve() / "launch.py") if threestudio_root else "launch.py",
        "--config",
        str(config.resolve()),
        "--train",
        "--gpu",
        "0",
        *extra,
        f"system.prompt_processor.prompt={prompt}",
        f"seed={seed}",
        f"data.batch_size={renders}",
        f"system.guidance.noise_samples_per_render={k}",
        f"exp_root_dir={out.resolve()}",
        f"name={run_name(config, renders, k)}",
        f"tag={run_folder(config, out, renders, k, prompt, seed).name}",
        "use_timestamp=false",
    ]


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """Rows of a run's csv_logs/*/metrics.csv, numbers only."""
    rows = []
    for path in sorted(run_dir.glob("csv_logs/*/metrics.csv")):
        with open(path, newline="") as stream:
            for row in csv.DictReader(stream):
                rows.append({key: float(value) for key, value in row.items() if value not in ("", None)})
    return rows


def step_seconds(rows: list[dict[str, float]]) -> list[float]:
    """Wall-clock of each logged step: render + guidance + backward."""
    return [sum(row[p] for p in PHASES) for row in rows if all(p in row for p in PHASES)]


def fit_cost_model(runs: list[tuple[int, int, float]]) -> CostModel:
    """Least-squares a, b of mean step time = R a + R K b over runs (R, K, seconds) with at least two K."""
    s_rr = sum(r * r for r, _, _ in runs)
    s_rk = sum(r * r * k for r, k, _ in runs)
    s_kk = sum((r * k) ** 2 for r, k, _ in runs)
    y_r = sum(r * y for r, _, y in runs)
    y_k = sum(r * k * y for r, k, y in runs)
    det = s_rr * s_kk - s_rk * s_rk
    if len({k for _, k, _ in runs}) < 2 or det <= 0:
        raise ValueError("fitting a and b needs runs at two or more values of K")
    a, b = (y_r * s_kk - y_k * s_rk) / det, (s_rr * y_k - s_rk * y_r) / det
    return CostModel(max(a, 0.0), b)


def summarize_run(run_dir: Path, renders: int, k: int) -> dict:
    rows = read_metrics(run_dir)
    seconds = step_seconds(rows)
    summary = {"run": str(run_dir), "R": renders, "K": k, "steps": len(seconds)}
    summary["mean_step_seconds"] = sum(seconds) / len(seconds) if seconds else math.nan
    for name in SUMMARY_METRICS:
        values = [row[name] for row in rows if name in row]
        summary[f"last_{name.split('/')[-1]}"] = values[-1] if values else math.nan
    return summary


def discovered_runs(out: Path) -> list[tuple[Path, int, int]]:
    """Run folders <out>/<name>-R<R>K<K>/<tag> with their R and K."""
    found = []
    for run_dir in sorted(out.glob("*-R*K*/*")):
        match = re.search(r"-R(\d+)K(\d+)$", run_dir.parent.name)
        if match and run_dir.is_dir():
            found.append((run_dir, int(match.group(1)), int(match.group(2))))
    return found


def write_table(summaries: list[dict], out: Path) -> None:
    """sweep.csv and sweep.png (mean step time and last SDS loss per (R, K))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(out / "sweep.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(summaries[0]))
        writer.writeheader()
        writer.writerows(summaries)
    labels = sorted({(s["R"], s["K"]) for s in summaries})
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, key in zip(axes, ("mean_step_seconds", "last_loss_sds"), strict=True):
        for index, (renders, k) in enumerate(labels):
            values = [s[key] for s in summaries if (s["R"], s["K"]) == (renders, k)]
            axis.scatter([index] * len(values), values)
        axis.set_xticks(range(len(labels)), [f"R={r}\nK={k}" for r, k in labels])
        axis.set_title(key)
    figure.tight_layout()
    figure.savefig(out / "sweep.png", dpi=120)


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="base threestudio config (e.g. configs/carv-dreamfusion-sd.yaml)")
    parser.add_argument("--threestudio-root", type=Path, help="threestudio checkout holding launch.py")
    parser.add_argument("--workdir", type=Path, help="folder to run launch.py from (default: --threestudio-root)")
    parser.add_argument("--prompts", type=Path, help="file with one prompt per line")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--a", type=float, help="cost of one render + encode + backward (any unit)")
    parser.add_argument("--b", type=float, help="cost of one guided teacher evaluation (same unit)")
    parser.add_argument("--costs-from", type=Path, nargs="+", help="run folders whose logged phase times fit a, b")
    parser.add_argument(
        "--cost-curve", type=Path, help="measured teacher curve: a carv variance report.json or bench_guidance JSON"
    )
    parser.add_argument("--cost-curve-teacher", help="the teacher of a bench_guidance JSON (default: its last)")
    parser.add_argument("--budget", type=float, help="per-step budget in the unit of the costs (default: C(4, 1))")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="K values to consider")
    parser.add_argument("--variant", help="a variant of configs/variants.yaml applied to every run")
    parser.add_argument("--out", type=Path, default=Path("sweeps"), help="exp_root_dir of the runs and the table")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--collect-only", action="store_true", help="only tabulate the runs under --out")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    return parser.parse_args(argv)


def measured_costs(data: dict, teacher: str | None = None) -> MeasuredCostModel:
    """C(R, K) = A(R) + c(R K) (seconds) from a carv variance report (its last checkpoint's a and curve) or a
    bench_guidance JSON (a teacher's a, render curve and curve)."""
    if "checkpoints" in data:
        costs = data["checkpoints"][-1]["costs"]
        if "curve" not in costs:
            raise SystemExit("this variance report has no measured cost curve (made before costs.curve existed)")
        return MeasuredCostModel(costs["a"], curve_from_records(costs["curve"]))
    teachers = [key.removesuffix(".curve") for key in data if key.endswith(".curve")]
    if not teachers:
        raise SystemExit("--cost-curve needs a carv variance report.json or a bench_guidance.py --json output")
    name = teacher or teachers[-1]
    if name not in teachers:
        raise SystemExit(f"no teacher {name!r} in the bench output; it has: {', '.join(teachers)}")
    render_curve = curve_from_records(data[f"{name}.render_curve"]) if f"{name}.render_curve" in data else None
    return MeasuredCostModel(data[f"{name}.a_ms"] / 1e3, curve_from_records(data[f"{name}.curve"]), None, render_curve)


def describe(costs) -> str:
    """The cost model in one phrase."""
    if isinstance(costs, MeasuredCostModel):
        points = ", ".join(f"{n}: {s:.4g}" for n, s in zip(costs.curve.draws, costs.curve.seconds, strict=True))
        return f"cost model: measured C(R, K) = A(R) + c(R K), a={costs.a:.4g}, c(n) at n = {points}"
    return f"cost model: linear C(R, K) = R (a + K b), a={costs.a:.4g}, b={costs.b:.4g}"


def cost_model(args) -> CostModel | MeasuredCostModel:
    if args.cost_curve:
        try:
            data = json.loads(args.cost_curve.read_text())
        except (OSError, ValueError) as error:
            raise SystemExit(f"cannot read the cost curve {args.cost_curve}: {error}") from None
        return measured_costs(data, args.cost_curve_teacher)
    if args.costs_from:
        runs = []
        for run_dir in args.costs_from:
            cfg = OmegaConf.load(run_dir / "configs" / "parsed.yaml")
            seconds = step_seconds(read_metrics(run_dir))
            runs.append(
                (cfg.data.batch_size, cfg.system.guidance.noise_samples_per_render, sum(seconds) / len(seconds))
            )
        return fit_cost_model(runs)
    if args.a is None or args.b is None:
        raise SystemExit(
            "give the costs: --cost-curve FILE, --a and --b, or --costs-from RUN_DIR... (runs at two or more K)"
        )
    return CostModel(args.a, args.b)


def main(argv=None) -> None:
    args = parse_arguments(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.collect_only:
        if not (args.config and args.prompts and (args.threestudio_root or args.dry_run)):
            raise SystemExit("give --config, --prompts and --threestudio-root (or --dry-run)")
        costs = cost_model(args)
        budget = args.budget if args.budget is not None else costs.step_cost(4, 1)
        pairs = equal_cost_configurations(costs, budget, tuple(args.k))
        predicted = ", ".join(f"C{pair} = {costs.step_cost(*pair):.4g}" for pair in pairs)
        print(f"{describe(costs)}; budget {budget:.4g}; (R, K) pairs: {pairs}; predicted step cost: {predicted}")
        prompts = [line.strip() for line in args.prompts.read_text().splitlines() if line.strip()]
        extra = variant_overrides(args.variant) + list(args.overrides)
        runs = [(r, k, prompt, seed) for r, k in pairs for prompt in prompts for seed in args.seeds]
        taken = [folder for run in runs if (folder := run_folder(args.config, args.out, *run)).exists()]
        if taken and not args.dry_run:
            raise SystemExit(f"{taken[0]} exists ({len(taken)} of the sweep's runs do): choose another --out")
        for run in runs:
            command = launch_command(args.config, args.out, *run, extra, args.threestudio_root)
            print(shlex.join(command))
            if not args.dry_run:
                finished = subprocess.run(command, cwd=args.workdir or args.threestudio_root)
                if finished.returncode != 0:
                    raise SystemExit(f"launch.py failed (exit {finished.returncode}) for R={run[0]} K={run[1]}")
        if args.dry_run:
            return
    summaries = [summarize_run(run_dir, renders, k) for run_dir, renders, k in discovered_runs(args.out)]
    if not summaries:
        raise SystemExit(f"no runs found under {args.out}")
    write_table(summaries, args.out)
    print(f"wrote {args.out / 'sweep.csv'} and {args.out / 'sweep.png'} ({len(summaries)} runs)")


if __name__ == "__main__":
    main()
