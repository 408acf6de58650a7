"""Benchmark (not a test): `carv compare` over prompts x seeds, and the wall-clock ratio to the fidelity threshold.

    python scripts/compare_batch.py [--prompts load/prompts.txt] [--seeds 0 1 2] [--seconds 240] [key=value ...]

Each comparison trains the baseline and CARV for --seconds of training each, so the batch takes about
2 x seconds x prompts x seeds plus teacher loads and turntables. Results are appended to --out as they come.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from carv.pipeline.compare import compare, summarise_batch
from carv.pipeline.paths import PROJECT_ROOT
from carv.pipeline.runner import quiet_lightning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default=str(PROJECT_ROOT / "load" / "prompts.txt"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--out", default="outputs/compare-batch.json")
    args, overrides = parser.parse_known_args()
    quiet_lightning()
    prompts = [line.strip() for line in Path(args.prompts).read_text().splitlines() if line.strip()]
    summaries = []
    for seed in args.seeds:
        for prompt in prompts:
            result = compare(
                prompt,
                seconds=args.seconds,
                threshold=args.threshold,
                eval_every=args.eval_every,
                overrides=[*overrides, f"seed={seed}"],
            )
            summaries.append({**result.summary, "folder": str(result.folder)})
            report = {"batch": summarise_batch(summaries), "comparisons": summaries}
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=1), encoding="utf-8")
            b, c = result.summary["baseline"], result.summary["carv"]
            print(
                f"{prompt!r} seed {seed}: to threshold baseline {b['seconds_to_threshold']} s, "
                f"CARV {c['seconds_to_threshold']} s; final fidelity {b['final_fidelity']:.3f} vs {c['final_fidelity']:.3f}",
                flush=True,
            )
    print(json.dumps(summarise_batch(summaries), indent=1))


if __name__ == "__main__":
    main()
