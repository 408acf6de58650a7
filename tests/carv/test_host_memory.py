"""carv.host_memory: with freed memory kept, a steady cycle of large allocations stops page-faulting.

Counted by the kernel (minor page faults of the process), not timed; each case in a fresh interpreter, since the
setting is process-wide."""

import subprocess
import sys

import pytest

from carv import host_memory

CYCLE = """
import resource, sys, torch
from carv.host_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def cycle():  # 16, 48 and 64 MiB: above glibc's largest mmap threshold (32 MiB) and below it
    a, b, c = torch.ones(2**22), torch.ones(3 * 2**22), torch.ones(2**24)
    del a, b, c
for _ in range(10):  # the heap's free blocks settle into sizes the cycle reuses
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    cycle()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""
PAGES_PER_CYCLE = (2**22 + 3 * 2**22 + 2**24) * 4 // 4096


def faults_per_cycle(mode: str) -> float:
    result = subprocess.run([sys.executable, "-c", CYCLE, mode], capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


@pytest.mark.skipif(host_memory.glibc() is None, reason="glibc's malloc only")
def test_kept_memory_is_reused_without_page_faults():
    default, kept = faults_per_cycle("default"), faults_per_cycle("keep")
    assert default > PAGES_PER_CYCLE / 4  # glibc hands the 48 and 64 MiB blocks back and faults them in again
    assert kept < PAGES_PER_CYCLE / 100


def test_it_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert host_memory.glibc() is None
    assert host_memory.keep_freed_memory() is False


def test_cpu_runs_keep_freed_memory(monkeypatch):
    from omegaconf import OmegaConf

    from carv.pipeline import runner

    calls = []
    monkeypatch.setattr(runner, "keep_freed_memory", lambda: calls.append(True))
    monkeypatch.setattr(runner.torch, "set_num_threads", lambda n: calls.append(n))
    config = OmegaConf.create({"trainer": {"accelerator": "cpu", "cpu_threads": 1}})
    assert runner.prepare_device(config).type == "cpu"
    assert calls == [1, True]
