"""`carv attribute`: attribute teacher samples to training images with each estimator at equal draws per example.

Imports diffusers (through ``teacher``); import by path. Writes <out>/<tag>@<timestamp>/ with report.json,
correlation_vs_samples.png, queries_top_train.png and features.pt
(the projected per-draw gradients [N + Q, K, P] of each design, in the order of ``Designs.all``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..timesteps import PROPOSALS, make_timestep_sampler
from ..toyworld.world import HELD_OUT_PAIRS, caption, parse_prompt
from .draws import Draws, grid_draws, iid_draws, stratified_draws
from .features import average_features, per_draw_gradients
from .scores import budget_multipliers, mean_spearman, spearman_rows, trak_scores

DEFAULT_QUERIES = (
    *(caption(c, s) for c, s in HELD_OUT_PAIRS),
    "a green mug",
    "a purple duck",
    "a yellow house",
    "a blue robot",
)
CARV_PROPOSALS = ("uniform", "sds", "fantasia3d")
TOP = 5


@dataclass
class AttributionSettings:
    """Sizes of one `carv attribute` run (defaults: the 15-minute run on a 2-core CPU)."""

    teacher: str = ""  # diffusers folder of the teacher; "" = load/toy-teacher
    queries: tuple[str, ...] = DEFAULT_QUERIES  # prompts of the query images (the first four are held-out pairs)
    train_images: int = 120  # training images attributed to
    views_per_shape: int = 3  # rendered views per shape the training images are painted from
    budgets: tuple[int, ...] = (1, 2, 4)  # draws per example of the grid and CARV estimators
    iid_draws: int = 16  # draws per example of the IID estimator; its budgets are the powers of 2 up to this (nested)
    truth_draws: int = 32  # draws per example of the ground truth (two independent stratified halves)
    proposal: str = "uniform"  # CARV's timestep proposal q (weights p/q): uniform, sds or fantasia3d
    proj_dim: int = 256  # dimension of the random projection
    projection: str = "rademacher"  # rademacher or normal
    ridge: float = 1.0  # TRAK kernel damping lambda, in units of the kernel's mean eigenvalue
    query_steps: int = 25  # DDIM steps of each query sample
    guidance_scale: float = 7.5  # CFG scale of the query samples
    chunk: int = 128  # (example, draw) gradients per vmap call
    seed: int = 0
    tag: str = "toy-teacher"  # the report folder's name before @timestamp
    out: str = ""  # parent folder; "" = outputs/attribution


def check_settings(s: AttributionSettings, unknown_words) -> None:
    """ValueError naming the first setting a run cannot use; ``unknown_words(prompt)`` lists a prompt's unknown words."""
    positive = {"train_images": s.train_images, "views_per_shape": s.views_per_shape, "proj_dim": s.proj_dim}
    positive |= {"iid_draws": s.iid_draws, "query_steps": s.query_steps, "chunk": s.chunk}
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not s.budgets or any(k < 1 for k in s.budgets):
        raise ValueError(f"every budget (draws per example) must be >= 1, got {list(s.budgets)}")
    if s.truth_draws < 2 or s.truth_draws % 2:
        raise ValueError(f"truth_draws must be an even number >= 2 (two halves), got {s.truth_draws}")
    if not s.ridge >= 0:
        raise ValueError(f"ridge must be >= 0, got {s.ridge}")
    if s.proposal not in CARV_PROPOSALS:
        raise ValueError(f"unknown proposal {s.proposal!r}; valid: {', '.join(CARV_PROPOSALS)} (of {PROPOSALS})")
    if not s.queries:
        raise ValueError("give at least one query prompt")
    for prompt in s.queries:
        words = unknown_words(prompt)
        if words:
            raise ValueError(f"the teacher does not know the word(s) {', '.join(words)} of query {prompt!r}")
        parse_prompt(prompt)


def powers_of_two(limit: int) -> list[int]:
    return [2**i for i in range(limit.bit_length()) if 2**i <= limit]


@dataclass
class Designs:
    """Every estimator's draws for all N + Q examples, from its own seeded generator."""

    truth: tuple[Draws, Draws]
    iid: Draws
    grid: dict[int, Draws] = field(default_factory=dict)
    carv: dict[int, Draws] = field(default_factory=dict)

    def all(self) -> list[Draws]:
        return [*self.truth, self.iid, *self.grid.values(), *self.carv.values()]


def make_designs(s: AttributionSettings, n: int, latent_shape: tuple, alphas_cumprod: torch.Tensor) -> Designs:
    """The draws of the ground truth, IID, grid and CARV estimators (each its own generator, seed-derived)."""
    steps = alphas_cumprod.shape[0]

    def sampler(proposal: str, stratified: bool):
        return make_timestep_sampler(
            proposal, stratified=stratified, alphas_cumprod=alphas_cumprod, min_step=0, max_step=steps - 1
        )

    def gen(offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(1000 * s.seed + offset)

    half = s.truth_draws // 2
    truth = tuple(stratified_draws(half, latent_shape, sampler("uniform", True), gen(1 + i), n=n) for i in range(2))
    designs = Designs(truth, iid_draws(n, s.iid_draws, latent_shape, sampler("uniform", False), gen(3)))
    carv = sampler(s.proposal, True)
    for i, k in enumerate(sorted(set(s.budgets))):
        designs.grid[k] = grid_draws(k, latent_shape, steps, gen(10 + i))
        designs.carv[k] = stratified_draws(k, latent_shape, carv, gen(100 + i))
    return designs


def curve(features: list[torch.Tensor], truth: torch.Tensor, n_train: int, ridge: float) -> list[dict]:
    """Mean Spearman correlation (and SE over queries) of each feature set's scores with the truth's."""
    out = []
    for phi in features:
        mean, se = mean_spearman(trak_scores(phi[n_train:], phi[:n_train], ridge), truth)
        out.append({"spearman": mean, "se": se})
    return out


def top_matches(truth: torch.Tensor, queries: list[str], train) -> list[dict]:
    """Per query: its top training images by ground-truth score, how many share its shape and colour, and chance."""
    rows = []
    for q, prompt in enumerate(queries):
        parsed = parse_prompt(prompt)
        top = truth[q].argsort(descending=True)[:TOP]
        same_shape = (train.shape[top] == parsed.shape).sum().item()
        same_colour = (train.colour[top] == parsed.colour).sum().item()
        rows.append(
            {
                "query": prompt,
                "top": [train.captions[j] for j in top.tolist()],
                "top_index": top.tolist(),
                f"same_shape_in_top{TOP}": same_shape,
                f"same_colour_in_top{TOP}": same_colour,
                "chance_same_shape": TOP * (train.shape == parsed.shape).double().mean().item(),
                "chance_same_colour": TOP * (train.colour == parsed.colour).double().mean().item(),
            }
        )
    return rows


def analyse(s: AttributionSettings, designs: Designs, per_draw: list[torch.Tensor], n_train: int) -> dict:
    """Scores of every estimator and budget against the ground truth, and CARV's multiplier over IID."""
    truth_a, truth_b, iid, *rest = per_draw
    budgets = sorted(set(s.budgets))
    grid, carv = rest[: len(budgets)], rest[len(budgets) :]
    halves = [average_features(f, d.weight) for f, d in zip((truth_a, truth_b), designs.truth, strict=True)]
    truth_phi = (halves[0] + halves[1]) / 2
    truth = trak_scores(truth_phi[n_train:], truth_phi[:n_train], s.ridge)
    split = spearman_rows(*(trak_scores(h[n_train:], h[:n_train], s.ridge) for h in halves))
    iid_budgets = powers_of_two(s.iid_draws)
    iid_phi = [average_features(iid[:, :k], designs.iid.weight[:, :k]) for k in iid_budgets]
    grid_phi = [average_features(f, designs.grid[k].weight) for f, k in zip(grid, budgets, strict=True)]
    carv_phi = [average_features(f, designs.carv[k].weight) for f, k in zip(carv, budgets, strict=True)]
    curves = {
        "iid": dict(zip(iid_budgets, curve(iid_phi, truth, n_train, s.ridge), strict=True)),
        "grid": dict(zip(budgets, curve(grid_phi, truth, n_train, s.ridge), strict=True)),
        "carv": dict(zip(budgets, curve(carv_phi, truth, n_train, s.ridge), strict=True)),
    }
    iid_curve = [curves["iid"][k]["spearman"] for k in iid_budgets]

    def multipliers(name):
        return budget_multipliers(budgets, [curves[name][k]["spearman"] for k in budgets], iid_budgets, iid_curve)

    return {
        "curves": curves,
        "multiplier": multipliers("carv"),
        "multiplier_grid": multipliers("grid"),
        "truth_split_half_spearman": {"mean": split.mean().item(), "se": (split.std() / len(split) ** 0.5).item()},
        "truth_scores": truth,
    }


def run_attribution(s: AttributionSettings, folder: Path) -> dict:
    """Render, load, sample the queries, take every estimator's gradients, write the report and figures."""
    from . import teacher as adapter
    from .plots import plot_correlation, plot_top_matches
    from .training_set import toy_training_set

    clock = {"start": time.time()}
    model = adapter.load_attribution_teacher(s.teacher)
    generator = torch.Generator().manual_seed(s.seed)
    with tqdm(total=s.views_per_shape * 8, desc="render training views", mininterval=2.0) as bar:
        train = toy_training_set(s.train_images, s.views_per_shape, model.teacher.native_resolution, generator, bar)
    queries = adapter.generate_queries(model, list(s.queries), generator, s.query_steps, s.guidance_scale)
    clock["prepared"] = time.time()
    latents = adapter.encode(model.teacher, torch.cat([train.images, queries]))
    context = adapter.captions_context(model, train.captions + list(s.queries))
    params = adapter.output_end_parameters(model.teacher.unet)
    from .projection import random_projector

    project = random_projector(sum(p.numel() for p in params.values()), s.proj_dim, s.seed, s.projection)
    designs = make_designs(s, len(latents), tuple(latents.shape[1:]), model.teacher.alphas_cumprod)
    denoise = adapter.unet_denoiser(model.teacher)
    total = len(latents) * sum(d.k for d in designs.all())
    per_draw = []
    with tqdm(total=total, desc="gradient draws", unit="draw", mininterval=5.0) as bar:
        for draws in designs.all():
            per_draw.append(
                per_draw_gradients(
                    denoise, params, latents, context, draws, model.teacher.alphas_cumprod, project=project,
                    chunk=s.chunk, progress=bar,
                )
            )  # fmt: skip
    clock["gradients"] = time.time()
    torch.save({"per_draw": per_draw, "n_train": len(train.captions)}, folder / "features.pt")
    result = analyse(s, designs, per_draw, len(train.captions))
    matches = top_matches(result.pop("truth_scores"), list(s.queries), train)
    plot_correlation(result, folder / "correlation_vs_samples.png", s)
    plot_top_matches(queries, train, matches, folder / "queries_top_train.png")
    report = {
        "settings": asdict(s),
        "gradient_parameters": {"names": list(params), "count": sum(p.numel() for p in params.values())},
        "draws_per_example": {"total": total // len(latents), "examples": len(latents)},
        **result,
        "top_matches": matches,
        "seconds": {
            "prepare": clock["prepared"] - clock["start"],
            "gradients": clock["gradients"] - clock["prepared"],
            "total": time.time() - clock["start"],
        },
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "loadavg_at_end": os.getloadavg(),
            "python": platform.python_version(),
        },
    }
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    return report
