"""How much memory a new allocation can still get, by device.

On CUDA the driver's free memory plus what PyTorch's allocator holds unused, never more than a cap set with
``torch.cuda.set_per_process_memory_fraction`` allows; on the CPU the kernel's ``MemAvailable``.
"""

from __future__ import annotations

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
