"""Choosing R and K online from measured costs and variance components (`noise_samples_per_render: auto`).

Beyond the paper: every `every` steps, (R, K) is reset to the pair of least Var C within the measured cost of the
equal-cost baseline step (carv.cost_curve.best_configuration under C(R, K) = R a + c(R K), with a from the run's
phase clocks and c(n) measured through the run's guidance), from running estimates of a, sigma_b^2 and sigma_w^2.
Unbiased: the (R, K) of a step is a function of earlier steps' draws only, so given the past each step is still an
unbiased estimate of the SDS gradient.

One controller (AutoKController) and one option set (AutoKOptions) serve both the CPU pipeline and the
threestudio systems; each supplies only a probe of its own renders (carv.probe does the per-draw math).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .accounting import VarianceComponents, optimal_k
from .cost_curve import MeasuredCostModel, TeacherCostCurve, affordable, best_configuration, fits, variance_times_cost
from .distributed import averaged_across_ranks

AUTO = "auto"


@dataclass
class AutoKOptions:
    """`system.guidance.noise_samples_per_render: auto` and its options, the same in both paths."""

    auto_every_n_steps: int = 50  # auto: steps between variance probes and (R, K) choices
    auto_k_initial: int = 4  # auto: K until the first choice (R until then: data.batch_size)
    auto_k_max: int = 64  # auto: largest K
    auto_r_max: int = 8  # auto: most renders per step R
    auto_probe_size: int = 4  # auto: renders of each probe, and its draws per render (rounded up to even)
    auto_baseline_renders: int = 4  # auto: R of the equal-cost baseline step, whose measured cost is the budget
    auto_baseline_k: int = 1  # auto: K of the equal-cost baseline step
    auto_max_draws_per_step: int = 64  # auto: largest R K of a step; the measured cost curve's ladder ends there


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
    baseline_draws = o.auto_baseline_renders * o.auto_baseline_k
    if not (o.auto_r_max >= 1 and min(o.auto_baseline_renders, o.auto_baseline_k) >= 1):
        raise ValueError(
            "auto needs auto_r_max, auto_baseline_renders and auto_baseline_k >= 1, got "
            f"{o.auto_r_max}, {o.auto_baseline_renders}, {o.auto_baseline_k}"
        )
    if o.auto_max_draws_per_step < baseline_draws:
        raise ValueError(
            f"auto_max_draws_per_step ({o.auto_max_draws_per_step}) must cover the baseline step's "
            f"auto_baseline_renders x auto_baseline_k = {baseline_draws} draws (its measured cost is the budget)"
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
    """What a variance probe measured at the current parameters: components, the costs (a, b) of its phases and,
    when asked for, the teacher cost curve c(n) measured on its latents through the run's guidance."""

    components: VarianceComponents
    a: float
    b: float
    curve: TeacherCostCurve | None = None


ProbeFunction = Callable[[int, int, int, int], ProbeResult]
"""probe(renders, draws_per_render, step, curve_draws): per-draw gradients of fresh renders, reduced to a
ProbeResult; with curve_draws > 0 also c(n) on the ladder 1, 2, 4, ... curve_draws (carv.guidance_cost)."""


@dataclass(frozen=True)
class SearchSpace:
    """The (R, K) auto may run under a cost model: R <= r_max and not excluded, K <= k_max a multiple of k_multiple,
    R K within the measured ladder (no extrapolation) and the model's memory bound. Exposes step_cost and fits for
    carv.cost_curve."""

    costs: object
    r_max: int
    k_max: int
    k_multiple: int = 1
    max_draws: int | None = None
    excluded_renders: frozenset[int] = frozenset()  # R the system cannot draw cameras for

    def step_cost(self, renders: int, draws_per_render: int) -> float:
        return self.costs.step_cost(renders, draws_per_render)

    def fits(self, renders: int, draws_per_render: int) -> bool:
        k = draws_per_render
        within = renders <= self.r_max and renders not in self.excluded_renders
        within = within and k <= self.k_max and k % self.k_multiple == 0
        return within and (self.max_draws is None or renders * k <= self.max_draws) and fits(self.costs, renders, k)


@dataclass(frozen=True)
class Choice:
    """One probe's decision: (R, K) within the budget, its predicted ECM against the baseline under the model it was
    chosen with, and the linear model's choice with its ECM under the same (measured) model, for comparison."""

    renders: int
    k: int
    budget: float
    ecm: float
    linear_renders: int
    linear_k: int
    linear_ecm: float


def least_variance_cost(space: SearchSpace, sigma_b2: float, sigma_w2: float, budget: float, baseline) -> tuple:
    """best_configuration within the space; where the baseline itself cannot run (K not a multiple of the strata),
    the best runnable pair in the budget replaces it as the fallback, else the cheapest runnable one."""
    if not space.fits(*baseline):
        pairs = affordable(space, budget, r_max=space.r_max, k_max=space.k_max) or [(1, space.k_multiple)]
        baseline = min(pairs, key=lambda pair: variance_times_cost(space, max(sigma_b2, 0.0), sigma_w2, *pair))
    return best_configuration(space, sigma_b2, sigma_w2, budget, baseline, k_max=space.k_max)


def choose_configuration(
    costs: MeasuredCostModel,
    sigma_b2: float,
    sigma_w2: float,
    options,
    k_multiple=1,
    excluded_renders: frozenset[int] = frozenset(),
) -> Choice:
    """The (R, K) of least Var C whose measured cost is within the measured cost of the baseline step (the budget),
    never worse than the baseline in the model (CARV sec. 3 with C(R, K) = A(R) + c(R K)); no R of
    excluded_renders."""
    o = options
    baseline = (o.auto_baseline_renders, o.auto_baseline_k)
    sigma_b2 = max(sigma_b2, 0.0)

    def search(model) -> tuple[int, int]:
        space = SearchSpace(model, o.auto_r_max, o.auto_k_max, k_multiple, o.auto_max_draws_per_step, excluded_renders)
        return least_variance_cost(space, sigma_b2, sigma_w2, model.step_cost(*baseline), baseline)

    chosen, linear = search(costs), search(costs.linear())

    def ecm(pair) -> float:
        vc = variance_times_cost(costs, sigma_b2, sigma_w2, *pair)
        return variance_times_cost(costs, sigma_b2, sigma_w2, *baseline) / vc if vc > 0 else 1.0

    return Choice(*chosen, costs.step_cost(*baseline), ecm(chosen), *linear, ecm(linear))


class AutoKController:
    """R and K of every step under `noise_samples_per_render: auto`, for any system that supplies a probe.

    Before step s, at multiples of auto_every_n_steps, probe(R_p, K_p, s, n) re-estimates sigma_b^2 and sigma_w^2
    (and a, b until a step has been timed); the first probe also measures the teacher curve c(n) on its latents up
    to n = auto_max_draws_per_step. a comes from each step's phase clock (step_costs). The (R, K) chosen before step
    s (choose_configuration) runs from step s + lag on, R and K together: lag = 0 where the system draws the step's
    cameras after the choice (the CPU pipeline), 2 in threestudio (Lightning holds the batch of step s and has
    already collated that of s + 1). Either way R and K of a step depend only on draws made before it.

    Inputs arrive through observe_probe and observe_step only. No R of excluded_renders is ever chosen (a system
    that cannot draw camera batches of that size says so).
    """

    def __init__(
        self,
        options: AutoKOptions,
        strata: int = 0,
        renders_initial: int = 1,
        lag: int = 0,
        excluded_renders: frozenset[int] = frozenset(),
    ):
        check_auto_options(options, strata)
        self.options = options
        self.excluded_renders = frozenset(excluded_renders)
        self.auto = AutoK(
            k_initial=options.auto_k_initial,
            k_max=options.auto_k_max,
            every=options.auto_every_n_steps,
            k_multiple=strata or 1,
        )
        self.lag = lag
        self.probe_renders = options.auto_probe_size
        self.probe_draws = options.auto_probe_size + options.auto_probe_size % 2  # collapsed strata pair draws
        self.curve: TeacherCostCurve | None = None
        self.planned: list[tuple[int, int, int]] = [(0, renders_initial, options.auto_k_initial)]  # (from, R, K)
        self.history: list[dict] = []
        self.choices: list[dict] = []

    def configuration_for_step(self, step: int, probe: ProbeFunction) -> tuple[tuple[int, int], dict | None]:
        """((R, K) of this step, the probe's record if one ran before this step, else None)."""
        record = None
        if step % self.auto.every == 0:
            curve_draws = 0 if self.curve is not None else self.options.auto_max_draws_per_step
            probed = probe(self.probe_renders, self.probe_draws, step, curve_draws)
            self.observe_probe(averaged_across_ranks(probed))  # DDP: the same observations on every rank
            record = self.choose(step)
        renders, k = self.configuration_at(step)
        self.auto.k = k
        self.history.append({"step": step, "renders": renders, "k": k})
        return (renders, k), record

    def configuration_at(self, step: int) -> tuple[int, int]:
        """(R, K) in force at a step: the latest plan that starts at or before it."""
        return next((r, k) for start, r, k in reversed(self.planned) if start <= step)

    @property
    def renders_ahead(self) -> int:
        """R of the newest plan: what a system that draws its cameras ahead of the step must draw now."""
        return self.planned[-1][1]

    def cost_model(self) -> MeasuredCostModel:
        """C(R, K) = R a + c(R K): a of the run's phase clocks, c measured at the first probe."""
        return MeasuredCostModel(self.auto.a, self.curve)

    def choose(self, step: int) -> dict:
        """Plan the choice made before this step (from step + lag on) and return what the probe logs."""
        a = self.auto
        choice = choose_configuration(
            self.cost_model(), a.sigma_b2, a.sigma_w2, self.options, a.k_multiple, self.excluded_renders
        )
        self.planned = [p for p in self.planned if p[0] < step + self.lag] + [
            (step + self.lag, choice.renders, choice.k)
        ]
        record = {
            "step": step,
            "applies_from": step + self.lag,
            "renders": choice.renders,
            "k": choice.k,
            "sigma_b2": a.sigma_b2,
            "sigma_w2": a.sigma_w2,
            "cost_a": a.a,
            "cost_b": self.curve.single,
            "budget": choice.budget,
            "ecm_vs_baseline": choice.ecm,
            "linear_renders": choice.linear_renders,
            "linear_k": choice.linear_k,
            "linear_ecm_vs_baseline": choice.linear_ecm,
            "k_star": a.k_star(),
        }
        self.choices.append(record)
        return record

    def observe_probe(self, result: ProbeResult) -> None:
        """A probe's components, its costs (a, b until a step has been timed) and, at the first probe, c(n)."""
        self.auto.observe_components(result.components)
        if self.auto.a is None:
            self.auto.observe_costs(result.a, result.b)
        if result.curve is not None and self.curve is None:
            self.curve = result.curve
        if self.curve is None:
            raise ValueError("the first auto probe must measure the teacher cost curve (curve_draws > 0)")

    def observe_step(self, phase_seconds: dict, renders: int, k: int) -> None:
        """Costs a, b from the phase clock of the step just made (ignored when it timed no teacher)."""
        costs = step_costs(averaged_across_ranks(phase_seconds), renders, k)  # DDP: every rank's mean
        if costs is not None and costs[1] > 0:
            self.auto.observe_costs(*costs)
