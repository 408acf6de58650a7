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


def labelled(frame: np.ndarray, label: str, size: int) -> Image.Image:
    """The frame scaled to size x size under a white strip with the label."""
    canvas = Image.new("RGB", (size, size + LABEL_HEIGHT), "white")
    canvas.paste(Image.fromarray(frame).resize((size, size), Image.BILINEAR), (0, LABEL_HEIGHT))
    ImageDraw.Draw(canvas).text((4, 4), label, fill="black")
    return canvas


def side_by_side(videos: dict[str, np.ndarray], size: int = 256) -> np.ndarray:
    """Frames [N, size + label, size * len(videos), 3]: each labelled video beside the next, frame by frame."""
    n = min(len(frames) for frames in videos.values())
    out = []
    for i in range(n):
        panels = [np.asarray(labelled(frames[i], label, size)) for label, frames in videos.items()]
        out.append(np.concatenate(panels, axis=1))
    return np.stack(out)
