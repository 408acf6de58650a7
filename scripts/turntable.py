"""Turntable videos of threestudio runs: re-render, convert to gif, and put two runs side by side.

For each run folder (outputs/<name>/<tag>@<time>/), runs threestudio's test stage from the last
checkpoint (launch.py --test resume=...; the run's views and eval size unless told) into a new folder
<run>/turntables/<views>views-<px>px/ (-2, -3, ... when taken), never into the run's own save/: the
run's outputs are left as they were. Writes that folder's save/it<N>-test.mp4 also as a gif, and with
--compare a labelled side-by-side video (baseline versus CARV: the paper's visual) as mp4 and gif.

    python scripts/turntable.py RUN_DIR --threestudio-root ~/threestudio [--resolution 256] [--frames 120]
    python scripts/turntable.py BASELINE_RUN --compare CARV_RUN --labels "baseline R=4 K=1" "CARV R=1 K=16" \\
        --threestudio-root ~/threestudio --out compare/   [--skip-render] [--dry-run]

launch.py runs from --workdir (default: the threestudio root), whose custom/ must hold threestudio-carv.
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
from omegaconf import OmegaConf

from carv.pipeline.video import side_by_side as labelled_side_by_side

FPS = 30
THREESTUDIO_TEST_VIEWS = 120  # threestudio's default data.n_test_views


def last_checkpoint(run_dir: Path) -> Path:
    """ckpts/last.ckpt of a run, else its newest checkpoint."""
    last = run_dir / "ckpts" / "last.ckpt"
    if last.is_file():
        return last
    checkpoints = sorted((run_dir / "ckpts").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise SystemExit(f"{run_dir} has no checkpoint in ckpts/ (is it a threestudio run folder?)")
    return checkpoints[-1]


def parsed_config(run_dir: Path) -> Path:
    config = run_dir / "configs" / "parsed.yaml"
    if not config.is_file():
        raise SystemExit(f"{run_dir} has no configs/parsed.yaml (is it a threestudio run folder?)")
    return config


def fresh_path(path: Path) -> Path:
    """path, or path-2, path-3, ... (before the suffix): the first that does not exist."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def turntable_folder(run_dir: Path, resolution: int | None, frames: int | None) -> Path:
    """A new folder <run>/turntables/<views>views-<px>px for one re-render (the run's values where not given)."""
    cfg = OmegaConf.load(parsed_config(run_dir))
    views = frames or OmegaConf.select(cfg, "data.n_test_views", default=THREESTUDIO_TEST_VIEWS)
    pixels = resolution or OmegaConf.select(cfg, "data.eval_width", default=None)
    return fresh_path(run_dir / "turntables" / (f"{views}views" + (f"-{pixels}px" if pixels else "")))


def test_command(
    run_dir: Path, folder: Path, resolution: int | None, frames: int | None, threestudio_root: Path | None = None
) -> list[str]:
    """launch.py --test of a run from its parsed config and last checkpoint, writing into `folder` (a new one)."""
    launch = str(threestudio_root.resolve() / "launch.py") if threestudio_root else "launch.py"
    command = [sys.executable, launch, "--config", str(parsed_config(run_dir).resolve()), "--test", "--gpu", "0"]
    command.append(f"resume={last_checkpoint(run_dir).resolve()}")
    folder = folder.resolve()
    # the test stage writes into <exp_root_dir>/<name>/<tag><timestamp>: that is `folder`, not the run's own
    command += [f"exp_root_dir={folder.parent.parent}", f"name={folder.parent.name}", f"tag={folder.name}"]
    command += ["use_timestamp=false", "timestamp=''"]
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


def side_by_side(videos: list[Path], labels: list[str]) -> list[np.ndarray]:
    """Frames of the videos, each labelled, left to right (carv.pipeline.video's one labelling, at their own size)."""
    clips = {label: read_frames(video) for video, label in zip(videos, labels, strict=True)}
    return list(labelled_side_by_side(clips, size=None, bar=24))


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a threestudio run folder (the baseline with --compare)")
    parser.add_argument("--compare", type=Path, help="a second run folder (CARV) to put beside the first")
    parser.add_argument("--labels", nargs=2, default=["baseline", "CARV"], help="labels of the two runs")
    parser.add_argument("--threestudio-root", type=Path, help="threestudio checkout holding launch.py")
    parser.add_argument("--workdir", type=Path, help="folder to run launch.py from (default: --threestudio-root)")
    parser.add_argument("--resolution", type=int, help="render side in pixels (default: the run's eval size)")
    parser.add_argument("--frames", type=int, help="number of views (default: the run's, 120)")
    parser.add_argument("--skip-render", action="store_true", help="use the test videos the runs already have")
    parser.add_argument("--out", type=Path, help="folder of the side-by-side video (default: <first run>/turntables)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, write nothing")
    return parser.parse_args(argv)


def render(run_dir: Path, args) -> Path | None:
    """Run the test stage of run_dir into a new turntable folder; its video (None with --dry-run)."""
    folder = turntable_folder(run_dir, args.resolution, args.frames)
    command = test_command(run_dir, folder, args.resolution, args.frames, args.threestudio_root)
    print(shlex.join(command))
    if args.dry_run:
        return None
    finished = subprocess.run(command, cwd=args.workdir or args.threestudio_root)
    if finished.returncode != 0:
        raise SystemExit(f"launch.py --test of {run_dir} failed (exit {finished.returncode}); its output is above")
    return latest_test_video(folder)


def main(argv=None) -> None:
    args = parse_arguments(argv)
    runs = [args.run_dir] + ([args.compare] if args.compare else [])
    if args.skip_render:
        if not args.compare:
            raise SystemExit("--skip-render only makes sense with --compare (it reuses the runs' own videos)")
        videos = [latest_test_video(run_dir) for run_dir in runs]
    else:
        if not (args.threestudio_root or args.dry_run):
            raise SystemExit("give --threestudio-root to render (or --skip-render to reuse the runs' videos)")
        videos = [render(run_dir, args) for run_dir in runs]
        if args.dry_run:
            return
        for video in videos:
            print("wrote", *write_video(read_frames(video), video))
    if args.compare:
        out = args.out or args.run_dir / "turntables"
        out.mkdir(parents=True, exist_ok=True)
        print("wrote", *write_video(side_by_side(videos, args.labels), fresh_path(out / "side-by-side.mp4")))


if __name__ == "__main__":
    main()
