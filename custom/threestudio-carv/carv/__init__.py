"""CARV: compute-aware variance reduction for gradients from diffusion teachers.

The math layer (this package's top level) is pure PyTorch. Adapters that need
diffusers, Lightning or threestudio live in submodules imported by path.
"""

from .accounting import (
    CostModel,
    VarianceComponents,
    configuration_ecm,
    ecm,
    equal_cost_configurations,
    optimal_k,
    predicted_variance,
    reuse_limit,
    variance_components,
)
from .estimator import RenoiseResult, add_noise, renoise_k
from .timesteps import (
    PROPOSALS,
    WEIGHTING_STRATEGIES,
    TimestepDraw,
    TimestepSampler,
    effective_sample_size,
    make_timestep_sampler,
    stable_diffusion_alphas_cumprod,
)
from .timesteps import weighting_of_schedule as timestep_weighting
from .uniforms import iid_uniforms, stratified_uniforms

__version__ = "0.1.0"

__all__ = [
    "PROPOSALS",
    "WEIGHTING_STRATEGIES",
    "CostModel",
    "RenoiseResult",
    "TimestepDraw",
    "TimestepSampler",
    "VarianceComponents",
    "add_noise",
    "configuration_ecm",
    "ecm",
    "effective_sample_size",
    "equal_cost_configurations",
    "iid_uniforms",
    "make_timestep_sampler",
    "optimal_k",
    "predicted_variance",
    "renoise_k",
    "reuse_limit",
    "stable_diffusion_alphas_cumprod",
    "stratified_uniforms",
    "timestep_weighting",
    "variance_components",
]
