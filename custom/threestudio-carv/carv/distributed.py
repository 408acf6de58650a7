"""Agreement across data-parallel ranks: what CARV adapts from its draws is learnt from every rank's draws.

Under Lightning's DDP (threestudio's `launch.py --gpu 0,1`) each rank draws its own cameras and timesteps. The
adaptive proposal's statistics and `auto`'s variance components and costs must come from all ranks' draws, or the
ranks hold different proposals and choose different K (a batch shape the other ranks do not make, and wait on).
Every function here is the identity when torch.distributed is not initialized or has one rank; otherwise it
gathers every rank's value and combines the values in rank order, so every rank computes the same result, bit for
bit. Each combination uses only values measured before the choice it feeds, so each step stays unbiased.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.distributed as dist

from .accounting import VarianceComponents
from .stratified_variance import pooled_between_render_variance


def world_size() -> int:
    """Ranks of the default process group; 1 when torch.distributed is unavailable or not initialized."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gathered(value) -> list:
    """[rank 0's value, rank 1's value, ...] on every rank (all_gather_object); [value] on a single rank."""
    if world_size() == 1:
        return [value]
    values = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def concatenated_across_ranks(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor [n_i, ...] of every rank i, concatenated along dim 0 in rank order, on the CPU."""
    if world_size() == 1:
        return tensors
    parts = gathered(tuple(t.detach().cpu() for t in tensors))
    return tuple(torch.cat(column) for column in zip(*parts, strict=True))


def averaged_across_ranks(value):
    """average_of every rank's value (the value itself on a single rank): the same result on every rank."""
    if world_size() == 1:
        return value
    return average_of(gathered(value))


def pooled_components(parts: Sequence[VarianceComponents]) -> VarianceComponents:
    """Components of independent probes of R renders x K draws each (one per rank), pooled.

    The mean of the unbiased per-probe estimates is unbiased (every rank estimates the same sigma^2 at the same
    parameters); SEs combine as independent; the pooled probe counts all renders.
    """
    shapes = {(c.renders, c.draws_per_render) for c in parts}
    if len(shapes) != 1:
        raise ValueError(f"ranks probed different (renders, draws) {sorted(shapes)}: they cannot be pooled as equals")
    n = len(parts)
    sigma_b2, sigma_b2_se = pooled_between_render_variance(list(parts))
    sigma_w2 = sum(c.sigma_w2 for c in parts) / n
    sigma_w2_se = math.sqrt(sum(c.sigma_w2_se**2 for c in parts)) / n
    renders, draws = shapes.pop()
    return VarianceComponents(sigma_b2, sigma_w2, sigma_b2_se, sigma_w2_se, renders * n, draws)


def average_of(values: Sequence):
    """Rank-order average of like-structured values.

    Floats are averaged; VarianceComponents pooled (pooled_components); dataclasses, tuples and lists field by
    field; dicts key by key over the values that hold the key; other leaves (ints, strings, None) must agree.
    """
    first = values[0]
    if isinstance(first, VarianceComponents):
        return pooled_components(values)
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        fields = {f.name: average_of([getattr(v, f.name) for v in values]) for f in dataclasses.fields(first)}
        return dataclasses.replace(first, **fields)
    if isinstance(first, dict):
        keys = dict.fromkeys(key for v in values for key in v)
        return {key: average_of([v[key] for v in values if key in v]) for key in keys}
    if isinstance(first, (tuple, list)):
        if len({len(v) for v in values}) != 1:
            raise ValueError(f"ranks reported sequences of different lengths {[len(v) for v in values]}")
        return type(first)(average_of(column) for column in zip(*values, strict=True))
    if isinstance(first, float):
        return sum(values) / len(values)
    if any(v != first for v in values):
        raise ValueError(f"ranks disagree on a value that cannot be averaged: {values}")
    return first
