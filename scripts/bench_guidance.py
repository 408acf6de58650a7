"""Phase costs (a, b) and step time versus K of the CARV score distillation, per teacher architecture.

Teachers (random weights: timing needs no trained ones): the tiny test fixture,
a mid-size Stable-Diffusion-architecture teacher at 32x32 latents and, when
CUDA is available, the Stable Diffusion 2.1-base architecture at 512x512 in
float16. Step times are ratios to the K = 1 step of the same run, beside the
ratio R (a + K b) / R (a + b) that the phase costs predict. On the CPU the
benchmark uses one thread unless --threads says otherwise (a shared CPU makes
multi-threaded timings meaningless). Freed host memory is kept in the process as the CPU pipeline keeps it
(carv.host_memory); --return-freed-memory leaves glibc's default, under which a step's teacher evaluations pay
page faults that the same evaluations alone do not, and the measured curve no longer adds up to a step.

    python scripts/bench_guidance.py [--json] [--repeats 3] [--threads 1] [--skip-mid] [--variance-ratio 67 1.45]
        [--return-freed-memory]

--variance-ratio W/B ...: for each ratio sigma_w^2 / sigma_b^2 (e.g. what `carv variance` or auto's probe
logged on the embedded teacher), the (R, K) that `auto` would choose on this machine's measured curve within
the cost of the R = 4, K = 1 baseline step, beside the linear model's choice (carv.cost_curve.best_configuration).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from carv.benchmarks.guidance import auto_choices, benchmark_teacher, format_table
from carv.diffusion.teacher import load_teacher
from carv.host_memory import keep_freed_memory
from carv.testing.architectures import mid_size_sd_teacher, sd21_base_teacher
from carv.testing.teachers import build_tiny_sd_teacher


def teachers(skip_mid: bool):
    """(name, build, device, repeats multiplier) of every teacher this machine can time."""
    yield "tiny", lambda folder: load_teacher(build_tiny_sd_teacher(folder / "tiny", seed=0)), "cpu", 4
    if not skip_mid:
        yield "mid", lambda folder: mid_size_sd_teacher(), "cpu", 1 / 3
    if torch.cuda.is_available():
        yield "mid_cuda", lambda folder: mid_size_sd_teacher(device="cuda", dtype=torch.float16), "cuda", 3
        yield "sd21_base_512", lambda folder: sd21_base_teacher(device="cuda"), "cuda", 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one flat JSON object instead of tables")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per measurement (median)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--skip-mid", action="store_true", help="skip the mid-size CPU teacher")
    parser.add_argument("--variance-ratio", type=float, nargs="*", default=[], help="sigma_w^2 / sigma_b^2 values")
    parser.add_argument(
        "--return-freed-memory", action="store_true", help="glibc's default malloc (freed blocks go back to the OS)"
    )
    args = parser.parse_args()
    if any(not ratio > 0 for ratio in args.variance_ratio):
        parser.error("--variance-ratio values must be positive")
    torch.set_num_threads(args.threads)
    kept = False if args.return_freed_memory else keep_freed_memory()
    flat = {"threads": args.threads, "cuda": torch.cuda.is_available(), "freed_memory_kept": kept}
    if not args.json:
        print(f"threads {args.threads}; freed host memory kept in the process: {kept}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name, build, device, scale in teachers(args.skip_mid):
            teacher = build(Path(folder))
            results = benchmark_teacher(teacher, repeats=max(1, round(args.repeats * scale)), device=device)
            results["auto"] = auto_choices(results, args.variance_ratio)
            flat.update({f"{name}.{key}": value for key, value in results.items()})
            if not args.json:
                print(format_table(name, results), flush=True)
                for choice in results["auto"]:
                    print(
                        f"auto at sigma_w2/sigma_b2 = {choice['ratio']:g}: measured curve R={choice['renders']} "
                        f"K={choice['k']} (ECM {choice['ecm']:.2f} vs R=4 K=1); linear R={choice['linear_renders']} "
                        f"K={choice['linear_k']} (ECM on the measured curve {choice['linear_ecm']:.2f})",
                        flush=True,
                    )
            del teacher
    if args.json:
        print(json.dumps(flat, indent=1))


if __name__ == "__main__":
    main()
