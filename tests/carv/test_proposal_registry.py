"""A proposal is one registered class with its declared options; a user table is reachable from configs."""

import pytest
import torch

import carv
from carv.pipeline.config import guidance_options, load_config
from carv.score_distillation import ScoreDistillation, ScoreDistillationConfig
from carv.timesteps import PROPOSAL_REGISTRY, TimestepProposal, register_proposal

from ..score_distillation.helpers import AnalyticTeacher


@pytest.fixture
def linear_proposal():
    """A new proposal written as one class: q proportional to p * (1 + slope * t / T)."""

    @register_proposal("test-linear")
    class LinearProposal(TimestepProposal):
        name = "test-linear"
        parameters = ("gaussian_peak",)  # borrows an existing option as its slope

        def __init__(self, slope: float):
            self.slope = slope

        @classmethod
        def from_options(cls, name, *, alphas_cumprod, min_step, gaussian_peak=0.5):
            return cls(gaussian_peak)

        def mass(self, num_train_timesteps):
            return 1.0 + self.slope * torch.arange(num_train_timesteps, dtype=torch.float64) / num_train_timesteps

    yield LinearProposal
    del PROPOSAL_REGISTRY["test-linear"]


def test_a_registered_class_is_a_proposal_of_the_guidance_with_its_options(linear_proposal):
    config = ScoreDistillationConfig(timestep_proposal="test-linear", gaussian_peak=2.0, min_step_percent=0.0)
    sampler = ScoreDistillation(AnalyticTeacher(), config).sampler
    assert isinstance(sampler.proposal, linear_proposal) and sampler.proposal.slope == 2.0
    q = sampler.proposal_pmf()
    assert q[-1] / q[0] == pytest.approx((1 + 2.0 * sampler.max_step / 1000) / 1.0)


def test_every_shipped_proposal_is_registered_with_its_options():
    assert carv.PROPOSALS == ("uniform", "sds", "fantasia3d", "gaussian", "table", "adaptive")
    assert PROPOSAL_REGISTRY["gaussian"].parameters == ("gaussian_peak", "gaussian_width", "gaussian_floor")
    with pytest.raises(ValueError, match="unknown timestep proposal"):
        carv.make_timestep_sampler("nope", min_step=0, max_step=9)


def test_a_user_table_from_a_config_file(tmp_path):
    table = torch.linspace(1.0, 3.0, 961, dtype=torch.float64)  # one mass per timestep of [20, 980]
    path = tmp_path / "table.txt"
    path.write_text("\n".join(f"{x:.17g}" for x in table.tolist()))
    config = load_config(
        "cpu-carv",
        ["system.guidance.timestep_proposal=table", f"system.guidance.timestep_table={path}"],
        prompt="a red mug",
    )
    sampler = ScoreDistillation(AnalyticTeacher(), guidance_options(config)).sampler
    torch.testing.assert_close(sampler.proposal_pmf(), table / table.sum())
    with pytest.raises(ValueError, match="timestep_table"):
        ScoreDistillation(AnalyticTeacher(), ScoreDistillationConfig(timestep_proposal="table"))
