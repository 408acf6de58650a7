"""threestudio integration tests: run where THREESTUDIO_ROOT names a threestudio 0.2.x checkout, skipped otherwise.

In an environment with this project and threestudio's pure-Python requirements (the `threestudio-test` extra of
setup.py); the CUDA-only and optional libraries may be absent: the CPU shims of threestudio_cpu_shims.py
(test-only) stand in for them, in this process and, through launch_site/sitecustomize.py, in the launch.py
subprocesses of test_launch*.py. README.md's test command (what CI runs) sets
THREESTUDIO_ROOT=../shared/threestudio unless it is set already:
    THREESTUDIO_ROOT=/path/to/threestudio python -m pytest -q tests/threestudio
With threestudio importable but no THREESTUDIO_ROOT, the in-process tests run and the launch.py ones skip.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from .threestudio_cpu_shims import import_threestudio_on_cpu

THREESTUDIO_ROOT = str(Path(os.environ["THREESTUDIO_ROOT"]).resolve()) if os.environ.get("THREESTUDIO_ROOT") else None
PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXTENSION_DIR = PROJECT_ROOT / "custom" / "threestudio-carv"
HERE = Path(__file__).resolve().parent


def threestudio_findable() -> bool:
    if THREESTUDIO_ROOT:
        return (Path(THREESTUDIO_ROOT) / "threestudio" / "__init__.py").is_file()
    return importlib.util.find_spec("threestudio") is not None


SKIP_REASON = (
    f"threestudio is not importable: set THREESTUDIO_ROOT to a threestudio 0.2.x checkout (now {THREESTUDIO_ROOT})"
)


def pytest_collection_modifyitems(config, items):
    if threestudio_findable():
        return
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def pytest_terminal_summary(terminalreporter):
    """One line that says how many threestudio integration tests ran (CI's log shows it)."""
    counts = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        reports = terminalreporter.stats.get(outcome, [])
        ours = {r.nodeid for r in reports if getattr(r, "nodeid", "").startswith("tests/threestudio/")}
        if ours:
            counts[outcome] = len(ours)
    if counts:
        summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
        terminalreporter.write_line(f"threestudio integration tests (THREESTUDIO_ROOT={THREESTUDIO_ROOT}): {summary}")


def load_extension(module_name: str, directory: Path = EXTENSION_DIR):
    """Import custom/threestudio-carv by path under module_name, as threestudio's launch.py does."""
    spec = importlib.util.spec_from_file_location(module_name, directory / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def threestudio():
    """threestudio imported on the CPU (shims installed) with this project's extension loaded."""
    module = import_threestudio_on_cpu(THREESTUDIO_ROOT)
    if "threestudio-carv" not in sys.modules:
        load_extension("threestudio-carv")
    return module


@pytest.fixture(scope="session")
def threestudio_root() -> Path:
    """The threestudio checkout whose launch.py the launch tests run (never written into)."""
    if not THREESTUDIO_ROOT:
        pytest.skip("the launch.py tests need THREESTUDIO_ROOT (a threestudio checkout holding launch.py)")
    return Path(THREESTUDIO_ROOT)


@pytest.fixture(scope="session")
def toy_run(threestudio_root, tmp_path_factory):
    """One launch.py --train of carv-toy-teacher for the whole session: (working folder, run folder).
    Tests that resume from it write elsewhere and must leave it unchanged."""
    from .launch_runs import train_toy_run

    return train_toy_run(threestudio_root, tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def tiny_teachers(tmp_path_factory):
    """Random-weight SD and IF teacher folders from carv.testing (loaded through from_pretrained)."""
    from carv.testing.teachers import build_tiny_if_teacher, build_tiny_sd_teacher

    root = tmp_path_factory.mktemp("teachers")
    return {"sd": str(build_tiny_sd_teacher(root / "sd")), "if": str(build_tiny_if_teacher(root / "if"))}


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """Run in a fresh folder: threestudio writes .threestudio_cache and outputs/ into the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path
