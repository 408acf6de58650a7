"""Test-only: put this folder on the PYTHONPATH of a `python launch.py` subprocess to run threestudio's unchanged
launch.py on a CPU-only machine (the hooks of ../threestudio_cpu_shims.py). Never shipped, never installed.

CARV_TEST_BLOCK_IMPORTS=carv,... makes those packages fail to import (what a user without them sees).
"""

import importlib.util
import os
import sys
from pathlib import Path

_SHIMS = Path(__file__).resolve().parents[1] / "threestudio_cpu_shims.py"
_spec = importlib.util.spec_from_file_location("threestudio_cpu_shims", _SHIMS)
_shims = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _shims
_spec.loader.exec_module(_shims)
_shims.install_launch_hooks(blocked=[n for n in os.environ.get("CARV_TEST_BLOCK_IMPORTS", "").split(",") if n])
