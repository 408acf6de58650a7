"""Benchmark (not a test): `carv text-to-3d` with the defaults on every training prompt and held-out pair.

    python scripts/text_to_3d_prompts.py [--held-out] [--prompts load/prompts.txt] [--figure F.png] [key=value ...]

Prints, per prompt, the final prompt fidelity over 8 views and the command's wall-clock (teacher load
included), then how many prompts reach --threshold (the bar: 5 of 6 at 0.8 within 600 s each).
--figure writes one turntable frame of every run side by side, labelled with its prompt and fidelity.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from PIL import Image, ImageDraw

from carv.paths import load_dir
from carv.pipeline.runner import quiet_lightning, text_to_3d
from carv.toyworld.world import HELD_OUT_PAIRS, caption


def frames_figure(rows: list[dict], path: str, frame: int = 10, size: int = 160) -> None:
    """One turntable frame per run, scaled to size x size, under its prompt and fidelity."""
    canvas = Image.new("RGB", (size * len(rows), size + 28), "white")
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(rows):
        image = Image.open(Path(row["frames"]) / f"{frame}.png").convert("RGB")
        canvas.paste(image.resize((size, size), Image.BILINEAR), (i * size, 28))
        draw.text((i * size + 4, 2), row["prompt"], fill="black")
        draw.text((i * size + 4, 14), f"fidelity {row['fidelity']:.2f}", fill="black")
    canvas.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default=str(load_dir() / "prompts.txt"))
    parser.add_argument("--held-out", action="store_true", help="also the colour-object pairs the teacher never saw")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--config", default="cpu-carv")
    parser.add_argument("--out", default="outputs/text-to-3d-prompts.json")
    parser.add_argument("--figure", help="PNG of one turntable frame per run")
    args, overrides = parser.parse_known_args()
    if args.figure and not (
        Path(args.figure).suffix.lower() == ".png" and os.access(Path(args.figure).parent, os.W_OK)
    ):
        parser.error(f"--figure {args.figure}: give a .png path in an existing, writable folder")
    quiet_lightning()
    prompts = [line.strip() for line in Path(args.prompts).read_text().splitlines() if line.strip()]
    groups = {"training": prompts, "held_out": [caption(c, s) for c, s in HELD_OUT_PAIRS] if args.held_out else []}
    rows = []
    for group, members in groups.items():
        for prompt in members:
            metrics = text_to_3d(prompt, args.config, [*overrides, "trainer.enable_progress_bar=false"]).metrics
            row = {
                "group": group,
                "prompt": prompt,
                "fidelity": metrics["fidelity"]["mean"],
                "load": os.getloadavg()[0],
            }
            row.update(
                stderr=metrics["fidelity"]["stderr"], seconds=metrics["seconds"]["total"], steps=metrics["steps"]
            )
            row["frames"] = metrics["files"]["frames"]
            rows.append(row)
            print(json.dumps(row), flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if args.figure:
        frames_figure(rows, args.figure)
    for group in groups:
        members = [r for r in rows if r["group"] == group]
        if members:
            passed = sum(r["fidelity"] >= args.threshold for r in members)
            slowest = max(r["seconds"] for r in members)
            print(
                f"{group}: {passed}/{len(members)} prompts at fidelity >= {args.threshold}; slowest run {slowest:.0f} s"
            )


if __name__ == "__main__":
    main()
