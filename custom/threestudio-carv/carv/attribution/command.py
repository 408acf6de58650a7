"""The `carv attribute` command line: options, checks that fail in one line, then the run."""

from __future__ import annotations

import argparse
from pathlib import Path

from .experiment import DEFAULT_QUERIES, AttributionSettings

DEFAULTS = AttributionSettings()


def budgets(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"budgets must be comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--query", action="append", help=f"a query prompt, repeatable (default: {DEFAULT_QUERIES})")
    parser.add_argument("--teacher", default="", help="teacher folder (default: load/toy-teacher)")
    parser.add_argument("--train-images", type=int, default=DEFAULTS.train_images, help="(default: %(default)s)")
    parser.add_argument("--views-per-shape", type=int, default=DEFAULTS.views_per_shape, help="(default: %(default)s)")
    parser.add_argument(
        "--budgets", type=budgets, default=DEFAULTS.budgets, help="draws per example, e.g. 1,2,4 (default: 1,2,4)"
    )
    parser.add_argument("--iid-draws", type=int, default=DEFAULTS.iid_draws, help="(default: %(default)s)")
    parser.add_argument("--truth-draws", type=int, default=DEFAULTS.truth_draws, help="(default: %(default)s)")
    parser.add_argument("--proposal", default=DEFAULTS.proposal, help="CARV's q(t) (default: %(default)s)")
    parser.add_argument("--proj-dim", type=int, default=DEFAULTS.proj_dim, help="(default: %(default)s)")
    parser.add_argument(
        "--ridge", type=float, default=DEFAULTS.ridge, help="TRAK kernel damping (default: %(default)s)"
    )
    parser.add_argument("--query-steps", type=int, default=DEFAULTS.query_steps, help="(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--tag", default=DEFAULTS.tag, help="report folder name before @timestamp")
    parser.add_argument(
        "--out", default="", help="parent of the report folder (default: outputs/attribution of the working folder)"
    )


def settings_of(args: argparse.Namespace) -> AttributionSettings:
    from ..paths import load_dir

    return AttributionSettings(
        teacher=args.teacher or str(load_dir() / "toy-teacher"),
        queries=tuple(args.query) if args.query else DEFAULT_QUERIES,
        train_images=args.train_images,
        views_per_shape=args.views_per_shape,
        budgets=args.budgets,
        iid_draws=args.iid_draws,
        truth_draws=args.truth_draws,
        proposal=args.proposal,
        proj_dim=args.proj_dim,
        ridge=args.ridge,
        query_steps=args.query_steps,
        seed=args.seed,
        tag=args.tag,
        out=args.out or str(Path("outputs") / "attribution"),
    )


def checked(settings: AttributionSettings) -> AttributionSettings:
    """The settings, or a UserError (one line) for a missing teacher, an unknown word or a bad size."""
    from ..pipeline.errors import UserError
    from ..toyworld.tokenizer import unknown_words
    from .experiment import check_settings

    folder = Path(settings.teacher)
    if not (folder / "model_index.json").is_file() or not (folder / "tokenizer").is_dir():
        raise UserError(f"teacher folder {folder} is missing or not a diffusers folder (no model_index.json)")
    try:
        check_settings(settings, lambda prompt: unknown_words(prompt, folder / "tokenizer"))
    except ValueError as error:
        raise UserError(str(error)) from None
    return settings


def run(args: argparse.Namespace) -> None:
    from ..pipeline.runner import new_folder
    from .experiment import run_attribution

    settings = checked(settings_of(args))
    folder = new_folder(Path(settings.out), settings.tag)
    report = run_attribution(settings, folder)
    for row in report["multiplier"]:
        k = row["budget"]
        carv, iid = report["curves"]["carv"][k], report["curves"]["iid"].get(k)
        iid_text = f"IID {iid['spearman']:.3f}" if iid else "IID -"
        print(
            f"K={k}: CARV {carv['spearman']:.3f} +- {carv['se']:.3f}, {iid_text}, multiplier {row['multiplier']:.2f} ({row['bound']})"
        )
    print(f"attribution folder: {folder}")
