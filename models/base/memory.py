"""Memory figures: how much a new allocation can still get, by device, and what this process holds.

`free_memory`: on CUDA the driver's free memory plus what PyTorch's allocator holds unused, never more than a cap
set with ``torch.cuda.set_per_process_memory_fraction`` allows; on the CPU the kernel's ``MemAvailable``.

`peak_rss` and `resident_memory`: the process's resident set size (its peak so far, and now), in bytes on every
platform, or None where the platform cannot tell. Every figure the pack and its benchmarks print comes from them,
so the units are right everywhere: ``getrusage``'s ``ru_maxrss`` counts KiB on Linux (and the BSDs) but bytes on
macOS, and Windows has no ``resource`` module at all (psutil's ``peak_wset`` there, when psutil is installed).
The platform modules are imported inside the functions: importing the pack must work on every platform.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch


def free_memory(device: torch.device) -> int | None:
    """Bytes a new allocation on ``device`` can still get (see the module docstring); None where unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        allocated = torch.cuda.memory_allocated(device)
        free += torch.cuda.memory_reserved(device) - allocated
        fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch >= 2.7
        cap = (fraction(device) if fraction else 1.0) * total - allocated
        return int(max(0, min(free, cap)))
    if device.type == "cpu":
        meminfo = Path("/proc/meminfo")
        if meminfo.is_file():
            for line in meminfo.read_text(encoding="ascii").splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    return None


def peak_rss() -> int | None:
    """The highest resident memory this process has had since it started (bytes); None where unknown.

    Linux and the BSDs: ``ru_maxrss`` (KiB) x 1024; macOS: ``ru_maxrss`` (bytes already); Windows: psutil's
    ``peak_wset`` (the peak working set), None without psutil. The peak cannot be reset: it covers everything the
    process did before, so a measurement of one task runs it in a fresh process."""
    if sys.platform == "win32":
        process = _psutil_process()
        return None if process is None else int(process.memory_info().peak_wset)
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def resident_memory() -> int | None:
    """This process's resident memory now (bytes); None where unknown.

    Linux: ``/proc/self/statm`` (cheap enough to sample every few milliseconds); elsewhere psutil's ``rss`` when
    psutil is installed."""
    statm = Path("/proc/self/statm")
    if statm.is_file():
        with open(statm, encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    process = _psutil_process()
    return None if process is None else int(process.memory_info().rss)


def _psutil_process():
    try:
        import psutil  # optional: not a dependency of the pack (ComfyUI installs it)
    except ImportError:
        return None
    return psutil.Process()
