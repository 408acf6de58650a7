"""The `carv` command: text-to-3d, compare and turntable (thin: each calls the pipeline's library functions).

Mistakes a user can fix (UserError) print one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

SUBCOMMANDS = {}


def subcommand(name: str, help: str):
    """Register a (parser-builder, runner) pair under `name`."""

    def register(add_arguments):
        SUBCOMMANDS[name] = (help, add_arguments)
        return add_arguments

    return register


def add_config_arguments(parser: argparse.ArgumentParser, default: str = "cpu-carv") -> None:
    parser.add_argument("--config", default=default, help="a YAML file or a name in configs/ (default: %(default)s)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. trainer.max_steps=100"
    )


@subcommand("text-to-3d", "train a 3D object for a prompt with CARV and write its run folder")
def text_to_3d_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("prompt")
    add_config_arguments(parser)

    def run(args):
        from .pipeline.runner import text_to_3d

        result = text_to_3d(args.prompt, args.config, args.overrides)
        summary(result.run_dir, result.metrics)

    return run


@subcommand("compare", "train the threestudio baseline and CARV for the same wall-clock and compare them")
def compare_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("prompt")
    parser.add_argument("--baseline", default="cpu-baseline", help="baseline config (default: %(default)s)")
    parser.add_argument("--carv", default="cpu-carv", help="CARV config (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=240.0, help="training wall-clock budget of each run")
    parser.add_argument("--threshold", type=float, default=0.8, help="prompt-fidelity threshold")
    parser.add_argument("--eval-every", type=int, default=10, help="steps between fidelity checks")
    for side in ("baseline", "carv"):
        parser.add_argument(
            f"--{side}-set",
            action="append",
            default=[],
            metavar="key=value",
            help=f"an override of the {side} run only",
        )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides applied to both runs")

    def run(args):
        from .pipeline.compare import compare

        result = compare(
            args.prompt,
            baseline=args.baseline,
            carv=args.carv,
            seconds=args.seconds,
            threshold=args.threshold,
            eval_every=args.eval_every,
            overrides=args.overrides,
            baseline_overrides=args.baseline_set,
            carv_overrides=args.carv_set,
        )
        print(json.dumps(result.summary, indent=1))
        print(f"compare folder: {result.folder}")

    return run


@subcommand("turntable", "re-render a run's turntable from its checkpoint")
def turntable_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("run_dir")
    parser.add_argument("--frames", type=int, default=120, help="number of views (default: %(default)s)")
    parser.add_argument(
        "--resolution", type=int, default=128, help="side of each frame in pixels (default: %(default)s)"
    )

    def run(args):
        from .pipeline.turntable import turntable

        files = turntable(args.run_dir, frames=args.frames, resolution=args.resolution)
        print(f"turntable: {files['mp4']} and {files['gif']} (frames in {files['frames']})")

    return run


def summary(run_dir, metrics: dict) -> None:
    fidelity = metrics["fidelity"]
    score = (
        f"{fidelity['mean']:.3f} over {fidelity['views']} views" if fidelity["mean"] is not None else fidelity["note"]
    )
    print(f"run folder: {run_dir}")
    print(f"steps: {metrics['steps']}, wall-clock: {metrics['seconds']['total']:.0f} s, prompt fidelity: {score}")
    print(f"turntable: {metrics['files']['mp4']}")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="carv", description="CARV text-to-3D on any machine")
    commands = top.add_subparsers(dest="command", required=True)
    for name, (help, add_arguments) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=add_arguments(sub))
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args, extra = top.parse_known_args(argv)
    unknown = [item for item in extra if item.startswith("-") or "=" not in item or not hasattr(args, "overrides")]
    if unknown:
        top.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    from .pipeline.errors import UserError
    from .pipeline.runner import quiet_lightning

    quiet_lightning()
    try:
        args.run(args)
    except UserError as error:
        print(f"carv {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


@subcommand("variance", "measure costs and variance components at a run's checkpoints; ECM table and recommendation")
def variance_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("target", metavar="RUN_DIR_OR_CONFIG", help="a run folder, or a config with --prompt")
    parser.add_argument("--prompt", help="prompt when the target is a config (probes its initial scene)")
    parser.add_argument(
        "--checkpoints",
        choices=("last", "ends", "all"),
        default="last",
        help="of a run folder: last, earliest and last (ends), or all (default: last)",
    )
    parser.add_argument("--budget", type=float, help="per-step budget in units of a + b (default: 4, R = 4 K = 1)")
    parser.add_argument("--renders", type=int, help="R of the probe grid (default: 16)")
    parser.add_argument("--draws", type=int, help="K of the probe grid, even (default: 8)")
    parser.add_argument("--repeats", type=int, help="steps per direct variance check (default: 64)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", help="report folder (default: a new variance@<timestamp> in the run folder)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    def run(args):
        from .variance.report import ReportOptions, variance_report
        from .variance.text import report_text

        given = {name: getattr(args, name) for name in ("renders", "draws", "repeats", "budget", "seed")}
        options = ReportOptions(**{name: value for name, value in given.items() if value is not None})
        report = variance_report(
            args.target, options, which=args.checkpoints, prompt=args.prompt, overrides=args.overrides, out=args.out
        )
        print(json.dumps(report, indent=1) if args.json else report_text(report))

    return run


@subcommand("attribute", "attribute teacher samples to training images (TRAK) with IID, grid and CARV draws")
def attribute_arguments(parser: argparse.ArgumentParser):
    from .attribution.command import add_arguments, run

    add_arguments(parser)
    return run


if __name__ == "__main__":
    sys.exit(main())
