"""Choosing K online from measured costs and variance components (`noise_samples_per_render: auto`).

Beyond the paper: every `every` steps, K is reset to the integer K* of the cost
model (CARV sec. 3) from running estimates of a, b, sigma_b^2 and sigma_w^2.
Unbiased: the K of a step is a function of earlier steps' draws only, so given
the past each step is still an unbiased estimate of the SDS gradient.

One controller (AutoKController) and one option set (AutoKOptions) serve both the CPU pipeline and the
threestudio systems; each supplies only a probe of its own renders (carv.probe does the per-draw math).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .accounting import VarianceComponents, optimal_k
from .distributed import averaged_across_ranks

AUTO = "auto"


@dataclass
class AutoKOptions:
    """`system.guidance.noise_samples_per_render: auto` and its options, the same in both paths."""

    auto_every_n_steps: int = 50  # auto: steps between variance probes and K choices
    auto_k_initial: int = 4  # auto: K until the first choice
    auto_k_max: int = 64  # auto: largest K
    auto_probe_size: int = 4  # auto: renders of each probe, and its draws per render (rounded up to even)


def auto_requested(noise_samples_per_render) -> bool:
    """Whether K is `auto` (chosen online) rather than a number."""
    return str(noise_samples_per_render) == AUTO


def check_auto_options(options, strata: int = 0) -> None:
    """Reject auto options the controller cannot run with (one line each); strata: the guidance's per render."""
    o = options
    if not (1 <= o.auto_k_initial <= o.auto_k_max and o.auto_every_n_steps >= 1 and o.auto_probe_size >= 3):
        raise ValueError(
            "auto needs 1 <= auto_k_initial <= auto_k_max, auto_every_n_steps >= 1, auto_probe_size >= 3, got "
            f"{o.auto_k_initial}, {o.auto_k_max}, {o.auto_every_n_steps}, {o.auto_probe_size}"
        )
    if strata and (o.auto_k_initial % strata or o.auto_k_max < strata):
        raise ValueError(
            f"auto with timestep_strata={strata} chooses K among multiples of {strata}: auto_k_initial "
            f"({o.auto_k_initial}) must be one and auto_k_max ({o.auto_k_max}) at least {strata}"
        )


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
    k_multiple: int = 1  # K is chosen among multiples of this (the strata per render of stratified draws)
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
        if self.k_multiple < 1 or self.k_initial % self.k_multiple or self.k_max < self.k_multiple:
            raise ValueError(
                f"k_multiple {self.k_multiple} must divide k_initial ({self.k_initial}) and be <= k_max ({self.k_max})"
            )
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
        """The integer K* of the current estimates within [k_min, k_max], a multiple of k_multiple.

        K = m j: (sigma_b^2 + sigma_w^2 / (m j))(a + m j b) is the cost model in j with b' = m b, sigma_w'^2 = sigma_w^2 / m.
        """
        if not self.ready:
            raise ValueError("AutoK needs observed costs and variance components before choosing K")
        m = self.k_multiple
        j = optimal_k(self.a, m * self.b, self.sigma_b2, self.sigma_w2 / m, k_max=self.k_max // m)
        return max(-(-self.k_min // m) * m, m * j)

    def k_for_step(self, step: int) -> int:
        """K for this step: re-chosen at multiples of `every` once estimates exist, else unchanged."""
        if step % self.every == 0 and self.ready:
            self.k = self.k_star()
        return self.k


def step_costs(phase_seconds: dict, renders: int, draws_per_render: int) -> tuple[float, float] | None:
    """(a, b) of one step's phase clock: render + encode + backward per render, teacher per draw."""
    if "teacher" not in phase_seconds:
        return None
    a = sum(phase_seconds.get(phase, 0.0) for phase in ("render", "encode", "backward")) / renders
    return a, phase_seconds["teacher"] / (renders * draws_per_render)


@dataclass(frozen=True)
class ProbeResult:
    """What a variance probe measured at the current parameters: components and the costs (a, b) of its phases."""

    components: VarianceComponents
    a: float
    b: float


ProbeFunction = Callable[[int, int, int], ProbeResult]
"""probe(renders, draws_per_render, step): per-draw gradients of fresh renders, reduced to a ProbeResult."""


class AutoKController:
    """K of every step under `noise_samples_per_render: auto`, for any system that supplies a probe.

    Before step s, at multiples of auto_every_n_steps, probe(R_p, K_p, s) re-estimates sigma_b^2 and sigma_w^2
    (and a, b until a step has been timed); after each step, a and b come from its phase clock (step_costs).
    K of step s depends only on draws made before step s.
    """

    def __init__(self, options: AutoKOptions, strata: int = 0):
        check_auto_options(options, strata)
        self.options = options
        self.auto = AutoK(
            k_initial=options.auto_k_initial,
            k_max=options.auto_k_max,
            every=options.auto_every_n_steps,
            k_multiple=strata or 1,
        )
        self.probe_renders = options.auto_probe_size
        self.probe_draws = options.auto_probe_size + options.auto_probe_size % 2  # collapsed strata pair draws
        self.history: list[dict] = []

    def k_for_step(self, step: int, probe: ProbeFunction) -> tuple[int, ProbeResult | None]:
        """(K of this step, the probe's result if it ran before this step, else None)."""
        result = None
        if step % self.auto.every == 0:
            result = averaged_across_ranks(probe(self.probe_renders, self.probe_draws, step))  # DDP: same on all ranks
            self.auto.observe_components(result.components)
            if self.auto.a is None:
                self.auto.observe_costs(result.a, result.b)
        k = self.auto.k_for_step(step)
        self.history.append({"step": step, "k": k})
        return k, result

    def observe_step(self, phase_seconds: dict, renders: int, k: int) -> None:
        """Costs a, b from the phase clock of the step just made (ignored when it timed no teacher)."""
        costs = step_costs(averaged_across_ranks(phase_seconds), renders, k)  # DDP: every rank's mean
        if costs is not None and costs[1] > 0:
            self.auto.observe_costs(*costs)
