"""Choosing K online from measured costs and variance components (`noise_samples_per_render: auto`).

Beyond the paper: every `every` steps, K is reset to the integer K* of the cost
model (CARV sec. 3) from running estimates of a, b, sigma_b^2 and sigma_w^2.
Unbiased: the K of a step is a function of earlier steps' draws only, so given
the past each step is still an unbiased estimate of the SDS gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .accounting import VarianceComponents, optimal_k


def exponential_average(previous: float | None, value: float, smoothing: float) -> float:
    """smoothing * previous + (1 - smoothing) * value; the value itself when there is no previous."""
    return value if previous is None else smoothing * previous + (1.0 - smoothing) * value


@dataclass
class AutoK:
    """K* of the running cost and variance estimates, re-chosen every `every` steps within [k_min, k_max]."""

    k_initial: int = 4
    k_min: int = 1
    k_max: int = 64
    every: int = 50
    smoothing: float = 0.5  # weight of the previous estimate in the running averages
    k: int = field(init=False)
    a: float | None = field(init=False, default=None)
    b: float | None = field(init=False, default=None)
    sigma_b2: float | None = field(init=False, default=None)
    sigma_w2: float | None = field(init=False, default=None)

    def __post_init__(self):
        if not 1 <= self.k_min <= self.k_initial <= self.k_max:
            raise ValueError(f"need 1 <= k_min <= k_initial <= k_max, got {self.k_min}, {self.k_initial}, {self.k_max}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1 step, got {self.every}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        self.k = self.k_initial

    def observe_costs(self, seconds_per_render: float, seconds_per_teacher_evaluation: float) -> None:
        """Timed a (render + encode + backward, per render) and b (one guided teacher evaluation)."""
        if not (seconds_per_render >= 0 and seconds_per_teacher_evaluation > 0):
            raise ValueError(
                f"costs need a >= 0 and b > 0, got a={seconds_per_render}, b={seconds_per_teacher_evaluation}"
            )
        self.a = exponential_average(self.a, seconds_per_render, self.smoothing)
        self.b = exponential_average(self.b, seconds_per_teacher_evaluation, self.smoothing)

    def observe_components(self, components: VarianceComponents) -> None:
        """Variance components from a probe of per-draw gradients (negative sigma_b^2 estimates count as 0)."""
        if not (math.isfinite(components.sigma_b2) and math.isfinite(components.sigma_w2)):
            raise ValueError("variance components must be finite")
        self.sigma_b2 = exponential_average(self.sigma_b2, max(components.sigma_b2, 0.0), self.smoothing)
        self.sigma_w2 = exponential_average(self.sigma_w2, max(components.sigma_w2, 0.0), self.smoothing)

    @property
    def ready(self) -> bool:
        return None not in (self.a, self.b, self.sigma_b2, self.sigma_w2)

    def k_star(self) -> int:
        """The integer K* of the current estimates within [k_min, k_max]."""
        if not self.ready:
            raise ValueError("AutoK needs observed costs and variance components before choosing K")
        return max(self.k_min, optimal_k(self.a, self.b, self.sigma_b2, self.sigma_w2, k_max=self.k_max))

    def k_for_step(self, step: int) -> int:
        """K for this step: re-chosen at multiples of `every` once estimates exist, else unchanged."""
        if step % self.every == 0 and self.ready:
            self.k = self.k_star()
        return self.k
