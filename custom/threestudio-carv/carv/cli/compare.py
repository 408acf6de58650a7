"""`carv compare PROMPT`: threestudio's baseline and CARV for the same training wall-clock, judged as they train."""

from __future__ import annotations

import argparse
import json

from . import subcommand


@subcommand("compare", "train the threestudio baseline and CARV for the same wall-clock and compare them")
def compare_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("prompt")
    parser.add_argument("--baseline", default="cpu-baseline", help="baseline config (default: %(default)s)")
    parser.add_argument("--carv", default="cpu-carv", help="CARV config (default: %(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=240.0, help="training wall-clock budget of each run (default: %(default)s)"
    )
    parser.add_argument("--threshold", type=float, default=0.8, help="prompt-fidelity threshold (default: %(default)s)")
    parser.add_argument(
        "--eval-every", type=int, default=10, help="steps between fidelity checks (default: %(default)s)"
    )
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
        from ..pipeline.compare import compare

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
