"""Condition videos kept compact and expanded a few frames at a time.

The sampler needs each condition as float32 ``[T, 3, h, w]`` frames in [-1, 1], but only a few frames at once:
CLIP embeds and the VAE encodes `frames` chunks of at most `ENCODE_CHUNK` frames, and after that the latents
(1/48 of the pixels) are all it keeps. A shot of minutes at 256x512 is gigabytes as float conditions and a
fraction of that as the uint8 / bool / one-channel stores the stages keep. A `ConditionVideo` holds such a
store and a function that expands one row's frames; `DiffusionVASPipeline.sample` accepts it wherever it
accepts a condition tensor, and a plain tensor is wrapped as one (`as_condition_video`).

Layout: ``R`` rows (objects, or object-major (object, hypothesis) pairs with ``hypotheses`` > 1, shaped like a
``[N, M, T, 3, h, w]`` tensor), each ``T`` frames of ``3 x h x w``.
"""

from __future__ import annotations

from typing import Callable

import torch

from .resize import ENCODE_CHUNK  # frames per CLIP / VAE-encoder batch

Expand = Callable[[int, slice], torch.Tensor]
"""``expand(row, frames)`` -> float32 ``[t, 3, h, w]`` in [-1, 1] on the CPU."""


class ConditionVideo:
    """A condition video of ``rows`` x ``frames`` frames of ``3 x height x width``, expanded on demand.

    Args:
        rows: number of rows R (objects, or objects x hypotheses).
        frames: frames per row T.
        size: ``(height, width)`` at the processing size.
        expand: ``expand(row, slice)`` -> float32 ``[t, 3, h, w]`` in [-1, 1] (see `Expand`).
        hypotheses: M > 1: the rows are object-major (object, hypothesis) pairs, one condition per sample, as a
            ``[N, M, T, 3, h, w]`` tensor is.
    """

    def __init__(self, rows: int, frames: int, size: tuple[int, int], expand: Expand, hypotheses: int = 1):
        if rows < 1 or frames < 1:
            raise ValueError(f"a condition video needs at least one row and one frame; got {rows} x {frames}.")
        if hypotheses < 1 or rows % hypotheses:
            raise ValueError(f"{rows} rows are not a whole number of objects with {hypotheses} hypotheses each.")
        self.rows, self.frames, self.size, self.expand = int(rows), int(frames), tuple(size), expand
        self.hypotheses = int(hypotheses)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the equivalent tensor: ``(N, T, 3, h, w)`` or ``(N, M, T, 3, h, w)``."""
        tail = (self.frames, 3, *self.size)
        if self.hypotheses > 1:
            return (self.rows // self.hypotheses, self.hypotheses, *tail)
        return (self.rows, *tail)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def row(self, index: int, frames: slice = slice(None)) -> torch.Tensor:
        """Row ``index``'s frames ``frames`` as float32 ``[t, 3, h, w]``, contiguous (the encoders' kernels, and so
        their last bits, depend on the memory layout: a channels-last expansion must not change the numbers)."""
        start, stop, _ = frames.indices(self.frames)
        return self.expand(index, slice(start, stop)).contiguous()

    def chunks(self, index: int, size: int = ENCODE_CHUNK):
        """Row ``index`` in order, ``size`` frames at a time: yields float32 ``[t, 3, h, w]``."""
        for start in range(0, self.frames, size):
            yield self.row(index, slice(start, min(start + size, self.frames)))

    def materialize(self) -> torch.Tensor:
        """The whole video as one float32 tensor of `shape` (for tests and small clips)."""
        out = torch.stack([self.row(r) for r in range(self.rows)])
        return out.view(self.shape)


def as_condition_video(cond, name: str) -> ConditionVideo:
    """A condition tensor ``[T, 3, h, w]``, ``[N, T, 3, h, w]`` or ``[N, M, T, 3, h, w]`` (float in [-1, 1]), or a
    `ConditionVideo` (returned as it is) -> a `ConditionVideo`. A 4-D tensor is one object."""
    if isinstance(cond, ConditionVideo):
        return cond
    if not torch.is_tensor(cond) or cond.ndim not in (4, 5, 6):
        shape = tuple(cond.shape) if torch.is_tensor(cond) else type(cond).__name__
        raise ValueError(f"{name} must be a [T, 3, h, w], [N, T, 3, h, w] or [N, K, T, 3, h, w] tensor; got {shape}.")
    if cond.shape[-3] != 3:
        raise ValueError(f"Conditions need 3 channels ([T, 3, h, w]); got {tuple(cond.shape)}.")
    hypotheses = cond.shape[1] if cond.ndim == 6 else 1
    rows = cond.reshape(-1, *cond.shape[-4:])

    def expand(row: int, frames: slice) -> torch.Tensor:
        return rows[row, frames].float()

    return ConditionVideo(rows.shape[0], rows.shape[1], tuple(rows.shape[-2:]), expand, hypotheses)
