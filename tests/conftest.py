"""Settings shared by every test folder."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: test tensors are tiny, and on a shared 2-core CPU OpenMP threads mostly wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
