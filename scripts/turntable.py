"""Turntable videos of threestudio runs: re-render, convert to gif, and put two runs side by side.

For each run folder (outputs/<name>/<tag>@<time>/), runs threestudio's test stage from the last
checkpoint (launch.py --test resume=...; 120 views at 30 fps unless told), writes the newest
save/it<N>-test.mp4 also as a gif, and with --compare writes a labelled side-by-side video
(baseline versus CARV: the paper's visual) as mp4 and gif.

    python scripts/turntable.py RUN_DIR --threestudio-root ~/threestudio [--resolution 256] [--frames 120]
    python scripts/turntable.py BASELINE_RUN --compare CARV_RUN --labels "baseline R=4 K=1" "CARV R=1 K=16" \\
        --threestudio-root ~/threestudio --out compare/   [--skip-render] [--dry-run]
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

FPS = 30


def last_checkpoint(run_dir: Path) -> Path:
    """ckpts/last.ckpt of a run, else its newest checkpoint."""
    last = run_dir / "ckpts" / "last.ckpt"
    if last.is_file():
        return last
    checkpoints = sorted((run_dir / "ckpts").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise SystemExit(f"{run_dir} has no checkpoint in ckpts/ (is it a threestudio run folder?)")
    return checkpoints[-1]


def test_command(run_dir: Path, resolution: int | None, frames: int | None) -> list[str]:
    """launch.py --test of a run from its parsed config and last checkpoint (writes into the same run folder)."""
    config = run_dir / "configs" / "parsed.yaml"
    if not config.is_file():
        raise SystemExit(f"{run_dir} has no configs/parsed.yaml (is it a threestudio run folder?)")
    command = [sys.executable, "launch.py", "--config", str(config.resolve()), "--test", "--gpu", "0"]
    command.append(f"resume={last_checkpoint(run_dir).resolve()}")
    if resolution:
        command += [f"data.eval_width={resolution}", f"data.eval_height={resolution}"]
    if frames:
        command.append(f"data.n_test_views={frames}")
    return command


def latest_test_video(run_dir: Path) -> Path:
    """The save/it<N>-test.mp4 with the largest N."""
    videos = [
        (int(m.group(1)), p)
        for p in (run_dir / "save").glob("it*-test.mp4")
        if (m := re.match(r"it(\d+)-test", p.stem))
    ]
    if not videos:
        raise SystemExit(f"{run_dir}/save holds no it<N>-test.mp4; render it first (drop --skip-render)")
    return max(videos)[1]


def read_frames(video: Path) -> list[np.ndarray]:
    return [np.asarray(frame)[..., :3] for frame in imageio.mimread(video, memtest=False)]


def write_video(frames: list[np.ndarray], mp4: Path, fps: int = FPS) -> tuple[Path, Path]:
    """frames as mp4 and as a looping gif beside it."""
    imageio.mimwrite(mp4, frames, fps=fps, macro_block_size=1)
    gif = mp4.with_suffix(".gif")
    imageio.mimwrite(gif, frames, duration=1000 / fps, loop=0)
    return mp4, gif


def labelled(frame: np.ndarray, label: str, bar: int = 24) -> np.ndarray:
    """frame [H, W, 3] with a white bar above it holding label."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (frame.shape[1], frame.shape[0] + bar), "white")
    canvas.paste(Image.fromarray(frame), (0, bar))
    ImageDraw.Draw(canvas).text((6, 6), label, fill="black")
    return np.asarray(canvas)


def side_by_side(videos: list[Path], labels: list[str]) -> list[np.ndarray]:
    """Frames of the videos, each labelled, placed left to right (cut to the shortest, padded to the tallest)."""
    clips = [
        [labelled(frame, label) for frame in read_frames(video)] for video, label in zip(videos, labels, strict=True)
    ]
    length, height = min(map(len, clips)), max(clip[0].shape[0] for clip in clips)
    pad = [((0, height - clip[0].shape[0]), (0, 0), (0, 0)) for clip in clips]
    return [
        np.concatenate([np.pad(clip[i], p, constant_values=255) for clip, p in zip(clips, pad, strict=True)], axis=1)
        for i in range(length)
    ]


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a threestudio run folder (the baseline with --compare)")
    parser.add_argument("--compare", type=Path, help="a second run folder (CARV) to put beside the first")
    parser.add_argument("--labels", nargs=2, default=["baseline", "CARV"], help="labels of the two runs")
    parser.add_argument("--threestudio-root", type=Path, help="threestudio checkout holding launch.py")
    parser.add_argument("--resolution", type=int, help="render side in pixels (default: the run's eval size)")
    parser.add_argument("--frames", type=int, help="number of views (default: the run's, 120)")
    parser.add_argument("--skip-render", action="store_true", help="use the test videos the runs already have")
    parser.add_argument("--out", type=Path, help="folder of the side-by-side video (default: the first run's save/)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, write nothing")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_arguments(argv)
    runs = [args.run_dir] + ([args.compare] if args.compare else [])
    if not args.skip_render:
        if not (args.threestudio_root or args.dry_run):
            raise SystemExit("give --threestudio-root to render (or --skip-render to reuse the runs' videos)")
        for run_dir in runs:
            command = test_command(run_dir, args.resolution, args.frames)
            print(shlex.join(command))
            if not args.dry_run:
                subprocess.run(command, cwd=args.threestudio_root, check=True)
    if args.dry_run:
        return
    videos = [latest_test_video(run_dir) for run_dir in runs]
    for video in videos:
        print("wrote", *write_video(read_frames(video), video))
    if args.compare:
        out = args.out or args.run_dir / "save"
        out.mkdir(parents=True, exist_ok=True)
        print("wrote", *write_video(side_by_side(videos, args.labels), out / "side-by-side.mp4"))


if __name__ == "__main__":
    main()
