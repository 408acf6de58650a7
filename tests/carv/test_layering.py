"""The math layer imports neither threestudio, diffusers nor Lightning (STYLE.md)."""

import subprocess
import sys

MATH_MODULES = ["carv", "carv.timesteps", "carv.uniforms", "carv.estimator", "carv.accounting"]
FORBIDDEN = ["threestudio", "diffusers", "transformers", "pytorch_lightning", "lightning"]


def test_math_modules_import_without_frameworks():
    code = "import sys\n" + "".join(f"import {m}\n" for m in MATH_MODULES)
    code += f"loaded = [m for m in {FORBIDDEN!r} if m in sys.modules]\nassert not loaded, loaded\n"
    subprocess.run([sys.executable, "-c", code], check=True)
