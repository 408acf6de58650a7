"""Build the toy world's teacher and judge from nothing: python scripts/train_toy_teacher.py [--smoke] [--resume]."""

import argparse
import json
import os
import shutil
import time

import torch

from carv.toyworld.recipe import RecipeSettings, build_everything, smoke_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="load", help="folder that receives toy-teacher/ and judge/")
    parser.add_argument("--work-dir", default="outputs/toy-teacher-work", help="renders, checkpoints, timings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the work folder's results and checkpoints")
    parser.add_argument("--smoke", action="store_true", help="a few steps of every stage, to test the recipe")
    parser.add_argument("--unet-steps", type=int, default=None, help="override the UNet training length")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="where to train: cpu (default) or cuda")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        parser.error(f"--device {args.device!r}: {error}")
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_available()):
        parser.error(f"--device {args.device!r}: use cpu, or cuda on a machine where torch sees a CUDA GPU")
    torch.set_num_threads(args.threads)
    if not args.resume:  # checked before anything in --out or --work-dir is removed
        shutil.rmtree(args.work_dir, ignore_errors=True)
        shutil.rmtree(os.path.join(args.out, "judge"), ignore_errors=True)
    settings = smoke_settings(args.seed) if args.smoke else RecipeSettings(seed=args.seed)
    if args.unet_steps is not None:
        settings.unet_steps = args.unet_steps
    start = time.time()
    times = build_everything(args.out, args.work_dir, settings, device=str(device))
    print(json.dumps(times, indent=1))
    print(f"this run: {time.time() - start:.0f} s wall-clock")


if __name__ == "__main__":
    main()
