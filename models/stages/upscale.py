"""Stage-1 output back at the input size: the amodal mask and its soft probability map.

The decoded stage-1 frame is a grey picture of the mask; its channel mean (0..1) is the soft map, and a pixel is
in the mask when the mean exceeds ``threshold / 765`` (the reference: uint8 R + G + B > 600).

* ``mask_upscale="smooth"`` (default): the soft map is upsampled bilinearly to the input size and thresholded
  there, so edges follow the model's sub-pixel boundary instead of 4-8 px staircases at 1080p/4K.
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


def upscale_chunk(frames: torch.Tensor, processed: torch.Tensor, size: tuple[int, int], threshold: int,
                  mode: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A chunk of stage-1 output at the target size.

    Args:
        frames: ``[t, 3, h, w]`` decoded frames, float 0..1 (processing size).
        processed: ``[t, h, w]`` bool, the reference's processing-size masks (`conditions.frames_to_amodal`).
        size: target ``(H, W)`` (the input size, or a crop's size in ``region="object"``).
        threshold: the R + G + B threshold on 0..765.
        mode: ``smooth`` or ``reference``.
        device: where to resize (the model's GPU, or the CPU).

    Returns:
        ``(mask [t, H, W] bool, probability [t, H, W] float32 0..1)``, on the CPU.
    """
    soft = soft_map(frames.to(device, torch.float32))
    if tuple(soft.shape[-2:]) == tuple(size):
        probability = soft.clamp(0, 1)
    else:
        shrink = size[0] < soft.shape[-2] or size[1] < soft.shape[-1]
        probability = F.interpolate(soft[:, None], size=size, mode="bilinear", align_corners=False,
                                    antialias=shrink)[:, 0].clamp_(0, 1)
    if mode == "smooth":
        mask = probability > threshold / (3 * 255)
    else:
        mask = C.resize_masks_nearest(processed.to(device), size)
    return mask.cpu(), probability.cpu()
