"""`carv text-to-3d PROMPT`: train a 3D object for the prompt and write its run folder."""

from __future__ import annotations

import argparse

from . import add_config_arguments, subcommand


@subcommand("text-to-3d", "train a 3D object for a prompt with CARV and write its run folder")
def text_to_3d_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("prompt")
    add_config_arguments(parser)

    def run(args):
        from ..pipeline.runner import text_to_3d

        result = text_to_3d(args.prompt, args.config, args.overrides)
        summary(result.run_dir, result.metrics)

    return run


def summary(run_dir, metrics: dict) -> None:
    fidelity = metrics["fidelity"]
    score = (
        f"{fidelity['mean']:.3f} over {fidelity['views']} views" if fidelity["mean"] is not None else fidelity["note"]
    )
    own, whole = metrics["seconds"]["total"], metrics["run_seconds"]["total"]
    steps, this = metrics["steps"], metrics["steps_this_process"]
    line = f"steps: {steps}, wall-clock: {own:.0f} s"
    if this != steps:  # resumed
        line = f"steps: {steps} ({this} in this process), wall-clock: {own:.0f} s (the whole run {whole:.0f} s)"
    print(f"run folder: {run_dir}")
    if metrics["prompt"] != metrics["prompt_as_given"]:
        print(f"prompt: {metrics['prompt']!r}, as the teacher's captions write {metrics['prompt_as_given']!r}")
    print(f"{line}, prompt fidelity: {score}")
    print(f"turntable: {metrics['files']['mp4']}")
