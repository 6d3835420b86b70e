"""Host-side work spread over torch's threads: frame conversions and resizes (NumPy, PIL) and the clean plate's
sorts release the GIL, so on a 2-core machine two frames or bands go at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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
