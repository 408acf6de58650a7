import pytest

from ..helpers import build_random_judge, build_toy_vocabulary_teacher


@pytest.fixture(scope="session")
def toy_teacher(tmp_path_factory):
    return build_toy_vocabulary_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="session")
def random_judge(tmp_path_factory):
    return build_random_judge(tmp_path_factory.mktemp("judge"))
