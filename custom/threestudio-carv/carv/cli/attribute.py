"""`carv attribute`: attribute teacher samples to training images (TRAK) with IID, grid and CARV draws."""

from __future__ import annotations

import argparse

from . import subcommand


@subcommand("attribute", "attribute teacher samples to training images (TRAK) with IID, grid and CARV draws")
def attribute_arguments(parser: argparse.ArgumentParser):
    from ..attribution.command import add_arguments, run

    add_arguments(parser)
    return run
