"""Stage conditions from user data, and stage outputs back to user data, as the reference computes them.

Shapes: masks ``[T, H, W]`` (bool, uint8 0/255 or float 0..1), RGB ``[T, H, W, 3]`` (uint8 or float 0..1), depth
``[T, H, W]`` (any scale). Conditions are ``[T, 3, h, w]`` float32 in [-1, 1] at the processing size ``(h, w)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..base.chunking import MASK_THRESHOLD_U8
from ..base.threads import thread_map
from ..depth.estimator import normalize_depth

AMODAL_SUM_THRESHOLD = 600  # reference: decoded pixel is amodal when R + G + B (uint8) > 600


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Float 0..1 -> uint8 (rounded), bool -> 0/255, uint8 unchanged."""
    if frames.dtype == torch.uint8:
        return frames
    if frames.dtype == torch.bool:
        return frames.to(torch.uint8) * 255
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8)


def binarize_masks(masks: torch.Tensor) -> torch.Tensor:
    """``[T, H, W]`` any mask format -> uint8 0/255 (on when the 8-bit value is > 128).

    uint8 masks whose values are all 0 or 1 are 0/1 masks (0..1 values on a 0..255 scale would all be off).
    """
    if masks.dtype == torch.uint8 and masks.max() <= 1:
        masks = masks.bool()
    return (to_uint8(masks) > MASK_THRESHOLD_U8).to(torch.uint8) * 255


def pil_resize(frames: torch.Tensor, size: tuple[int, int], resample=Image.BILINEAR) -> torch.Tensor:
    """Resizes frames ``[T, H, W]`` or ``[T, H, W, 3]`` to ``size=(h, w)`` with PIL (uint8 result).

    PIL's bilinear filter widens with the scale factor (antialiasing) and rounds to uint8, as torchvision's
    ``Resize`` on PIL images does in the reference. Float (0..1) and bool frames are converted with `to_uint8` one
    frame at a time, so an HD clip is never copied whole; frames are resized in parallel on torch's threads
    (PIL releases the GIL while it resizes: about 2x on 2 cores at 1080p).
    """
    h, w = size
    if tuple(frames.shape[1:3]) == (h, w):
        return to_uint8(frames).clone()

    def one(frame: torch.Tensor) -> np.ndarray:
        return np.asarray(Image.fromarray(_frame_to_uint8(frame).numpy()).resize((w, h), resample=resample))

    return torch.from_numpy(np.stack(thread_map(one, frames)))


def _frame_to_uint8(frame: torch.Tensor, block: int = 1 << 18) -> torch.Tensor:
    """One frame ``[H, W(, C)]`` -> uint8 on the CPU with `to_uint8`'s arithmetic (clamp to 0..1, * 255, round
    half to even), in bands of rows of about ``block`` values through one small float32 buffer: at 1080p the four
    whole-frame temporaries of the plain expression cost more than PIL's resize. NumPy's ufuncs release the GIL,
    so frames convert in parallel on `pil_resize`'s threads (torch's do not scale there)."""
    frame = frame.cpu()
    if frame.dtype in (torch.uint8, torch.bool):
        return to_uint8(frame)
    source = frame.float().numpy()  # float32 as it is (a view); other float types converted, as to_uint8 does
    out = np.empty(source.shape, dtype=np.uint8)
    rows = max(1, block // max(1, source[0].size))
    buffer = np.empty((min(rows, source.shape[0]), *source.shape[1:]), dtype=np.float32)
    for top in range(0, source.shape[0], rows):
        part = buffer[:min(rows, source.shape[0] - top)]
        np.clip(source[top:top + rows], 0, 1, out=part)
        np.multiply(part, 255, out=part)
        np.rint(part, out=part)
        out[top:top + rows] = part
    return torch.from_numpy(out)


def _to_unit_range(frames_u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] the way ToTensor + Normalize(0.5, 0.5) does."""
    return (frames_u8.float().div(255) - 0.5) / 0.5


def modal_condition(modal_masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Stage-1 condition A: binarized masks, PIL bilinear to ``size``, in [-1, 1], 3 channels."""
    return binary_mask_condition(binarize_masks(modal_masks), size)


def binary_mask_condition(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`modal_condition` of masks already binarized: ``[T, H, W]`` bool (or uint8 0/255) -> ``[T, 3, h, w]``."""
    return _to_unit_range(pil_resize(masks, size)).unsqueeze(1).repeat(1, 3, 1, 1)


def depth_condition(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Stage-1 condition B: clip-normalized depth in [-1, 1], 3 channels, bilinear to ``size`` (no antialias)."""
    pixels = (normalize_depth(depth, "clip") * 2 - 1).unsqueeze(1).repeat(1, 3, 1, 1)
    if tuple(pixels.shape[-2:]) == tuple(size):
        return pixels
    return F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=False)


def mask_on(condition: torch.Tensor) -> torch.Tensor:
    """``[T, 3, h, w]`` mask condition -> ``[T, h, w]`` bool (reference: value > 0)."""
    return condition[:, 0] > 0


def modal_rgb_condition(rgb: torch.Tensor, modal_cond: torch.Tensor) -> torch.Tensor:
    """Stage-2 condition A: RGB (PIL bilinear to the processing size) where the object is visible, white elsewhere.

    Args:
        rgb: ``[T, H, W, 3]`` uint8 or float 0..1 frames at the input size.
        modal_cond: ``[T, 3, h, w]`` stage-1 condition A (from `modal_condition`).
    """
    size = tuple(modal_cond.shape[-2:])
    pixels = _to_unit_range(pil_resize(to_uint8(rgb), size)).permute(0, 3, 1, 2)
    visible = (modal_cond > 0).float()
    rgb01 = (pixels + 1) / 2
    return (rgb01 * visible + (1 - visible)) * 2 - 1


def amodal_condition(amodal_masks: torch.Tensor) -> torch.Tensor:
    """Stage-2 condition B: ``[T, h, w]`` bool -> +1 inside / -1 outside, ``[T, 3, h, w]``."""
    signed = torch.where(amodal_masks.bool(), 1.0, -1.0)
    return signed.unsqueeze(1).repeat(1, 3, 1, 1)


def frames_to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Decoded ``[T, 3, h, w]`` float 0..1 -> ``[T, h, w, 3]`` uint8, as the reference's PIL output."""
    return (frames.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)


def frames_to_amodal(frames: torch.Tensor, modal_cond: torch.Tensor,
                     threshold: int = AMODAL_SUM_THRESHOLD) -> torch.Tensor:
    """Stage-1 output -> amodal masks at the processing size: uint8 channel sum > threshold, OR the modal mask."""
    summed = frames_to_uint8(frames).sum(dim=-1, dtype=torch.int32)
    return (summed > threshold) | mask_on(modal_cond)


def _nearest_indices(n_in: int, n_out: int) -> torch.Tensor:
    """Source index of every output pixel, as OpenCV's ``cv2.resize(..., INTER_NEAREST)`` picks it.

    OpenCV computes the scale ``fx = dst / src`` and its inverse in double precision and takes
    ``min(floor(x * (1 / fx)), src - 1)`` for output pixel ``x`` (no half-pixel offset). The authors' demo saves
    its masks this way, so the reference mode must follow it exactly, ties included.
    """
    inverse = 1.0 / (n_out / n_in)  # float64, the same two roundings as OpenCV
    index = np.floor(np.arange(n_out, dtype=np.float64) * inverse).astype(np.int64)
    return torch.from_numpy(np.minimum(index, n_in - 1))


def resize_masks_nearest(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[..., h, w]`` -> ``[..., H, W]`` bool by nearest neighbour, bit-exact with OpenCV ``INTER_NEAREST``."""
    h, w = masks.shape[-2:]
    rows, cols = _nearest_indices(h, size[0]), _nearest_indices(w, size[1])
    return masks.bool()[..., rows, :][..., cols]


def _inverse_nearest_indices(n_big: int, n_small: int) -> torch.Tensor:
    """Rows (or columns) of a ``n_big`` axis that undo an OpenCV nearest upsampling from ``n_small``.

    For every source index ``j`` the first output pixel that `_nearest_indices` maps to ``j``: sampling there gives
    back the processing-size mask exactly, so stage-1 masks returned at the input size feed stage 2 as the
    reference's processing-size masks. Where the axis is not larger, it is plain OpenCV nearest sampling.
    """
    if n_big <= n_small:
        return _nearest_indices(n_big, n_small)
    forward = _nearest_indices(n_small, n_big).numpy()
    return torch.from_numpy(np.searchsorted(forward, np.arange(n_small), side="left"))


def downsample_masks_nearest(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[..., H, W]`` -> ``[..., h, w]`` bool, the exact inverse of `resize_masks_nearest` from ``(h, w)``."""
    h, w = masks.shape[-2:]
    rows, cols = _inverse_nearest_indices(h, size[0]), _inverse_nearest_indices(w, size[1])
    return masks.bool()[..., rows, :][..., cols]


def resize_frames_bilinear(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[T, h, w, C]`` uint8 or float -> ``[T, H, W, C]`` float 0..1, bilinear without antialias (OpenCV INTER_LINEAR)."""
    x = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
    if tuple(x.shape[1:3]) != tuple(size):
        x = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    return x.clamp(0, 1)
