"""Clips as sequences read a few frames at a time: the stages' inputs, whatever holds them.

A stage needs the frames, each object's visible masks and the scene's depth at the input resolution, but never
more than a few frames of them at once. A sequence hands them over in order, part by part, and can be read again
(the stages read the visible masks once to build the model's conditions and once more to bring the results back
to the input size):

* `FrameSequence`: ``[t, H, W, 3]`` frames, uint8 (0..255) or float (0..1);
* `MaskSequence`: ``[t, H, W]`` bool masks of one object (``H, W`` may be the processing size for stage 2's
  amodal masks, as the reference feeds them);
* `DepthSequence`: ``[t, H, W]`` raw depth (any scale, any float or integer type).

``read(parts)`` takes consecutive increasing slices (usually `chunking.chunks`) and yields one tensor per slice,
so a file-backed sequence decodes each frame once per pass, in order. The tensor-backed sequences here serve
ComfyUI's IMAGE/MASK inputs and the Python API (views, no copies); `io.frame_source` and `io.mask_files` read
video files, image folders and mask folders lazily with the same interface, and `depth.stream` gives depth computed
as the frames are decoded.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Protocol

import torch
import torch.nn.functional as F

from .chunking import MaskFormat, all_finite


class Sequence(Protocol):
    """What every sequence offers: its frame count, its frame size ``(H, W)`` and ``read``."""

    count: int
    size: tuple[int, int]

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        """One tensor per slice of ``parts`` (consecutive, increasing), in order."""


class FrameSequence(Sequence, Protocol):
    """Frames ``[t, H, W, 3]``, uint8 or float 0..1."""


class MaskSequence(Sequence, Protocol):
    """One object's masks ``[t, H, W]`` bool."""


class DepthSequence(Sequence, Protocol):
    """Raw depth ``[t, H, W]`` (any scale; larger = nearer)."""


def check_parts(parts: Iterable[slice], count: int, what: str) -> Iterator[slice]:
    """``parts`` as they come, refused when one goes backwards or past the ``count`` frames of ``what``."""
    position = 0
    for part in parts:
        if part.start < position or part.stop > count or part.start >= part.stop:
            raise ValueError(f"{what}: parts must be consecutive slices within 0..{count}; got {part} after frame "
                             f"{position}.")
        position = part.stop
        yield part


class TensorFrames:
    """A ``[T, H, W, 3]`` tensor (uint8 or float 0..1) as a `FrameSequence`; parts are views."""

    def __init__(self, frames: torch.Tensor, name: str = "frames"):
        if not torch.is_tensor(frames) or frames.ndim != 4 or frames.shape[-1] != 3:
            shape = tuple(frames.shape) if torch.is_tensor(frames) else type(frames).__name__
            raise ValueError(f"{name} must be [T, H, W, 3] frames; got {shape}.")
        self.frames, self.name = frames, name
        self.count, self.size = frames.shape[0], tuple(frames.shape[1:3])

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        for part in check_parts(parts, self.count, self.name):
            yield self.frames[part]

    def check_finite(self) -> None:
        """One pass over the frames: NaN or infinity is refused, naming the input."""
        if not all_finite(self.frames):
            raise ValueError(f"{self.name} contains NaN or infinite values; check the node or file that made the "
                             "frames.")


class TensorMasks:
    """Object ``index`` of a ``[N, T, H, W]`` mask tensor (any mask format, read by a shared `MaskFormat`) as a
    `MaskSequence`: bool parts, read as the reference binarizes masks."""

    def __init__(self, masks: torch.Tensor, fmt: MaskFormat, index: int, name: str):
        self.masks, self.fmt, self.index, self.name = masks, fmt, index, name
        self.count, self.size = masks.shape[1], tuple(masks.shape[2:4])

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        for part in check_parts(parts, self.count, self.name):
            yield self.fmt.on(self.masks[self.index, part])


def tensor_masks(masks: torch.Tensor, name: str) -> list[TensorMasks]:
    """``[T, H, W]`` (one object) or ``[N, T, H, W]`` masks -> one `TensorMasks` per object, the format (bool,
    0/1, 0/255, float 0..1) decided once for the whole tensor and its values checked once."""
    if not torch.is_tensor(masks) or masks.ndim not in (3, 4):
        shape = tuple(masks.shape) if torch.is_tensor(masks) else type(masks).__name__
        raise ValueError(f"{name} must be [T, H, W] (one object) or [N, T, H, W] (N objects); got {shape}.")
    masks = masks if masks.ndim == 4 else masks.unsqueeze(0)
    fmt = MaskFormat(masks, name)
    return [TensorMasks(masks, fmt, i, f"{name}[{i}]" if masks.shape[0] > 1 else name) for i in range(masks.shape[0])]


class TensorDepth:
    """A ``[T, H, W]`` depth tensor (any scale) as a `DepthSequence`; parts are views."""

    def __init__(self, depth: torch.Tensor, name: str = "depth"):
        if not torch.is_tensor(depth) or depth.ndim != 3:
            shape = tuple(depth.shape) if torch.is_tensor(depth) else type(depth).__name__
            raise ValueError(f"{name} must be [T, H, W]; got {shape}.")
        self.depth, self.name = depth, name
        self.count, self.size = depth.shape[0], tuple(depth.shape[1:3])

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        for part in check_parts(parts, self.count, self.name):
            yield self.depth[part]


class ResizedDepth:
    """A depth tensor ``[T, h, w]`` (any scale) as a `DepthSequence` at another ``size`` ``(H, W)``: each part
    resized bilinearly (half-pixel centres, as ``F.interpolate(..., align_corners=False)`` on the whole clip) when
    it is read, so depth made at the processing size never exists at the input size for the whole clip."""

    def __init__(self, depth: torch.Tensor, size: tuple[int, int], name: str = "depth"):
        if not torch.is_tensor(depth) or depth.ndim != 3:
            shape = tuple(depth.shape) if torch.is_tensor(depth) else type(depth).__name__
            raise ValueError(f"{name} must be [T, h, w]; got {shape}.")
        self.depth, self.name = depth, name
        self.count, self.size = depth.shape[0], tuple(size)

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        for part in check_parts(parts, self.count, self.name):
            x = self.depth[part].float()[:, None]
            yield F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)[:, 0]


def check_same_frames(sequence: Sequence, count: int, size: tuple[int, int] | None, name: str,
                      reference: str) -> None:
    """Refuses a sequence whose frame count (and, given ``size``, frame size) differs from ``reference``'s."""
    if sequence.count != count or (size is not None and tuple(sequence.size) != tuple(size)):
        want = [count, *(size if size is not None else ("H", "W"))]
        raise ValueError(f"{name} has shape {(sequence.count, *sequence.size)}; it must match {reference}'s frames "
                         f"[T, H, W] = {want}. Resize it or select the same frames.")
