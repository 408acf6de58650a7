"""Compute multiplier of timestep proposals, IID and stratified, on an analytic toy; cost of one draw.

The toy (carv.toy_expectation.PeakedNormToy) has a direction norm that peaks at
t = 0.45 T, like the latent-space SDS norm in CARV sec. 2.2. Multiplier of a
sampler = variance of the uniform IID estimator / its variance at the same
number of draws (equal cost: drawing t is free next to a teacher call). IID
variances are exact sums over the support; stratified ones are measured by
repetition, with their standard error.

    python scripts/bench_sampling.py [--json] [--draws 16] [--repeats 4000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import timeit

import torch
from tqdm import tqdm

import carv
from carv.stratified_variance import repeated_variance
from carv.toy_expectation import PeakedNormToy, estimate_means, exact_single_draw_variance

MIN_STEP, MAX_STEP = 20, 980


def samplers(toy: PeakedNormToy) -> dict[str, dict]:
    """Keyword arguments of make_timestep_sampler for each proposal."""
    return {
        "uniform": {"proposal": "uniform"},
        "sds": {"proposal": "sds"},
        "gaussian": {"proposal": "gaussian", "gaussian_peak": toy.peak, "gaussian_width": 2 * toy.width},
        "oracle": {"proposal": toy.oracle_table()},
        "adaptive": {"proposal": "adaptive"},
    }


def warm_up_adaptive(sampler: carv.TimestepSampler, toy: PeakedNormToy, draws: int, generator: torch.Generator) -> None:
    """Feed the adaptive proposal the squared norms of its own draws, as the guidance does."""
    for _ in range(draws // 64):
        draw = sampler.sample(64, generator=generator)
        sampler.update(draw.t, toy.draws(draw.t, generator).pow(2).sum(dim=1))


def multipliers(toy: PeakedNormToy, draws: int, repeats: int, seed: int, quiet: bool = False) -> dict[str, float]:
    generator = torch.Generator().manual_seed(seed)
    results = {}
    baseline = exact_single_draw_variance(
        carv.make_timestep_sampler("uniform", min_step=MIN_STEP, max_step=MAX_STEP), toy
    )
    configurations = samplers(toy)
    for name, kwargs in tqdm(configurations.items(), desc="proposals", leave=False, disable=quiet):
        for stratified in (False, True):
            kwargs_copy = dict(kwargs)
            sampler = carv.make_timestep_sampler(
                kwargs_copy.pop("proposal"), min_step=MIN_STEP, max_step=MAX_STEP, stratified=stratified, **kwargs_copy
            )
            if name == "adaptive":
                warm_up_adaptive(sampler, toy, draws=4096, generator=generator)
            key = f"{name}_{'stratified' if stratified else 'iid'}"
            if stratified:
                variance, variance_se = repeated_variance(estimate_means(sampler, toy, draws, repeats, generator))
                results[key] = baseline / (variance * draws)
                results[f"{key}_se"] = results[key] * variance_se / variance  # delta method
            else:
                results[key] = baseline / exact_single_draw_variance(sampler, toy)
    return results


def paired_time_ratio(candidate, reference, rounds: int = 31, number: int = 50) -> tuple[float, float]:
    """Median over rounds of (candidate seconds / reference seconds), each round timing both back to back.

    Pairing within a round cancels most of the load that a shared machine puts on both.
    Returns (median ratio, median candidate seconds per call).
    """
    ratios, seconds = [], []
    for _ in range(rounds):
        reference_seconds = timeit.timeit(reference, number=number)
        candidate_seconds = timeit.timeit(candidate, number=number)
        ratios.append(candidate_seconds / reference_seconds)
        seconds.append(candidate_seconds / number)
    return statistics.median(ratios), statistics.median(seconds)


def draw_cost_ratios(n: int = 1024) -> dict[str, float]:
    """Cost of one sampler draw of n timesteps relative to torch.randint of n, measured in one run."""
    generator = torch.Generator().manual_seed(0)
    results = {}
    for proposal in ("uniform", "sds", "adaptive"):
        for stratified in (False, True):
            sampler = carv.make_timestep_sampler(proposal, min_step=MIN_STEP, max_step=MAX_STEP, stratified=stratified)
            ratio, seconds = paired_time_ratio(
                lambda s=sampler: s.sample(n, generator=generator),
                lambda: torch.randint(MIN_STEP, MAX_STEP + 1, (n,), generator=generator),
            )
            name = f"{proposal}_{'stratified' if stratified else 'iid'}"
            results[f"draw_cost_{name}_vs_randint"] = ratio
            results[f"draw_microseconds_{name}"] = seconds * 1e6
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one flat JSON object of named multipliers")
    parser.add_argument("--draws", type=int, default=16, help="timesteps per estimate (stratified: one per stratum)")
    parser.add_argument("--repeats", type=int, default=4000, help="repetitions to measure stratified variances")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.draws < 1 or args.repeats < 2:
        parser.error("--draws must be >= 1 and --repeats >= 2")
    results = multipliers(PeakedNormToy(), args.draws, args.repeats, args.seed, quiet=args.json) | draw_cost_ratios()
    if args.json:
        print(json.dumps(results))
        return
    print(f"compute multiplier vs uniform IID at {args.draws} draws per estimate (higher is better)")
    for key, value in results.items():
        if key.startswith("draw_") or key.endswith("_se"):
            continue
        spread = f" +- {results[key + '_se']:.2f} (standard error)" if key + "_se" in results else " (exact)"
        print(f"  {key:24s} {value:6.2f}x{spread}")
    print("cost of one draw of 1024 timesteps / torch.randint of 1024 (median of paired rounds)")
    for key, value in results.items():
        if key.startswith("draw_cost"):
            name = key.removeprefix("draw_cost_").removesuffix("_vs_randint")
            print(f"  {name:24s} {value:6.2f}x  ({results['draw_microseconds_' + name]:.0f} us per draw)")


if __name__ == "__main__":
    main()
