"""The tracker's native heap: fewer glibc malloc arenas, and freed pages handed back when a session ends.

The tracker's native allocations (decoded frames, crops, ONNX Runtime's tensors, OpenCV's buffers) come from
several threads: the event loop (Redis replies), the thread the pipeline runs in, and OpenCV's worker threads.
glibc gives each thread that meets contention an arena of its own (up to 8 per core) and frees a chunk into the
arena it came from; each arena keeps its own free, fragmented pages, so the resident set creeps up in steps long
after the working set has stopped growing. Measured in one process, 4 phantom sessions at a time (320x240 i420, the
pipeline in ``asyncio.to_thread`` as the worker runs it, 60 frames per session, sessions closed every round; Python's
own heap, by tracemalloc, flat at ~1.1 MiB, so nothing Python holds grows): with glibc's default arenas the RSS
went 276.5 -> 282.1 MiB over rounds 4-36, in steps, and 276.4 -> 277.6 MiB over rounds 5-25 in a second run; with
one arena it stayed at 268.8 MiB from round 6 on; with two arenas and a trim after every round, 264.4 -> 265.0 MiB
over rounds 5-25 (CPU 31.1 s against 34.1 s with the default, load 4-5: no cost seen). A 60-round run of each
(load 12-21): default 277.3 -> 282.1 MiB over rounds 10-50; two arenas, trim and one OpenCV thread (the tracker
process's setup, :func:`tracker.worker.setup_process`) 264.7 -> 264.9 MiB, CPU 60.1 s against 62.3 s.

:func:`limit_arenas` caps the arenas (``FEQA_TRACKER_MALLOC_ARENAS``) before any thread starts; :func:`trim` asks
glibc to return free pages to the system (``malloc_trim``), which the worker calls when a session is dropped, so
the memory a session's buffers took does not stay resident after it. Both do nothing on a C library other than
glibc (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import platform

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


@functools.cache  # find_library runs ldconfig: once per process, not at every session's end
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def limit_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` (0: leave glibc's default); True when the cap was set."""
    libc = _glibc()
    if arenas <= 0 or libc is None:
        return False
    ok = bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
    if not ok:
        log.warning("mallopt(M_ARENA_MAX, %d) failed; glibc's default arenas stay", arenas)
    return ok


def trim() -> bool:
    """Return free heap pages of every arena to the system; True when glibc released some."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
