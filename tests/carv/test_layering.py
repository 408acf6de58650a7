"""The math layer imports neither threestudio, diffusers nor Lightning (STYLE.md): every module of carv's top level.

The adapters live in named sub-packages (carv.diffusion, carv.pipeline, carv.variance, carv.benchmarks, ...);
the threestudio extension's own modules never import the CPU pipeline.
"""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import carv

FORBIDDEN = ["threestudio", "diffusers", "transformers", "pytorch_lightning", "lightning"]
TOP_LEVEL = sorted(f"carv.{m.name}" for m in pkgutil.iter_modules(carv.__path__) if not m.ispkg)
EXTENSION = Path(carv.__path__[0]).parent


def test_the_top_level_is_every_math_module():
    assert {"carv.timesteps", "carv.estimator", "carv.accounting", "carv.autotune", "carv.probe"} <= set(TOP_LEVEL)


def test_math_modules_import_without_frameworks():
    """One fresh interpreter imports them all: a module that pulled in a framework would leave it in sys.modules."""
    code = "import sys\n" + "".join(f"import {m}\n" for m in ["carv", *TOP_LEVEL])
    code += f"loaded = [m for m in {FORBIDDEN!r} if m in sys.modules]\nassert not loaded, loaded\n"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("adapter", sorted(p.name for p in EXTENSION.glob("*.py")))
def test_threestudio_adapters_never_import_the_cpu_pipeline(adapter):
    tree = ast.parse((EXTENSION / adapter).read_text(encoding="utf-8"))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [name for name in imported if name.startswith(("carv.pipeline", "carv.variance"))]


def imported_modules(path: Path, package: str) -> list[str]:
    """Every module a file imports, relative imports resolved against its package (e.g. carv.pipeline)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            names.append(".".join([*base, node.module] if node.module else base))
    return names


PIPELINE = Path(carv.__path__[0]) / "pipeline"


@pytest.mark.parametrize("module", sorted(p.name for p in PIPELINE.glob("*.py")))
def test_the_cpu_pipeline_meets_the_toy_world_through_one_door(module):
    """carv.pipeline imports the toy world's names from carv.toyworld itself, never from its modules."""
    names = imported_modules(PIPELINE / module, "carv.pipeline")
    assert not [name for name in names if name.startswith("carv.toyworld.")], names
