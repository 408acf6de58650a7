"""Turntable frames, mp4 (30 fps, as threestudio writes it) and gif; side-by-side labelled videos."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from PIL import Image, ImageDraw

FPS = 30
LABEL_HEIGHT = 20


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, H, W, 3] in [0, 1] -> uint8 numpy."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_frames(frames: np.ndarray, folder: Path) -> None:
    """frames [N, H, W, 3] uint8 as folder/{i}.png (threestudio's naming)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i}.png")


def write_videos(frames: np.ndarray, stem: Path) -> tuple[Path, Path]:
    """stem.mp4 (H.264, 30 fps) and stem.gif of frames [N, H, W, 3] uint8; sides must be even."""
    mp4, gif = stem.with_suffix(".mp4"), stem.with_suffix(".gif")
    imageio.mimwrite(mp4, list(frames), fps=FPS, macro_block_size=1, ffmpeg_log_level="error")
    Image.fromarray(frames[0]).save(
        gif, save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]], duration=1000 // FPS, loop=0
    )
    return mp4, gif


def labelled(frame: np.ndarray, label: str, size: int | None = None, bar: int = LABEL_HEIGHT) -> np.ndarray:
    """The frame (scaled to size x size, or as it is when size is None) under a white bar of bar pixels with label."""
    image = Image.fromarray(frame)
    if size is not None:
        image = image.resize((size, size), Image.BILINEAR)
    canvas = Image.new("RGB", (image.width, image.height + bar), "white")
    canvas.paste(image, (0, bar))
    ImageDraw.Draw(canvas).text((bar // 5, bar // 5), label, fill="black")
    return np.asarray(canvas)


def side_by_side(videos: dict[str, list[np.ndarray]], size: int | None = 256, bar: int = LABEL_HEIGHT) -> np.ndarray:
    """Frames [N, H, W, 3] uint8: each video labelled (see labelled) beside the next, frame by frame, cut to the
    shortest video; panels of different heights are padded with white at the bottom to the tallest.

    The one labelling of the pipeline's compare video and of scripts/turntable.py's side-by-side.
    """
    n = min(len(frames) for frames in videos.values())
    out = []
    for i in range(n):
        panels = [labelled(frames[i], label, size, bar) for label, frames in videos.items()]
        height = max(p.shape[0] for p in panels)
        padded = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in panels]
        out.append(np.concatenate(padded, axis=1))
    return np.stack(out)
