"""Stage-2 training pairs: occlude a complete object with other objects' mask tracks (reference §3.2).

The authors make content-completion pairs from objects whose colours are known everywhere: they paste the full
(amodal) mask tracks of other objects over the object's visible mask, frame by frame and without moving them
(each occluder keeps its own motion), until the clip's mean visible/amodal IoU falls below 0.7 or 5 occluders
were pasted. Pixels under a pasted occluder leave the visible mask; the condition shows the visible part on
white and the target is the whole object on white.

Differences from the authors' loop, each deliberate:

* the target itself is never drawn as its own occluder (theirs may draw it and hide it completely);
* the IoU is checked before each paste, so a clip already below the threshold gets no occluder (theirs always
  pastes one); frames where the object is absent (empty amodal mask) are left out of the mean instead of making
  it NaN (which kept their loop pasting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch


@dataclass
class Occlusion:
    """Result of `synthesize_occlusion`.

    modal: ``[T, h, w]`` bool, the visible mask after pasting.
    occluders: keys of the pasted tracks, in order.
    iou: mean visible/amodal IoU after pasting (NaN when the object is in no frame).
    """

    modal: torch.Tensor
    occluders: list[str]
    iou: float


def mean_visible_iou(modal: torch.Tensor, amodal: torch.Tensor) -> float:
    """Mean over the frames with a non-empty amodal mask of ``|modal & amodal| / |modal | amodal|``; NaN if none."""
    present = amodal.flatten(1).any(1)
    if not present.any():
        return float("nan")
    inter = (modal & amodal).flatten(1).sum(1)[present].double()
    union = (modal | amodal).flatten(1).sum(1)[present].double()
    return float((inter / union).mean())


def synthesize_occlusion(modal: torch.Tensor, amodal: torch.Tensor, target: str, pool: Sequence[str],
                         load_mask: Callable[[str], torch.Tensor], rng: np.random.Generator,
                         threshold: float = 0.7, max_occluders: int = 5) -> Occlusion:
    """Pastes occluder tracks over ``modal`` until the mean visible/amodal IoU is below ``threshold``.

    Args:
        modal, amodal: ``[T, h, w]`` bool, the target's visible and full masks.
        target: the target track's key; never pasted over itself.
        pool: keys of candidate occluder tracks (the target's key may be among them; it is skipped).
        load_mask: key -> ``[T, h, w]`` bool full mask of that track (same ``T, h, w`` as ``modal``).
        rng: draws the occluders (uniformly, without replacement).
        threshold: stop once the mean IoU is below this (authors: 0.7).
        max_occluders: stop after this many pastes (authors: 5).
    """
    modal = modal.bool().clone()
    amodal = amodal.bool()
    candidates = [key for key in pool if key != target]
    order = rng.permutation(len(candidates)) if candidates else []
    pasted: list[str] = []
    iou = mean_visible_iou(modal, amodal)
    for k in order:
        if not iou >= threshold or len(pasted) >= max_occluders:  # NaN: the object is never there
            break
        key = candidates[int(k)]
        occluder = load_mask(key).bool()
        if occluder.shape != modal.shape:
            raise ValueError(f"Occluder track {key} has masks {tuple(occluder.shape)}; the target {target} has "
                             f"{tuple(modal.shape)} [T, h, w].")
        modal &= ~occluder
        pasted.append(key)
        iou = mean_visible_iou(modal, amodal)
    return Occlusion(modal=modal, occluders=pasted, iou=iou)


def on_white(rgb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[T, h, w, 3]`` colours 0..1 and ``[T, h, w]`` mask -> ``[T, 3, h, w]`` in [-1, 1], white outside the mask."""
    m = mask.float().unsqueeze(-1)
    return ((rgb.float() * m + (1 - m)) * 2 - 1).permute(0, 3, 1, 2).contiguous()
