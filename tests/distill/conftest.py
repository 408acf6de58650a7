"""A tiny random SD-format teacher and the scores of a random fake-score head over it."""

import pytest
import torch

from carv.diffusion.teacher import PromptEncoder, load_teacher
from carv.distill.networks import FakeScoreHead, OneStepStudent, TeacherScores
from carv.testing.teachers import build_tiny_sd_teacher


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    return build_tiny_sd_teacher(tmp_path_factory.mktemp("distill") / "sd", seed=0)


@pytest.fixture(scope="session")
def embeddings(tiny_folder):
    encode = PromptEncoder(tiny_folder)
    return encode(["a photo of a cat", "a photo of a dog"]), encode([""])


@pytest.fixture
def scores(tiny_folder, embeddings):
    """TeacherScores whose head is not zero (so eps_fake differs from the teacher's unguided eps)."""
    teacher = load_teacher(tiny_folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        head = FakeScoreHead(teacher.noise_channels, embeddings[0].shape[-1], teacher.num_train_timesteps, width=8)
        torch.nn.init.normal_(head.net.conv_out.weight, std=0.05)
    return TeacherScores(teacher, head, embeddings[0], embeddings[1], guidance_scale=2.0)


@pytest.fixture
def student(scores):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        return OneStepStudent(scores.teacher.noise_channels, scores.cond.shape[-1], width=8)
