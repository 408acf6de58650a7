"""Measure the toy teacher's quality bars on many samples: python scripts/eval_toy_teacher.py [--samples 4]."""

import argparse
import json
import os
import time

import torch

from carv.cameras import VIEW_NAMES
from carv.toyworld.evaluation import image_sds, sample_images, score_samples
from carv.toyworld.judge import Judge
from carv.toyworld.teacher import load_teacher
from carv.toyworld.world import COLOUR_NAMES, HELD_OUT_PAIRS, SHAPE_NAMES, caption, training_pairs


def rate(flags: torch.Tensor) -> dict:
    n = flags.numel()
    p = float(flags.float().mean()) if n else float("nan")
    return {"rate": round(p, 4), "n": n, "standard_error": round((p * (1 - p) / max(n, 1)) ** 0.5, 4)}


def sds_prompt(i: int) -> str:
    """One training prompt per shape: shape i % 8 in colour (shape + 2) % 6 (no held-out pair)."""
    shape = i % len(SHAPE_NAMES)
    return caption(COLOUR_NAMES[(shape + 2 + i // len(SHAPE_NAMES)) % len(COLOUR_NAMES)], SHAPE_NAMES[shape])


def sampled_scores(pipe, judge, prompts, generator, args):
    flags_shape, flags_view = [], []
    for start in range(0, len(prompts), args.batch):
        chunk = prompts[start : start + args.batch]
        images = sample_images(pipe, chunk, generator, args.guidance, args.steps)
        scores = score_samples(judge, images, chunk)
        flags_shape.append(scores.shape_and_colour)
        flags_view.append(scores.view)
    return torch.cat(flags_shape), torch.cat(flags_view)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teacher", default="load/toy-teacher")
    parser.add_argument("--judge", default="load/judge")
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sds-prompts", type=int, default=8, help="prompts (one shape each) for the SDS bar (0: skip)")
    parser.add_argument("--skip-samples", action="store_true", help="only the SDS bar")
    parser.add_argument("--sds-steps", type=int, default=300)
    parser.add_argument("--sds-guidance", type=float, default=7.5)
    parser.add_argument("--sds-parametrisation", default="latents", choices=["latents", "pixels"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pipe, judge = load_teacher(args.teacher), Judge.load(args.judge)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.time()
    train = [(COLOUR_NAMES[c], SHAPE_NAMES[s]) for c, s in training_pairs()]
    report = {"settings": vars(args)}
    if not args.skip_samples:
        plain = [caption(c, s) for c, s in train for _ in range(args.samples)]
        report["train_prompts_shape_and_colour"] = rate(sampled_scores(pipe, judge, plain, generator, args)[0])
        held = [caption(c, s) for c, s in HELD_OUT_PAIRS for _ in range(args.samples)]
        report["held_out_pairs_shape_and_colour"] = rate(sampled_scores(pipe, judge, held, generator, args)[0])
        with_view = [caption(c, s, v) for c, s in train for v in VIEW_NAMES]
        shape_flags, view_flags = sampled_scores(pipe, judge, with_view, generator, args)
        report["view_prompts_shape_and_colour"] = rate(shape_flags)
        report["view_prompts_view_agreement"] = rate(view_flags)
        for v, name in enumerate(VIEW_NAMES):
            report[f"view_agreement_{name}"] = rate(view_flags[v :: len(VIEW_NAMES)])
    sds = []
    for i in range(args.sds_prompts):
        prompt = sds_prompt(i)
        image = image_sds(
            pipe,
            prompt,
            generator,
            steps=args.sds_steps,
            guidance_scale=args.sds_guidance,
            parametrisation=args.sds_parametrisation,
        )
        fidelity = float(judge.prompt_fidelity(image, prompt))
        sds.append({"prompt": prompt, "fidelity": round(fidelity, 4)})
        print(f"sds {prompt!r}: fidelity {fidelity:.3f}", flush=True)
    if sds:
        report["sds_images"] = sds
        report["sds_judged_as_prompt"] = rate(torch.tensor([s["fidelity"] > 0.5 for s in sds]))
    report["wall_s"] = round(time.time() - start, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
