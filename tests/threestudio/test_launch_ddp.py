"""threestudio's launch.py --gpu 0,1 on the CPU: two gloo ranks under Lightning's DDP (the CPU shims run one CPU
process per selected GPU) train carv-toy-teacher with `auto` K and the adaptive proposal; both ranks end with the
identical proposal and K history, though threestudio seeds each rank differently (seed + rank).

About 90 s on a loaded 2-core CPU (two launch.py imports, one per rank).
"""

import torch

from .launch_runs import TOY, check_ok, make_workdir, run_launch, toy_overrides

AUTO_ADAPTIVE = [
    "system.guidance.noise_samples_per_render=auto",
    "system.guidance.auto_k_initial=2",
    "system.guidance.auto_every_n_steps=2",
    "system.guidance.auto_k_max=12",
    "system.guidance.auto_probe_size=3",
    "system.guidance.timestep_proposal=adaptive",
    "data.n_test_views=1",
]


def test_two_ranks_hold_the_same_proposal_and_k(threestudio_root, tmp_path):
    state = tmp_path / "ranks"
    state.mkdir()
    workdir = make_workdir(tmp_path / "work")
    overrides = toy_overrides("ddp", steps=4) + AUTO_ADAPTIVE
    check_ok(
        run_launch(
            threestudio_root, workdir, TOY, "train", overrides, gpus="0,1", env={"CARV_TEST_RANK_STATE": str(state)}
        )
    )
    rank0, rank1 = (torch.load(state / f"rank{rank}.pt", weights_only=False) for rank in (0, 1))
    assert len(rank0["k"]) == 4 and rank0["k"] == rank1["k"]
    assert torch.equal(rank0["pmf"], rank1["pmf"])
    assert not torch.allclose(rank0["pmf"], torch.full_like(rank0["pmf"], 1.0 / rank0["pmf"].numel()))  # it adapted
