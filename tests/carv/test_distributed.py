"""carv.distributed: the identity on one process; under Lightning's DDP (two gloo CPU ranks) every rank holds the
same adaptive proposal and auto's same K, learnt from all ranks' draws, not from its own."""

import math

import pytest
import torch

from carv.accounting import VarianceComponents
from carv.autotune import AutoKController, ProbeResult
from carv.distributed import (
    average_of,
    averaged_across_ranks,
    concatenated_across_ranks,
    pooled_components,
    world_size,
)


def test_every_reduction_is_the_identity_without_a_process_group():
    t, sq = torch.arange(3), torch.rand(3, dtype=torch.float64)
    value = {"render": 0.5, "teacher": 1.5}
    assert world_size() == 1
    assert concatenated_across_ranks(t, sq) == (t, sq)
    assert averaged_across_ranks(value) is value


def test_pooled_components_average_independent_unbiased_estimates():
    parts = [VarianceComponents(1.0, 4.0, 0.3, 0.4, 3, 4), VarianceComponents(3.0, 2.0, 0.4, 0.3, 3, 4)]
    pooled = pooled_components(parts)
    assert (pooled.sigma_b2, pooled.sigma_w2, pooled.renders, pooled.draws_per_render) == (2.0, 3.0, 6, 4)
    assert pooled.sigma_b2_se == pytest.approx(0.25) and pooled.sigma_w2_se == pytest.approx(0.25)
    with pytest.raises(ValueError, match="different"):
        pooled_components([parts[0], VarianceComponents(1.0, 1.0, 0.1, 0.1, 2, 4)])


def test_average_of_probe_results_and_phase_clocks():
    a = ProbeResult(VarianceComponents(1.0, 4.0, 0.3, 0.4, 3, 4), 1.0, 0.5)
    b = ProbeResult(VarianceComponents(3.0, 2.0, 0.4, 0.3, 3, 4), 2.0, 1.5)
    assert average_of([a, b]) == ProbeResult(pooled_components([a.components, b.components]), 1.5, 1.0)
    assert average_of([{"render": 1.0, "teacher": 2.0}, {"render": 3.0}]) == {"render": 2.0, "teacher": 2.0}
    assert average_of([(1, 2.0), (1, 4.0)]) == (1, 3.0)
    with pytest.raises(ValueError, match="disagree"):
        average_of([(1, 2.0), (2, 4.0)])
    with pytest.raises(ValueError, match="lengths"):
        average_of([[1.0], [1.0, 2.0]])


# ---- two gloo ranks through Lightning ----

STEPS = 6


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Every rank's file of one 2-rank fit, and the teacher folder."""
    from carv.testing.teachers import build_tiny_sd_teacher

    from .ddp_run import fit

    root = tmp_path_factory.mktemp("ddp")
    folder = build_tiny_sd_teacher(root / "sd", seed=0)
    (root / "out").mkdir()
    return fit(folder, root / "out", STEPS), folder


def replayed_pmf(folder, draws_per_rank: list[list]) -> torch.Tensor:
    """The proposal a single process learns from the draws of these ranks, step by step in rank order."""
    from carv.diffusion.teacher import load_teacher
    from carv.score_distillation import ScoreDistillation

    from .ddp_run import GUIDANCE

    sampler = ScoreDistillation(load_teacher(folder), GUIDANCE).sampler
    for parts in zip(*draws_per_rank, strict=True):
        sampler.update(torch.cat([t for t, _ in parts]), torch.cat([sq for _, sq in parts]))
    return sampler.proposal_pmf()


def replayed_k(ranks: list[dict]) -> list[int]:
    """auto's K history of a single process fed the average of these ranks' probes and phase clocks."""
    from .ddp_run import OPTIONS

    controller = AutoKController(OPTIONS)
    probes = iter([average_of(list(parts)) for parts in zip(*[r["local"]["probes"] for r in ranks], strict=True)])
    for step in range(STEPS):
        (renders, k), _ = controller.configuration_for_step(step, lambda renders, draws, at, curve: next(probes))
        controller.observe_step(average_of([r["local"]["phases"][step] for r in ranks]), renders, k)
    return [(entry["renders"], entry["k"]) for entry in controller.history]


def test_ddp_ranks_see_different_draws_and_stay_in_step(ddp_run):
    (rank0, rank1), _ = ddp_run
    assert len(rank0["local"]["draws"]) == len(rank1["local"]["draws"]) > STEPS  # training steps and probes
    assert not torch.equal(rank0["local"]["draws"][0][1], rank1["local"]["draws"][0][1])
    assert torch.equal(rank0["logits"], rank1["logits"])  # DDP's averaged gradients


def test_ddp_ranks_hold_the_identical_proposal_learnt_from_all_ranks(ddp_run):
    ranks, folder = ddp_run
    assert torch.equal(ranks[0]["pmf"], ranks[1]["pmf"])
    pooled = replayed_pmf(folder, [r["local"]["draws"] for r in ranks])
    torch.testing.assert_close(ranks[0]["pmf"], pooled, rtol=1e-12, atol=0.0)
    for rank in ranks:  # what a rank alone would have learnt differs
        alone = replayed_pmf(folder, [rank["local"]["draws"]])
        assert (alone - pooled).abs().max() > 1e-3 * pooled.max()


def test_ddp_ranks_choose_the_identical_k_from_pooled_components_and_costs(ddp_run):
    ranks, _ = ddp_run
    assert ranks[0]["k"] == ranks[1]["k"]
    assert ranks[0]["probes"] == ranks[1]["probes"]
    probe = ranks[0]["probes"][0].components
    assert probe.renders == 2 * ranks[0]["local"]["probes"][0].components.renders
    assert ranks[0]["k"] == replayed_k(ranks)
    alone = [replayed_k([rank]) for rank in ranks]
    assert all(k != ranks[0]["k"] for k in alone), (alone, ranks[0]["k"])
    assert all(math.isfinite(p.components.sigma_w2) for p in ranks[0]["probes"])
