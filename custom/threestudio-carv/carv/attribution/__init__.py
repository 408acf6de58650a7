"""Data attribution with CARV: TRAK-style influence of training images on a query, from few gradient draws.

The influence features of an image x are phi(x) = P^T E_{t, eps}[ grad_theta L(x, t, eps) ] (P a fixed random
projection, L the teacher's denoising loss); each estimator of that expectation is a set of (t, weight, eps)
draws (`draws`), averaged per example (`features`), then scored and ranked (`scores`). The math modules are
pure PyTorch; `teacher` (the diffusers adapter) and `experiment` (the `carv attribute` run) are imported by path.
"""

from .draws import ESTIMATORS, Draws, grid_draws, iid_draws, stratified_draws
from .features import average_features, flatten_gradients, per_draw_gradients
from .scores import budget_multipliers, mean_spearman, spearman_rows, trak_scores

__all__ = [
    "ESTIMATORS",
    "Draws",
    "average_features",
    "budget_multipliers",
    "flatten_gradients",
    "grid_draws",
    "iid_draws",
    "mean_spearman",
    "per_draw_gradients",
    "spearman_rows",
    "stratified_draws",
    "trak_scores",
]
