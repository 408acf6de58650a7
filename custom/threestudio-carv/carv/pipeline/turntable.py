"""`carv turntable RUN_DIR`: re-render a run's turntable from ckpts/last.ckpt at any frame count and size."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from .errors import UserError
from .runner import write_turntable
from .system import TextTo3DSystem


def load_run(run_dir: str | Path) -> tuple[TextTo3DSystem, int]:
    """The trained system of a run folder (configs/parsed.yaml + ckpts/last.ckpt) and its step."""
    run_dir = Path(run_dir)
    config_path, checkpoint_path = run_dir / "configs" / "parsed.yaml", run_dir / "ckpts" / "last.ckpt"
    for path in (config_path, checkpoint_path):
        if not path.is_file():
            raise UserError(f"{run_dir} is not a finished run folder (no {path.relative_to(run_dir)})")
    system = TextTo3DSystem(OmegaConf.load(config_path))
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    system.load_state_dict(checkpoint["state_dict"])
    return system, int(checkpoint["global_step"])


def turntable(run_dir: str | Path, frames: int = 120, resolution: int = 128) -> dict:
    """save/it{N}-turntable-{frames}x{resolution}px/ frames, .mp4 (30 fps) and .gif; returns their paths."""
    if frames < 1 or resolution < 2 or resolution % 2:
        raise UserError(f"need --frames >= 1 and an even --resolution >= 2, got {frames} and {resolution}")
    system, step = load_run(run_dir)
    stem = f"it{step}-turntable-{frames}x{resolution}px"
    try:
        return write_turntable(system, Path(run_dir), stem, frames, resolution)
    except OSError as error:
        raise UserError(f"cannot write the turntable into {run_dir}: {error.strerror or error}") from None
