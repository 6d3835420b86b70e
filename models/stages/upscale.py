"""Stage-1 output back at the input size: the amodal mask and its soft probability map.

The decoded stage-1 frame is a grey picture of the mask; its channel mean (0..1) is the soft map, and a pixel is
in the mask when the mean exceeds ``threshold / 765`` (the reference: uint8 R + G + B > 600).

* ``mask_upscale="smooth"`` (default): the soft map is upsampled bilinearly to the input size and thresholded
  there, so edges follow the model's sub-pixel boundary instead of 4-8 px staircases at 1080p/4K. Before the
  upsampling the map goes through a monotone, piecewise-linear remap that sends the threshold to 0.5
  (``s / (2 t)`` below it, ``0.5 + (s - t) / (2 (1 - t))`` above): every processing pixel is in or out exactly as
  in the reference, and between an inside and an outside pixel the edge sits where the remapped values cross
  halfway. Thresholding the plain map at 600/765 would instead pull every edge about 0.3 processing pixels
  (1.2 px at 1080p) into the object, since the threshold is far above the middle of the 0..1 edge ramp.
* ``mask_upscale="reference"``: the authors' path, thresholded at the processing size and upsampled by nearest
  neighbour, bit-exact with OpenCV ``cv2.resize(..., INTER_NEAREST)`` (`conditions.resize_masks_nearest`).

Both OR the visible mask at the input size afterwards (the caller does), so every visible pixel is kept. The
probability output is the same bilinear soft map in both modes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import conditions as C

MASK_UPSCALES = ("smooth", "reference")
DEFAULT_MASK_UPSCALE = "smooth"


def check_mask_upscale(mode: str) -> str:
    if mode not in MASK_UPSCALES:
        raise ValueError(f"mask_upscale must be one of {MASK_UPSCALES}, got {mode!r}.")
    return mode


def soft_map(frames: torch.Tensor) -> torch.Tensor:
    """Decoded frames ``[t, 3, h, w]`` float 0..1 -> the channel mean ``[t, h, w]``."""
    return frames.mean(dim=1)


def upscale_chunk(soft: torch.Tensor, processed: torch.Tensor, size: tuple[int, int], threshold: int,
                  mode: str, device: torch.device, probability: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A chunk of stage-1 output at the target size.

    Args:
        soft: ``[t, h, w]`` the decoded frames' channel mean, float 0..1 (processing size; `soft_map`).
        processed: ``[t, h, w]`` bool, the reference's processing-size masks (`conditions.frames_to_amodal`).
        size: target ``(H, W)`` (the input size, or a crop's size in ``region="object"``).
        threshold: the R + G + B threshold on 0..765.
        mode: ``smooth`` or ``reference``.
        device: where to resize (the model's GPU, or the CPU).
        probability: also return the soft map at the target size (skipped when nobody reads it).

    Returns:
        ``(mask [t, H, W] bool, probability [t, H, W] float32 0..1 or None)``, on the CPU.
    """
    soft = soft.to(device, torch.float32)
    prob = _upsample(soft, size).clamp_(0, 1).cpu() if probability else None
    if mode == "smooth":
        mask = _upsample(_centred(soft, threshold / (3 * 255)), size) > 0.5
    else:
        mask = C.resize_masks_nearest(processed.to(device), size)
    return mask.cpu(), prob


def _centred(soft: torch.Tensor, level: float) -> torch.Tensor:
    """Monotone remap of 0..1 values sending ``level`` to 0.5 (``x > level`` iff the result is > 0.5)."""
    level = min(max(level, 1e-6), 1 - 1e-6)
    return torch.where(soft <= level, soft / (2 * level), 0.5 + (soft - level) / (2 * (1 - level)))


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[t, h, w]`` -> ``[t, H, W]`` bilinear (half-pixel centres; antialiased only when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x.clone()
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x[:, None], size=size, mode="bilinear", align_corners=False, antialias=shrink)[:, 0]
