"""CARV: compute-aware variance reduction for gradients from diffusion teachers.

The math layer (this package's top level) is pure PyTorch. Adapters that need
diffusers, Lightning or threestudio live in submodules imported by path.

The public names below are imported on first use (PEP 562), so that `import carv`
(and `carv --help`) does not wait for torch; `from carv import renoise_k` works as before.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "CostModel": "accounting",
    "VarianceComponents": "accounting",
    "configuration_ecm": "accounting",
    "ecm": "accounting",
    "equal_cost_configurations": "accounting",
    "optimal_k": "accounting",
    "predicted_variance": "accounting",
    "reuse_limit": "accounting",
    "variance_components": "accounting",
    "RenoiseResult": "estimator",
    "add_noise": "estimator",
    "renoise_k": "estimator",
    "PROPOSALS": "timesteps",
    "WEIGHTING_STRATEGIES": "timesteps",
    "TimestepDraw": "timesteps",
    "TimestepSampler": "timesteps",
    "effective_sample_size": "timesteps",
    "make_timestep_sampler": "timesteps",
    "stable_diffusion_alphas_cumprod": "timesteps",
    "timestep_weighting": "timesteps:weighting_of_schedule",
    "iid_uniforms": "uniforms",
    "stratified_uniforms": "uniforms",
}
"""Public name -> its module (module:attribute where the name differs)."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """A public name from its module, or a submodule (carv.timesteps, ...), imported on first use."""
    if name in _EXPORTS:
        module, _, attribute = _EXPORTS[name].partition(":")
        value = getattr(importlib.import_module(f".{module}", __name__), attribute or name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
