"""The C allocator tuned for a long run on the CPU (glibc only; the command line calls it, importing does not).

A shot allocates and frees the same large buffers part after part (frames, masks, the models' temporaries). By
default glibc gives memory above a few MB back to the kernel when it is freed, and the next allocation of that
size faults every page in again: on the virtual machines this project is built on, that alone cost as much as the
models' forward passes of a 1080p shot (measured with `benchmarks/benchmark_shot.py`: 41 s of forward passes and
29 s of host work before, 25 s and 24 s after). Keeping freed memory in the process (a high trim threshold and top
pad, the largest heap threshold glibc allows) reuses those pages. The peak memory is unchanged: pages are kept,
never added. ComfyUI and other hosts keep their own allocator settings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -2, -3, -4  # glibc's mallopt parameters
HEAP_THRESHOLD = 32 << 20  # allocations up to this size come from the heap (glibc's maximum on 64-bit)
KEEP_FREED = 2**31 - 1  # freed memory at the top of the heap is kept up to this much (mallopt takes an int)
TOP_PAD = 64 << 20  # the heap grows in steps of this much


def tune_for_long_runs(keep_everything: bool = False) -> bool:
    """Sets the allocator's thresholds; returns whether it could (False where the C library is not glibc).

    ``keep_everything``: allocations of any size come from the heap and freed memory stays in the process (no
    ``mmap`` at all). Then a 1.2 GB output (48 float frames at 1080p) reuses pages the process already has. On
    this project's virtual machines freed pages go back to the host, and touching them again cost 40 to 70 ms per
    1080p frame of output, more than the work itself; the resolution benchmark uses this to measure the work. The
    peak can grow by fragmentation, so the command line does not."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = [mallopt(M_MMAP_THRESHOLD, HEAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD, KEEP_FREED),
            mallopt(M_TOP_PAD, TOP_PAD)]
    if keep_everything:  # no mmap, and never trim (-1 is the largest size_t to glibc)
        done += [mallopt(M_MMAP_MAX, 0), mallopt(M_TRIM_THRESHOLD, -1)]
    if not all(done):
        logger.debug("mallopt refused some settings: %s", done)
    return all(done)
