import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: these tensors are tiny, and on a shared CPU OpenMP threads mostly wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
