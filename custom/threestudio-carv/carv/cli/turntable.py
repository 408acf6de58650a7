"""`carv turntable RUN_DIR`: re-render a run's turntable from its checkpoint, without the teacher."""

from __future__ import annotations

import argparse

from . import subcommand


@subcommand("turntable", "re-render a run's turntable from its checkpoint")
def turntable_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("run_dir")
    parser.add_argument("--frames", type=int, default=120, help="number of views (default: %(default)s)")
    parser.add_argument(
        "--resolution", type=int, default=128, help="side of each frame in pixels (default: %(default)s)"
    )

    def run(args):
        from ..pipeline.turntable import turntable

        files = turntable(args.run_dir, frames=args.frames, resolution=args.resolution)
        print(f"turntable: {files['mp4']} and {files['gif']} (frames in {files['frames']})")

    return run
