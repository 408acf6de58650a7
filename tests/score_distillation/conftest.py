"""Tiny random-weight teachers, written once per session and loaded through from_pretrained."""

import pytest

from carv.diffusion.teacher import PromptEncoder, load_teacher
from carv.testing.teachers import build_tiny_if_teacher, build_tiny_sd_teacher


@pytest.fixture(scope="session")
def teacher_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {"sd": build_tiny_sd_teacher(root / "sd", seed=0), "if": build_tiny_if_teacher(root / "if", seed=0)}


@pytest.fixture(scope="session")
def prompt_embeddings(teacher_folders):
    """(cond [2, N, F], uncond [1, N, F]): two prompts and the empty negative prompt."""
    encode = PromptEncoder(teacher_folders["sd"])
    return encode(["a photo of a cat", "a photo of a dog"]), encode([""])


@pytest.fixture(params=["sd", "if"])
def teacher_kind(request):
    return request.param


@pytest.fixture
def teacher(teacher_folders, teacher_kind):
    return load_teacher(teacher_folders[teacher_kind])
