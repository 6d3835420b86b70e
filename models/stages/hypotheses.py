"""Several plausible results per object: how samples are laid out, combined and paired between the stages.

Hidden parts are ambiguous, and a diffusion model can give several plausible answers. With
``SamplingOptions.samples = K`` every object gets K independent samples; sample ``k`` is drawn exactly as a
one-sample run with ``seed + k`` (`DiffusionVASPipeline.sample`), so any sample can be reproduced alone.

**Layout.** Stage results (`AmodalMasks`, `AmodalContent`) keep their tensors 4-D (5-D for colours) and carry
``samples``: a result field of ``R = N * K`` rows, object-major, row ``n * K + k`` = object ``n``'s sample ``k``.
With K = 1 that is ``[N, ...]``, exactly as without samples. ComfyUI batches flatten it once more, to ``N * K * T``
frames: object by object, within an object sample by sample, T frames each. `by_sample` gives the explicit
``[N, K, ...]`` view.

**Combining masks.** `consensus`: a pixel is in when more than half of the samples have it (a strict majority,
so with K = 2 both must agree), the visible mask always included. `agreement`: the fraction of samples covering
each pixel (0, 1/K, ..., 1): an uncertainty matte. With K = 1 the consensus is the sample and the agreement its
mask as 0/1.

**Pairing stage 2 with stage 1's hypotheses.** Completion has no meaningful average, so stage 2 completes
hypotheses one by one: given ``M`` amodal-mask hypotheses per object (``N * M`` rows, as stage 1 returns them
with ``samples = M``) and ``samples = K``, output sample ``s`` of object ``n`` completes hypothesis ``s`` (or the
only one when ``M = 1``) with ``seed + s``; ``M`` and ``K`` must agree when both exceed 1 (`completion_samples`).
The visible masks stay ``N`` rows: every hypothesis of an object shares its visible mask.
"""

from __future__ import annotations

import torch


def by_sample(rows: torch.Tensor, samples: int, name: str = "masks") -> torch.Tensor:
    """``[N * K, ...]`` object-major rows -> the view ``[N, K, ...]``."""
    if samples < 1 or rows.shape[0] % samples:
        raise ValueError(f"{name} has {rows.shape[0]} rows, not a multiple of samples={samples}; pass N * K rows "
                         "stacked object by object, then sample by sample.")
    return rows.view(rows.shape[0] // samples, samples, *rows.shape[1:])


def agreement(masks: torch.Tensor, samples: int) -> torch.Tensor:
    """Fraction of samples covering each pixel: ``[N * K, T, H, W]`` bool -> ``[N, T, H, W]`` float32 in 0..1."""
    votes = by_sample(masks.bool(), samples).sum(dim=1, dtype=torch.int32)
    return votes.float() / samples


def consensus(masks: torch.Tensor, samples: int, visible: torch.Tensor | None = None) -> torch.Tensor:
    """Majority vote: ``[N * K, T, H, W]`` bool -> ``[N, T, H, W]`` bool, on where more than half of the K
    samples are on (``2 * votes > K``), OR ``visible`` (``[N, T, H, W]``, the visible masks) when given."""
    votes = by_sample(masks.bool(), samples).sum(dim=1, dtype=torch.int32)
    combined = 2 * votes > samples
    if visible is not None:
        if tuple(visible.shape) != tuple(combined.shape):
            raise ValueError(f"visible masks {tuple(visible.shape)} must be [N, T, H, W] = {list(combined.shape)}, "
                             "one per object (not per sample).")
        combined |= visible.bool()
    return combined


def select(rows: torch.Tensor, objects: int, samples: int, index: int) -> torch.Tensor:
    """Sample ``index`` of every object from a ComfyUI-style batch ``[N * K * T, ...]`` -> ``[N * T, ...]``."""
    if not 0 <= index < samples:
        raise ValueError(f"index {index} is out of range for samples={samples}; use 0 .. {samples - 1}.")
    if objects < 1 or rows.shape[0] % (objects * samples):
        raise ValueError(f"The batch has {rows.shape[0]} frames, not a multiple of objects x samples = "
                         f"{objects} x {samples}; stack N x K x T frames object by object, then sample by sample.")
    frames = rows.shape[0] // (objects * samples)
    return rows.view(objects, samples, frames, *rows.shape[1:])[:, index].reshape(objects * frames, *rows.shape[1:])


def hypotheses_per_object(amodal_rows: int, objects: int) -> int:
    """``M``: how many amodal-mask hypotheses each of ``objects`` objects has in ``amodal_rows`` rows."""
    if amodal_rows % objects:
        raise ValueError(f"amodal_masks has {amodal_rows} sequences for {objects} object(s) of modal_masks; pass "
                         "one amodal mask sequence per object, or the same number of hypotheses for every object "
                         "(stage 1 with combine='all').")
    return amodal_rows // objects


def completion_samples(hypotheses: int, samples: int) -> int:
    """Samples per object that stage 2 draws for ``hypotheses`` mask hypotheses and ``samples`` requested."""
    if hypotheses > 1 and samples > 1 and hypotheses != samples:
        raise ValueError(f"amodal_masks has {hypotheses} hypotheses per object but samples={samples}: each "
                         f"hypothesis gets one completion, so set samples to 1 or {hypotheses}.")
    return max(hypotheses, samples)
