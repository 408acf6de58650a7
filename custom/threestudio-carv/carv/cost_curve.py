"""Measured step cost: C(R, K) = A(R) + c(R K), with c(n) the measured seconds of n guided teacher evaluations
and A(R) = R a, or the measured seconds of R renders' render, encode and backward where those are measured too
(encoders batch as well: on a CPU one render at a time costs more per render than four).

On a GPU the R K re-noised latents of a step go to the teacher as one batch, and a batch of n costs far less
than n single evaluations until the device saturates (an H100 at 512 px: K = 8 cost 1.03x K = 1). The linear
model C = R (a + K b) of CARV sec. 3 is the special case c(n) = n b. Every choice here is a brute-force search
over integer (R, K), since no closed form holds for a measured c.
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from .accounting import CostModel, predicted_variance


def doubling_ladder(max_draws: int) -> tuple[int, ...]:
    """Batch sizes 1, 2, 4, ... up to max_draws (max_draws itself included)."""
    if max_draws < 1:
        raise ValueError(f"the ladder needs max_draws >= 1, got {max_draws}")
    sizes = [1 << i for i in range(max_draws.bit_length()) if 1 << i <= max_draws]
    return tuple(sizes if sizes[-1] == max_draws else [*sizes, max_draws])


def running_max(values: Sequence[float]) -> tuple[float, ...]:
    """values made non-decreasing: each is the largest so far (a batch is never cheaper than a smaller one)."""
    out, best = [], -math.inf
    for value in values:
        best = max(best, value)
        out.append(best)
    return tuple(out)


def piecewise_linear(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Linear interpolation through (0, 0) and (xs, ys); past the last point, the last segment's slope."""
    points_x, points_y = (0.0, *xs), (0.0, *ys)
    i = min(max(bisect.bisect_left(points_x, x), 1), len(points_x) - 1)
    x0, x1, y0, y1 = points_x[i - 1], points_x[i], points_y[i - 1], points_y[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class TeacherCostCurve:
    """c(n): seconds of n guided teacher evaluations made in one call, on a ladder of n, interpolated monotonically.

    draws: the ladder, strictly increasing, >= 1; seconds: c at each (made non-decreasing); peak_bytes: the peak
    device memory of each batch (CUDA), or None where the device has no memory bound.
    """

    draws: tuple[int, ...]
    seconds: tuple[float, ...]
    peak_bytes: tuple[float, ...] | None = None

    def __post_init__(self):
        if not self.draws or len(self.draws) != len(self.seconds):
            raise ValueError(f"a cost curve needs as many seconds as draws, got {self.draws} and {self.seconds}")
        if self.draws[0] < 1 or any(b <= a for a, b in zip(self.draws, self.draws[1:], strict=False)):
            raise ValueError(f"the ladder of draws must be strictly increasing from >= 1, got {self.draws}")
        if not all(s > 0 and math.isfinite(s) for s in self.seconds):
            raise ValueError(f"measured seconds must be positive and finite, got {self.seconds}")
        if self.peak_bytes is not None and len(self.peak_bytes) != len(self.draws):
            raise ValueError("peak_bytes needs one value per ladder step")
        object.__setattr__(self, "seconds", running_max(self.seconds))

    @classmethod
    def linear(cls, b: float, draws: Sequence[int] = (1,)) -> TeacherCostCurve:
        """c(n) = n b: the linear cost model as a curve."""
        return cls(tuple(draws), tuple(n * b for n in draws))

    def __call__(self, draws: int) -> float:
        """c(n) in seconds; c(0) = 0."""
        return piecewise_linear(draws, self.draws, self.seconds)

    def peak(self, draws: int) -> float | None:
        """Interpolated peak memory of a batch of n (None without a memory measurement)."""
        return None if self.peak_bytes is None else piecewise_linear(draws, self.draws, self.peak_bytes)

    @property
    def single(self) -> float:
        """b of the linear model: seconds of one evaluation (c(1))."""
        return self(1)

    def as_records(self) -> list[dict]:
        """[{"draws": n, "seconds": s(, "peak_bytes": m)}] for report.json."""
        records = [{"draws": n, "seconds": s} for n, s in zip(self.draws, self.seconds, strict=True)]
        for record, peak in zip(records, self.peak_bytes or (), strict=False):
            record["peak_bytes"] = peak
        return records


@dataclass(frozen=True)
class MeasuredCostModel:
    """C(R, K) = A(R) + c(R K) with a measured teacher curve c and A(R) = R a (a per render: render, encode,
    backward), or render_curve(R) where the renders were measured on a ladder of R too."""

    a: float
    curve: TeacherCostCurve
    memory_limit: float | None = None  # bytes; no (R, K) whose teacher batch needs more is allowed
    render_curve: TeacherCostCurve | None = None  # seconds of R renders' render + encode + backward

    def __post_init__(self):
        if not (self.a >= 0 and math.isfinite(self.a)):
            raise ValueError(f"the per-render cost a must be finite and >= 0, got {self.a}")

    @property
    def b(self) -> float:
        """One evaluation's seconds: the linear model's b."""
        return self.curve.single

    def render_cost(self, renders: int) -> float:
        """A(R): R a, or the measured render curve at R."""
        return renders * self.a if self.render_curve is None else self.render_curve(renders)

    def step_cost(self, renders: int, draws_per_render: int) -> float:
        """C(R, K) = A(R) + c(R K)."""
        return self.render_cost(renders) + self.curve(renders * draws_per_render)

    def fits(self, renders: int, draws_per_render: int) -> bool:
        """Whether the step's teacher batch stays within the memory limit (always, without one)."""
        peak = self.curve.peak(renders * draws_per_render)
        return self.memory_limit is None or peak is None or peak <= self.memory_limit

    def linear(self) -> CostModel:
        """The linear model with the same a and the single-evaluation b."""
        return CostModel(self.a, self.b)


def fits(costs, renders: int, draws_per_render: int) -> bool:
    """Memory check of any cost model (the linear CostModel has no bound)."""
    check = getattr(costs, "fits", None)
    return True if check is None else check(renders, draws_per_render)


def variance_times_cost(costs, sigma_b2: float, sigma_w2: float, renders: int, draws_per_render: int) -> float:
    """Var(R, K) C(R, K): the compute-normalised variance (lower is better)."""
    return predicted_variance(sigma_b2, sigma_w2, renders, draws_per_render) * costs.step_cost(
        renders, draws_per_render
    )


def best_k(costs, sigma_b2: float, sigma_w2: float, renders: int = 1, k_max: int = 1024) -> int:
    """The integer K in [1, k_max] minimising Var C at R renders among those that fit in memory."""
    candidates = [k for k in range(1, k_max + 1) if fits(costs, renders, k)] or [1]
    return min(candidates, key=lambda k: variance_times_cost(costs, max(sigma_b2, 0.0), sigma_w2, renders, k))


def affordable(costs, budget: float, r_max: int = 64, k_max: int = 1024) -> list[tuple[int, int]]:
    """Every (R, K) with C(R, K) <= budget that fits in memory (C grows in R and K: the search stops early)."""
    pairs = []
    for renders in range(1, r_max + 1):
        if costs.step_cost(renders, 1) > budget * (1 + 1e-9):
            break
        for k in range(1, k_max + 1):
            if costs.step_cost(renders, k) > budget * (1 + 1e-9):
                break
            if fits(costs, renders, k):
                pairs.append((renders, k))
    return pairs


def best_configuration(
    costs, sigma_b2: float, sigma_w2: float, budget: float, baseline: tuple[int, int] = (4, 1), k_max: int = 1024
) -> tuple[int, int]:
    """The (R, K) within the per-step budget with the least Var C; the baseline wins ties and empty searches,
    so the choice is never worse than the baseline in the model."""
    sigma_b2 = max(sigma_b2, 0.0)
    best = baseline
    for pair in affordable(costs, budget, k_max=k_max):
        if variance_times_cost(costs, sigma_b2, sigma_w2, *pair) < variance_times_cost(
            costs, sigma_b2, sigma_w2, *best
        ):
            best = pair
    return best


def reuse_limit_measured(costs, sigma_b2: float, sigma_w2: float, k_max: int = 1024) -> float:
    """The best ECM any integer K reaches at R = 1 against K = 1 with the same components."""
    k = best_k(costs, sigma_b2, sigma_w2, 1, k_max)
    sigma_b2 = max(sigma_b2, 0.0)
    return variance_times_cost(costs, sigma_b2, sigma_w2, 1, 1) / variance_times_cost(costs, sigma_b2, sigma_w2, 1, k)


def interleaved_medians(
    calls: Mapping[Hashable, Callable[[], None]],
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
    synchronize: Callable[[], None] = lambda: None,
) -> dict[Hashable, float]:
    """Median seconds of each call over `repeats` rounds, each round timing every call once, so that a load change
    on a shared machine falls on all calls alike. The order is rotated by len(calls) / repeats from round to round,
    so that each call's places spread evenly over the round (a rotation by one would keep each call near the same
    place in every round when there are few rounds)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    keys = list(calls)
    times: dict[Hashable, list[float]] = {key: [] for key in keys}
    for round_ in range(repeats):
        shift = (round_ * len(keys)) // repeats % len(keys) if keys else 0
        for key in keys[shift:] + keys[:shift]:
            synchronize()
            start = clock()
            calls[key]()
            synchronize()
            times[key].append(clock() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def measure_teacher_curve(
    evaluate: Callable[[int], None],
    ladder: Sequence[int],
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
    synchronize: Callable[[], None] = lambda: None,
    peak_memory: Callable[[int], float] | None = None,
    out_of_memory: tuple[type[BaseException], ...] = (),
) -> TeacherCostCurve:
    """c(n) on the ladder: one warm-up call per batch size in ladder order, then the median of `repeats` timed
    calls, interleaved over the sizes (interleaved_medians).

    peak_memory(n), where given, returns the peak bytes of a batch of n (measured by the caller); a batch that
    raises one of `out_of_memory` in its warm-up ends the ladder there (the curve keeps the sizes that ran).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    draws, peaks = [], []
    for n in ladder:
        try:
            evaluate(n)
            peak = None if peak_memory is None else peak_memory(n)
        except out_of_memory:
            break
        draws.append(n)
        peaks.append(peak)
    if not draws:
        raise RuntimeError("no batch size of the ladder could be evaluated")
    medians = interleaved_medians({n: (lambda n=n: evaluate(n)) for n in draws}, repeats, clock, synchronize)
    seconds = tuple(medians[n] for n in draws)
    return TeacherCostCurve(tuple(draws), seconds, None if peak_memory is None else tuple(peaks))


def curve_from_records(records: Sequence[Mapping]) -> TeacherCostCurve:
    """The curve of TeacherCostCurve.as_records() ([{"draws", "seconds"(, "peak_bytes")}], as report.json has it)."""
    peaks = [record.get("peak_bytes") for record in records]
    return TeacherCostCurve(
        tuple(int(record["draws"]) for record in records),
        tuple(float(record["seconds"]) for record in records),
        None if any(peak is None for peak in peaks) else tuple(float(peak) for peak in peaks),
    )


def memory_bound(curve: TeacherCostCurve, requested: int, device_bytes: float | None) -> float | None:
    """The memory limit of a cost model over a ladder measured up to `requested` draws: the device's memory, or,
    where the ladder stopped short (a batch ran out of memory), the peak of the largest batch that ran, so that no
    (R, K) needs a batch larger than one that fitted. None without a device bound or without peak measurements."""
    if device_bytes is None or curve.peak_bytes is None:
        return None
    return curve.peak_bytes[-1] if curve.draws[-1] < requested else device_bytes
