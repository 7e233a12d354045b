"""Keep freed memory in the process: glibc malloc set so that ``free`` never hands memory back
to the kernel (:func:`keep_freed_memory`).

Every round a peer (and a simulation worker hosting many) allocates and frees model-sized
blocks: fetched update bodies, decoded and rebuilt models, the audit's buffers, a fit's
temporaries. By default glibc serves blocks above its mmap threshold (dynamic, at most 32 MiB)
with their own ``mmap`` and ``munmap``s them on ``free``, trims the heap's free top, and gives
each thread its own arena whose freed heaps are unmapped too; so the next round faults the same
amount of memory in again, page by page. On a VM whose host takes free guest memory back (free
page reporting: Firecracker here), each such first touch costs ~7 s of kernel time per GB
(docs/results/model-size.md). With one arena, no ``mmap`` for blocks and no trimming, freed
blocks stay in the process and are reused: memory the process has touched is touched again
for free. The cost is that a process's resident size no longer drops after a peak (it stays at
its high-water mark; freed blocks are reused, not returned).

glibc only: elsewhere (musl, macOS) :func:`keep_freed_memory` does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8

#: the largest trim threshold mallopt takes (an int): no heap top this size is ever left free
NEVER_TRIM = 2**31 - 1


def keep_freed_memory() -> bool:
    """Set this process's glibc malloc to keep what it frees (module docstring): one arena
    (``M_ARENA_MAX`` 1), no ``mmap`` per block (``M_MMAP_MAX`` 0: blocks come from the heap,
    whatever their size) and no heap trimming (``M_TRIM_THRESHOLD`` at its maximum). Call it
    at process start, before other threads allocate (a thread keeps the arena it already has).
    Returns whether all three settings took (False where there is no glibc ``mallopt``)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error
    return all([mallopt(M_ARENA_MAX, 1) == 1, mallopt(M_MMAP_MAX, 0) == 1, mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1])
