"""Where this project's shipped files live, independent of the working directory."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

LOAD_DIR_VARIABLE = "CARV_LOAD_DIR"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
"""The repository: custom/threestudio-carv/carv/paths.py is three folders below it."""
CONFIG_DIR = PROJECT_ROOT / "configs"


def load_dir() -> Path:
    """$CARV_LOAD_DIR, else the project's load/ folder."""
    return Path(os.environ.get(LOAD_DIR_VARIABLE) or PROJECT_ROOT / "load").resolve()


def carv_load(name: str) -> str:
    """${carv_load:NAME}: the absolute path of NAME in load/ (the same resolver as the threestudio configs)."""
    return str(load_dir() / name)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("carv_load"):
        register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
        register("carv_load", carv_load)
