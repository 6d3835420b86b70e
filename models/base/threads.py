"""Host-side work spread over torch's threads: frame conversions and resizes (NumPy, PIL) and the clean plate's
sorts release the GIL, so on a 2-core machine two frames or bands go at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch


def thread_map(function, items) -> list:
    """``[function(item) for item in items]`` on torch's threads (for work that releases the GIL: NumPy, PIL),
    in order; a worker's exception is raised here.

    Workers run in the caller's grad and inference mode: those are per thread in PyTorch, and ComfyUI runs nodes
    under ``torch.inference_mode()``, whose tensors a worker outside it may not update in place."""
    items = list(items)
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def run(item):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return function(item)

    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=max(1, min(torch.get_num_threads(), len(items)))) as pool:
        return list(pool.map(run, items))


@contextmanager
def torch_threads(count: int):
    """Torch's intra-op threads set to ``count`` (never more than it has) inside the block, restored after.

    While the writer threads encode PNGs and MP4s, torch's own threads compete with them for the cores, and its
    OpenMP workers spin while they wait for work: on 2 cores a long shot's writing phase took 8 s more processor
    time, and 2 s more wall time per 120 frames at 1080p, with two torch threads than with one."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(count, before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
