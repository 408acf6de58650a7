"""OmegaConf resolver ${carv_load:NAME}: the absolute path of NAME in this project's load/ folder.

threestudio runs from its own root, so a relative teacher path in a config would point into
threestudio's checkout; configs name shipped data as ${carv_load:toy-teacher} instead.
"""

import os
from pathlib import Path

from omegaconf import OmegaConf

LOAD_DIR_VARIABLE = "CARV_LOAD_DIR"


def project_load_dir() -> Path:
    """$CARV_LOAD_DIR, else load/ of the repository this extension (or the installed carv) lives in."""
    if os.environ.get(LOAD_DIR_VARIABLE):
        return Path(os.environ[LOAD_DIR_VARIABLE]).resolve()
    import carv

    candidates = [Path(__file__).resolve().parents[2] / "load", Path(carv.__file__).resolve().parents[3] / "load"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find this project's load/ folder (tried {', '.join(map(str, candidates))}); "
        f"set {LOAD_DIR_VARIABLE} to it"
    )


def carv_load(name: str) -> str:
    return str(project_load_dir() / name)


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("carv_load", carv_load, replace=True)
