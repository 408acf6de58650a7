"""Load scripts/*.py as modules (scripts/ is not a package)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sweep_rk():
    return load_script("sweep_rk")


@pytest.fixture(scope="module")
def turntable():
    return load_script("turntable")
