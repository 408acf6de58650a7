"""The `carv` command: one subcommand per module of this package (each thin: it calls the pipeline's functions).

A subcommand is a function decorated with @subcommand(name, help) that adds its arguments to the parser it is
given and returns run(args); add its module to COMMANDS. Modules are imported to build the parser, so they import
what they run (torch, Lightning) inside run(): `carv --help` starts at once. Mistakes a user can fix (UserError)
print one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

COMMANDS = ("text_to_3d", "compare", "turntable", "variance", "attribute", "distill")
"""The modules of this package that register subcommands, in the order `carv --help` lists them."""
SUBCOMMANDS = {}


def subcommand(name: str, help: str):
    """Register a parser-builder (parser -> run(args)) under `name`."""

    def register(add_arguments):
        SUBCOMMANDS[name] = (help, add_arguments)
        return add_arguments

    return register


def add_config_arguments(parser: argparse.ArgumentParser, default: str = "cpu-carv") -> None:
    parser.add_argument("--config", default=default, help="a YAML file or a name in configs/ (default: %(default)s)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. trainer.max_steps=100"
    )


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only `command`'s own arguments are built (its module may import what they need),
    the other subcommands are listed with their help line."""
    for module in COMMANDS:
        importlib.import_module(f".{module}", __name__)
    top = argparse.ArgumentParser(prog="carv", description="CARV text-to-3D on any machine")
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True)
    for name, (help, add_arguments) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help, description=help)
        if name == command:
            sub.set_defaults(run=add_arguments(sub))
    return top


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line: its first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    top = parser(chosen_command(argv))
    args, extra = top.parse_known_args(argv)
    unknown = [item for item in extra if item.startswith("-") or "=" not in item or not hasattr(args, "overrides")]
    if unknown:
        top.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    from ..pipeline.errors import UserError
    from ..timing import ClockError, clock_name

    try:
        clock_name()  # a bad $CARV_CLOCK is refused before any work, not at the first timed step
        args.run(args)
    except (UserError, ClockError) as error:
        print(f"carv {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
