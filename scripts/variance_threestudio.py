"""Benchmark (not a test): the measured ECM of a threestudio run's configuration at its checkpoint, directly.

    python scripts/variance_threestudio.py RUN_DIR --threestudio-root PATH [--repeats 64] [--seed 0]
        [--configuration R K PROPOSAL iid|strat ...] [--auto] [--untrained] [--threads N] [--out FILE] [key=value ...]

RUN_DIR is a launch.py --train trial folder (configs/parsed.yaml, ckpts/last.ckpt). At the checkpoint's parameters
(--untrained: the config's step-0 initialisation, seeded as launch.py seeds it), for each configuration: --repeats
whole-step gradients of lambda_sds * loss_sds through the run's own system, renderer, training cameras
(batch_size = R) and carv guidance at that K and proposal (custom/threestudio-carv/direct_check.py), their
variance (trace of the covariance, with its standard error), the median seconds of a repetition's render +
guidance + backward (on carv.timing's training clock; all configurations run round by round, so a change of load
falls on all alike), and the measured ECM = Var_baseline C_baseline / (Var C) against the equal-cost baseline
R = 4, K = 1, uniform t, IID, with its delta-method standard error (costs taken as exact). A configuration whose
camera batches are not orthonormal (threestudio 0.2.3 at batch_size 3) is flagged: it estimates another gradient.
Configurations: the run's own (data.batch_size, noise_samples_per_render, timestep_proposal, timestep_stratified),
the baseline, reuse only (the run's R and K, uniform t, IID), each --configuration, and with --auto the (R, K)
that `noise_samples_per_render: auto` would choose from one probe here (the run's proposal; its probe record,
with the predicted ECM, goes into the JSON). key=value arguments change the run's parsed config for the check, as
launch.py's do for a run (for example data.center_perturb=0: the variance under other training cameras, at the
same checkpoint; they are recorded in the JSON). Writes one JSON (refuses an existing --out; default
./variance-<trial>-it<step>.json) and prints a table.

threestudio is imported from --threestudio-root as launch.py imports it (first on sys.path), and this project's
custom/threestudio-carv is loaded once, by path, as launch.py loads custom/ folders. Without CUDA, threestudio
needs the test-only stand-ins: PYTHONPATH=tests/threestudio/launch_site:<root>:custom/threestudio-carv.
The prompt processor caches its embeddings in ./.threestudio_cache, as in launch.py.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from carv.pipeline.config import parse_overrides
from carv.pipeline.errors import UserError

EXTENSION_DIR = Path(__file__).resolve().parents[1] / "custom" / "threestudio-carv"
EXTENSION = "threestudio-carv"  # the module name launch.py gives custom/threestudio-carv
STRATIFICATION = {"iid": False, "strat": True, "stratified": True, "false": False, "true": True, "0": False, "1": True}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a launch.py --train trial folder")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="changes to the run's parsed config")
    parser.add_argument("--threestudio-root", default=os.environ.get("THREESTUDIO_ROOT"), help="holds threestudio/")
    parser.add_argument("--repeats", type=int, default=64, help="whole-step gradients per configuration")
    parser.add_argument(
        "--configuration",
        nargs=4,
        action="append",
        default=[],
        metavar=("R", "K", "PROPOSAL", "STRAT"),
        help="an extra configuration: renders, draws per render, timestep proposal, iid or strat (repeatable)",
    )
    parser.add_argument("--auto", action="store_true", help="also check what auto's probe chooses here")
    parser.add_argument("--untrained", action="store_true", help="at the config's initialisation (step 0)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every repetition's draws")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, help="the JSON to write (default ./variance-<trial>-it<step>.json)")
    return parser.parse_intermixed_args(argv)


def parse_configuration(values: list[str]) -> tuple[int, int, str, bool]:
    renders, k, proposal, stratified = values
    if not (renders.isdigit() and k.isdigit()) or stratified.lower() not in STRATIFICATION:
        raise UserError(f"--configuration R K PROPOSAL iid|strat, got {' '.join(values)}")
    return int(renders), int(k), proposal, STRATIFICATION[stratified.lower()]


def check_inputs(args) -> dict:
    """The run's files, step and output path; UserError (one line) for anything missing or in the way."""
    root = Path(args.threestudio_root or "")
    if not args.threestudio_root or not (root / "threestudio" / "__init__.py").is_file():
        raise UserError(f"--threestudio-root must be a threestudio checkout (holding threestudio/), got {root}")
    parsed, checkpoint = args.run_dir / "configs" / "parsed.yaml", args.run_dir / "ckpts" / "last.ckpt"
    for needed in (parsed, checkpoint):
        if not needed.is_file():
            raise UserError(f"{args.run_dir} is not a launch.py --train run: {needed} is missing")
    if args.repeats < 3:
        raise UserError(f"need --repeats >= 3, got {args.repeats}")
    if args.threads < 0:
        raise UserError(f"need --threads >= 0 (0: torch's default), got {args.threads}")
    step = 0 if args.untrained else torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    cfg = OmegaConf.merge(OmegaConf.load(parsed), parse_overrides(args.overrides))  # as `carv variance` does
    out = args.out or Path(f"variance-{cfg.get('trial_name', args.run_dir.name)}-it{step}.json")
    if out.exists():
        raise UserError(f"{out} exists: give another --out (nothing is overwritten)")
    return {"cfg": cfg, "checkpoint": None if args.untrained else checkpoint, "step": step, "out": out}


def load_threestudio(root: str):
    """threestudio from `root` (first on sys.path, as launch.py runs from it) and this extension, loaded once by
    path under launch.py's module name; returns its direct_check module."""
    sys.path.insert(0, str(Path(root).resolve()))
    import threestudio  # noqa: F401

    if EXTENSION not in sys.modules:
        spec = importlib.util.spec_from_file_location(EXTENSION, EXTENSION_DIR / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[EXTENSION] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"{EXTENSION}.direct_check")


@contextlib.contextmanager
def building(overrides: list[str]):
    """threestudio's errors for a config it cannot build (an unknown type or key: KeyError, TypeError; a value of the
    wrong type: OmegaConf's) as a one-line ValueError naming the config changes."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except (KeyError, TypeError, OmegaConfBaseException) as error:
        changes = " ".join(overrides) or "no changes"
        detail = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            f"the run's config (with {changes}) does not build: {type(error).__name__} {detail}"
        ) from error


def prepare(direct, inputs: dict, extra: list, args):
    """(DirectCheck, {role: Configuration}, auto's probe record or None); ValueError for a configuration it cannot run."""
    import pytorch_lightning as pl

    cfg = inputs["cfg"]
    configurations = direct.default_configurations(cfg)
    for values in extra:
        configurations.setdefault(f"extra {direct.Configuration(*values).name}", direct.Configuration(*values))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # launch.py's seed: an untrained system is the run's
    with building(args.overrides):
        check = direct.DirectCheck(cfg, inputs["checkpoint"])
    record = None
    if args.auto:
        chosen, record = check.auto_recommendation(args.seed + 1)
        configurations["auto"] = chosen
    unique = {}
    for role, configuration in configurations.items():
        if configuration not in unique.values():
            unique[role] = configuration
            with building(args.overrides):
                check.guidance(configuration)  # built now: a bad option stops here, before any measurement
    return check, unique, record


def table(results: dict) -> str:
    lines = [f"{'role':<22} {'configuration':<20} {'variance':>22} {'s/step':>8} {'ECM':>14}"]
    for role, r in results.items():
        name = f"R{r['R']} K{r['K']} {r['proposal']}{'+strat' if r['stratified'] else ''}"
        variance = f"{r['measured']:.4g} +- {r['measured_se']:.2g}"
        mark = "" if r["cameras_orthonormal"] else "  skewed cameras"
        lines.append(
            f"{role:<22} {name:<20} {variance:>22} {r['seconds']:>8.4f} {r['ecm']:>6.2f} +- {r['ecm_se']:.2f}{mark}"
        )
    if not all(r["cameras_orthonormal"] for r in results.values()):
        lines.append(
            "skewed cameras: the dataset's batches at that R have non-orthonormal camera rotations (threestudio 0.2.3 "
            "at batch_size 3: torch.cross without dim); that estimator has another expectation, its ECM is not comparable"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_arguments(argv)
    try:
        extra = [parse_configuration(values) for values in args.configuration]
        inputs = check_inputs(args)
    except UserError as error:
        print(f"variance_threestudio: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    direct = load_threestudio(args.threestudio_root)
    try:
        check, configurations, record = prepare(direct, inputs, extra, args)
    except ValueError as error:
        print(f"variance_threestudio: {error}", file=sys.stderr)
        return 2
    with tqdm(total=args.repeats * len(configurations), desc="whole-step gradients") as progress:
        results = direct.measure(check, configurations, args.repeats, args.seed, progress)
    for role, configuration in configurations.items():
        results[role]["name"] = configuration.name
    report = {
        "run_dir": str(args.run_dir.resolve()),
        "checkpoint": None if inputs["checkpoint"] is None else str(inputs["checkpoint"].resolve()),
        "step": inputs["step"],
        "repeats": args.repeats,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "objective": "lambda_sds * loss_sds (regularisers left out)",
        "overrides": args.overrides,
        "configurations": results,
        "auto_probe": record,
        "command": [sys.executable, *sys.argv],
    }
    with open(inputs["out"], "x", encoding="utf-8") as stream:
        json.dump(report, stream, indent=1)
    print(table(results))
    print(f"wrote {inputs['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
