"""The variance of the DMD step's parameter gradient for every estimator at frozen networks (CARV sec. 3 accounting).

Each estimator repeats the whole step `repeats` times; the matched-IID repeats also give per-draw gradients for
the variance components. a and b are the measured seconds per generated sample and per teacher draw.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ..accounting import CostMeter, CostModel, ecm, optimal_k, predicted_variance, reuse_limit
from .networks import TeacherScores
from .objective import setting_sampler
from .step import pooled_components, repeated_step_gradients, trace_variance


def measure_variance(student, head, world, settings: dict, options, step: int, seed: int, carv_sampler) -> dict:
    """Trace variance of the step gradient of every setting at frozen networks; components and ECM (CARV sec. 3)."""
    scores = TeacherScores(world.teacher, head, world.cond, world.uncond, options.guidance_scale)
    generator = torch.Generator().manual_seed(seed)
    out, meters = {"step": step}, {}
    for name, setting in settings.items():
        meters[name] = CostMeter()
        grads, components = repeated_step_gradients(
            student,
            scores,
            setting,
            carv_sampler
            if name == "carv"
            else setting_sampler(
                setting, world.teacher.alphas_cumprod, options.min_step_percent, options.max_step_percent
            ),
            options.repeats,
            generator,
            meters[name],
            grid=name == "matched_iid",
        )
        out[name] = asdict(trace_variance(grads))
        if components:
            out["components"] = pooled_components(components)
    costs = CostModel(meters["matched_iid"].a, meters["matched_iid"].b)
    base, carv = settings["baseline"], settings["carv"]
    var_b, var_c = out["baseline"]["value"], out["carv"]["value"]
    out["variance_reduction"] = var_b / var_c
    out["variance_reduction_se"] = (
        out["variance_reduction"] * ((out["baseline"]["se"] / var_b) ** 2 + (out["carv"]["se"] / var_c) ** 2) ** 0.5
    )
    out["variance_reduction_vs_matched_iid"] = out["matched_iid"]["value"] / var_c
    out["variance_reduction_vs_same_samples"] = out["same_samples"]["value"] / var_c
    c = out["components"]
    out["costs"] = {"a": costs.a, "b": costs.b}
    out["ecm"] = ecm(var_b, costs.step_cost(base.samples, 1), var_c, costs.step_cost(carv.samples, carv.k))
    out["predicted"] = {
        "baseline": predicted_variance(c["sigma_b2"], c["sigma_w2"], base.samples, 1),
        "matched_iid": predicted_variance(c["sigma_b2"], c["sigma_w2"], carv.samples, carv.k),
        "optimal_k": optimal_k(costs.a, costs.b, c["sigma_b2"], c["sigma_w2"]),
        "reuse_limit": reuse_limit(costs, c["sigma_b2"], c["sigma_w2"]),
    }
    return out
