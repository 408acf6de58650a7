"""`carv variance RUN_DIR_OR_CONFIG`: costs and variance components at a run's checkpoints, ECM and (R, K)."""

from __future__ import annotations

import argparse
import json

from . import subcommand


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
    parser.add_argument(
        "--budget", type=float, help="per-step budget: the cost of a step of B renders at K = 1 (default: 4)"
    )
    parser.add_argument("--renders", type=int, help="R of the probe grid (default: 16)")
    parser.add_argument("--draws", type=int, help="K of the probe grid, even (default: 8)")
    parser.add_argument("--repeats", type=int, help="steps per direct variance check (default: 64)")
    parser.add_argument(
        "--camera-repeats", type=int, help="steps per camera-rule check of the baseline, iid and stratified (0: none)"
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--curve-draws",
        type=int,
        help="top of the teacher cost curve's ladder 1, 2, 4, ... (default: the largest R K of the ECM table)",
    )
    parser.add_argument("--curve-repeats", type=int, help="timed calls per ladder step of the curve (default: 3)")
    parser.add_argument("--out", help="report folder (default: a new variance@<timestamp> in the run folder)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    def run(args):
        from ..variance.report import ReportOptions, variance_report
        from ..variance.text import report_text

        names = ("renders", "draws", "repeats", "budget", "seed", "curve_draws", "curve_repeats", "camera_repeats")
        given = {name: getattr(args, name) for name in names}
        options = ReportOptions(**{name: value for name, value in given.items() if value is not None})
        report = variance_report(
            args.target, options, which=args.checkpoints, prompt=args.prompt, overrides=args.overrides, out=args.out
        )
        print(json.dumps(report, indent=1) if args.json else report_text(report))

    return run
