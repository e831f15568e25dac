"""tracker.heap: the malloc arena cap holds, and trimming hands freed pages back (glibc only)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tracker import heap

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)

# Threads that each allocate through malloc, then glibc's own per-arena report (malloc_stats, on stderr).
_ARENAS = """
import ctypes, ctypes.util, sys, threading
from tracker import heap
print(heap.limit_arenas(int(sys.argv[1])))
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
start = threading.Barrier(6)
def work():
    start.wait()
    blocks = [libc.malloc(4096) for _ in range(2000)]
    for b in blocks:
        libc.free(b)
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.malloc_stats()
"""


ROOT = str(Path(__file__).resolve().parents[2])


def _python(code: str, arg: int) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (process-wide settings stay out of the test process)."""
    return subprocess.run([sys.executable, "-c", code, str(arg)], capture_output=True, text=True, timeout=60,
                          check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip


def _arenas(cap: int) -> tuple[str, int]:
    done = _python(_ARENAS, cap)
    return done.stdout.strip(), done.stderr.count("Arena ")


def test_arena_cap_holds_for_new_threads() -> None:
    capped, n_capped = _arenas(2)
    default, n_default = _arenas(0)
    assert capped == "True" and default == "False"  # 0 leaves glibc's default alone
    assert 1 <= n_capped <= 2
    assert n_default > 2  # without the cap the same threads get arenas of their own (the test can tell)


def test_trim_returns_freed_pages() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    proc = psutil.Process()
    blocks = [libc.malloc(8192) for _ in range(12000)]  # ~94 MiB of heap (below the mmap threshold)
    for b in blocks:
        ctypes.memset(b, 1, 8192)  # touched: resident
    keep = blocks[-1]  # one live block at the top: free() alone cannot shrink the heap
    for b in blocks[:-1]:
        libc.free(b)
    before = proc.memory_info().rss
    assert heap.trim()
    after = proc.memory_info().rss
    libc.free(keep)
    assert before - after > 50 * 2**20


_SETUP = """
import sys, cv2
from tracker.settings import TrackerSettings
from tracker.worker import setup_process
before = cv2.getNumThreads()
setup_process(TrackerSettings(intra_op_threads=int(sys.argv[1])))
print(before, cv2.getNumThreads())
"""


@pytest.mark.parametrize("threads", [0, 1])
def test_setup_process_sizes_opencv_like_the_models(threads: int) -> None:
    done = _python(_SETUP, threads)
    before, after = (int(v) for v in done.stdout.split())
    assert after == (before if threads == 0 else threads)
