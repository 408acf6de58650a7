"""Where this project's shipped files (configs/ and load/) live, independent of the working directory.

Search order, for each folder: its environment variable ($CARV_CONFIG_DIR, $CARV_LOAD_DIR); a source checkout
holding this package (the nearest folder above it with both configs/ and load/: an editable install, or running
from the tree); the data files a wheel installs (<sys.prefix>/share/threestudio-carv/, see setup.py).
Standard library only, so the threestudio adapters can use it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_DIR_VARIABLE = "CARV_CONFIG_DIR"
LOAD_DIR_VARIABLE = "CARV_LOAD_DIR"
DATA_FOLDER = "threestudio-carv"
"""<sys.prefix>/share/<DATA_FOLDER>/ holds configs/ and load/ in an installed wheel."""


def source_root(start: Path | None = None) -> Path | None:
    """The nearest folder above start (this file) holding both configs/ and load/, or None."""
    start = Path(__file__).resolve() if start is None else start
    return next((p for p in start.parents if (p / "configs").is_dir() and (p / "load").is_dir()), None)


def installed_root() -> Path:
    """Where setup.py's data_files put configs/ and load/."""
    return Path(sys.prefix) / "share" / DATA_FOLDER


def shipped_dir(name: str, variable: str) -> Path:
    """The folder `name` (configs or load) by the search order above; FileNotFoundError naming it if none has it."""
    if os.environ.get(variable):
        return Path(os.environ[variable]).resolve()
    roots = [root for root in (source_root(), installed_root()) if root is not None]
    for root in roots:
        if (root / name).is_dir():
            return (root / name).resolve()
    searched = ", ".join(str(root / name) for root in roots)
    raise FileNotFoundError(f"no shipped {name}/ folder (searched {searched}); set ${variable} to one")


def config_dir() -> Path:
    """$CARV_CONFIG_DIR, else the project's configs/ folder."""
    return shipped_dir("configs", CONFIG_DIR_VARIABLE)


def load_dir() -> Path:
    """$CARV_LOAD_DIR, else the project's load/ folder."""
    return shipped_dir("load", LOAD_DIR_VARIABLE)


def carv_load(name: str) -> str:
    """${carv_load:NAME}: the absolute path of NAME in load/ (the same resolver as the threestudio configs)."""
    return str(load_dir() / name)
