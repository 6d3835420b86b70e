"""Lean host-side processing: clips at input resolution are handled a few frames at a time.

A 48-frame 1080p clip is 1.2 GB as float RGB; copying it whole (to float, to uint8, to a mask format) several
times costs more time and memory than the model's own work on a GPU. The stage functions therefore check each
input once (`MaskFormat`), keep masks as bool until the result, and walk the clip in chunks of `CHUNK_FRAMES`
frames, on the model's device when it is a GPU (`work_device`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


MASK_THRESHOLD_U8 = 128  # reference: a mask pixel is "on" when its 8-bit value is > 128
CHUNK_FRAMES = 8  # frames per host-side chunk (the VAE's default decode_chunk_size)
CHUNK_PIXELS = 1 << 22  # and at most this many input pixels per chunk (float RGB temporaries ~50 MB each)


def chunks(frames: int, size: int = CHUNK_FRAMES, frame_pixels: int | None = None) -> list[slice]:
    """``[0, frames)`` in slices of at most ``size`` frames, and (given ``frame_pixels = H * W``) at most
    `CHUNK_PIXELS` pixels, so the temporaries of one chunk stay small at 1080p (2 frames) and 4K (1 frame)."""
    if frame_pixels:
        size = max(1, min(size, CHUNK_PIXELS // frame_pixels))
    return [slice(i, min(i + size, frames)) for i in range(0, frames, size)]


def all_finite(x: torch.Tensor) -> bool:
    """True when ``x`` has no NaN or infinity: one summing pass (no bool copy of a whole clip); only when the sum
    is not finite (a NaN, an infinity, or finite values overflowing it) the exact element check decides."""
    if not x.is_floating_point() or x.numel() == 0:
        return True
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def footprint(masks: torch.Tensor) -> torch.Tensor:
    """``[..., H, W]`` -> ``[H, W]`` bool: True where any frame (any leading index) is on: True for bool masks,
    above 0 for numbers. Reduced with ``amax`` (bool viewed as uint8): PyTorch's bool ``any`` over a 1080p
    frame is more than ten times slower."""
    x = masks.view(torch.uint8) if masks.dtype == torch.bool else masks
    if x.dim() > 2:
        x = x.amax(dim=tuple(range(x.dim() - 2)))
    return x > 0


def to_float(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 (a new tensor unless it is float32 already); bool masks through a uint8 view: PyTorch's
    bool -> float conversion is not vectorized on the CPU (a 1080p clip's masks: four times slower)."""
    if x.dtype == torch.bool:
        x = x.view(torch.uint8)
    return x.to(torch.float32)


def bounding_box(mask: torch.Tensor, margin: int = 0) -> tuple[slice, slice] | None:
    """``(rows, cols)`` slices of the smallest box holding every on pixel (True, or above 0) of ``mask``
    ``[..., H, W]`` in any frame, grown by ``margin`` pixels and clipped to the frame; None when none is on.
    One pass over the mask (`footprint`), then over its ``[H, W]`` footprint."""
    on = footprint(mask).view(torch.uint8)
    rows = on.amax(dim=1).nonzero()
    if not rows.numel():
        return None
    cols = on.amax(dim=0).nonzero()
    h, w = on.shape
    return (slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, h)),
            slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, w)))


def dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """The maximum over the ``(2 radius + 1)`` square around each pixel of ``masks`` ``[..., H, W]`` (outside
    the frame does not count): bool masks -> bool (grown by ``radius``), numbers -> float32.

    Separable, so never ``(2 radius + 1)^2`` comparisons per pixel: bool masks by window sums of a cumulative
    sum per axis (a constant cost whatever the radius: growing a 1080p mask by 16 px costs what growing it by 1
    does), numbers by two 1-D max pools."""
    if radius <= 0:
        return masks if masks.dtype == torch.bool else masks.float()
    if masks.dtype == torch.bool:
        counts = masks.to(torch.int32)
        for dim in (-1, -2):
            n = counts.shape[dim]
            total = F.pad(counts.cumsum(dim), (1, 0) if dim == -1 else (0, 0, 1, 0))  # a leading 0 per line
            index = torch.arange(n, device=masks.device)
            counts = (total.index_select(dim, (index + radius + 1).clamp_(max=n))
                      - total.index_select(dim, (index - radius).clamp_(min=0)))
        return counts > 0
    flat = masks.reshape(-1, 1, *masks.shape[-2:]).float()
    k = 2 * radius + 1
    flat = F.max_pool2d(flat, (1, k), stride=1, padding=(0, radius))
    flat = F.max_pool2d(flat, (k, 1), stride=1, padding=(radius, 0))
    return flat.reshape(masks.shape)


def work_device(pipe) -> torch.device:
    """Where resizes run: the sampler's GPU when it has one, else the CPU (any object with ``sample`` works)."""
    device = torch.device(getattr(pipe, "device", "cpu"))
    return device if device.type != "cpu" else torch.device("cpu")


class MaskFormat:
    """How a mask tensor's values read as on/off, decided once for the whole tensor (the reference's rule).

    bool as is; uint8 whose values are all 0/1 as 0/1, other uint8 on above 128; floats (0..1) on when the
    rounded 8-bit value is above 128. `on` converts a chunk exactly as ``binarize_masks(x) > 0`` converts the
    whole tensor.
    """

    def __init__(self, masks: torch.Tensor, name: str):
        if not torch.is_tensor(masks):
            raise ValueError(f"{name} must be a tensor, got {type(masks).__name__}.")
        self.dtype = masks.dtype
        self.zero_one = masks.dtype == torch.uint8 and bool(masks.max() <= 1) if masks.numel() else True
        if not all_finite(masks):
            raise ValueError(f"{name} contains NaN or infinite values; check the node or file that made it.")

    def on(self, chunk: torch.Tensor) -> torch.Tensor:
        """A chunk of the checked tensor -> bool, the same shape."""
        if chunk.dtype == torch.bool:
            return chunk
        if chunk.dtype == torch.uint8:
            return chunk > 0 if self.zero_one else chunk > MASK_THRESHOLD_U8
        if chunk.dtype == torch.float32:  # one comparison, no float temporary (a 1080p clip's masks: 3x faster)
            return chunk >= FLOAT32_ON
        # round(clamp(x, 0, 1) * 255) > 128  <=>  x * 255 > 128.5 (128.5 rounds half to even, down to 128)
        return chunk.float() * 255 > MASK_THRESHOLD_U8 + 0.5


def _float32_on() -> float:
    """The smallest float32 ``x`` with ``x * 255 > 128.5`` in float32 arithmetic. The product is monotone in
    ``x``, so ``x >= FLOAT32_ON`` decides exactly what ``x * 255 > 128.5`` decides, for every float32 (tested)."""
    x = torch.tensor((MASK_THRESHOLD_U8 + 0.5) / 255, dtype=torch.float32)
    down, up = torch.tensor(float("-inf")), torch.tensor(float("inf"))
    while bool(x * 255 > MASK_THRESHOLD_U8 + 0.5):
        x = torch.nextafter(x, down)
    while not bool(x * 255 > MASK_THRESHOLD_U8 + 0.5):
        x = torch.nextafter(x, up)
    return float(x)


FLOAT32_ON = _float32_on()
