"""Keep freed host memory in the process, so that CPU steps do not pay page faults for the same tensors every step.

glibc's malloc serves a large block (above its mmap threshold, 128 KiB growing to at most 32 MiB) with a fresh mmap
and returns it to the OS when freed, and trims the top of its heap past 128 KiB. A CPU training step frees and
re-allocates the same large activations every step, and so pays a page fault and the kernel's zeroing of every
page again each time: measured on the mid-size teacher (scripts/bench_guidance.py), the UNet evaluations inside a
step that held a render's graph ran 15% slower than the same evaluations alone, and a whole R = 1, K = 8 step 11%
slower. With mmap off and trimming off, freed blocks are reused and both match. The process's resident memory
then stays at its peak. CUDA's caching allocator does the same on a GPU already. No-op off glibc.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc malloc.h: bytes of free memory at the heap top before it is returned to the OS
M_MMAP_MAX = -4  # glibc malloc.h: most blocks served by mmap at once (0: none, every block from the heap)
NEVER_TRIM = 2**31 - 1  # mallopt takes an int


def glibc():
    """The process's C library if it is glibc (it has gnu_get_libc_version), else None."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def keep_freed_memory() -> bool:
    """Stop malloc from returning freed blocks to the OS (no mmap'd blocks, no trimming); True where it applied."""
    libc = glibc()
    if libc is None:
        return False
    return libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
