"""`carv distill`: distill the teacher into a one-step student (DMD), DMD2's estimator against CARV's."""

from __future__ import annotations

import argparse

from . import subcommand


@subcommand("distill", "distill the teacher into a one-step student (DMD) with the DMD2 and the CARV estimator")
def distill_arguments(parser: argparse.ArgumentParser):
    from ..distill.cli import add_arguments

    return add_arguments(parser)
