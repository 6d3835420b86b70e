"""ComfyUI types <-> engine tensors: the one place that knows how MASK and IMAGE batches carry frames and objects.

ComfyUI has no object axis: several objects travel as one batch of ``N * T`` frames stacked object by object
(object 0's ``T`` frames, then object 1's, ...), ``T`` being the frame count of the clip. IMAGE is float32
``[B, H, W, C]`` in 0..1, MASK float32 ``[B, H, W]``.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..models import MaskFormat, all_finite, chunks, to_float
from ..models import ResizedDepth
from .bool_mask import as_mask, bool_values

logger = logging.getLogger(__name__)

# How several objects (and samples) travel in one batch: the words every input that takes them shows.
OBJECT_STACKING = (
    "Several objects: stack them object by object (object 0's frames, then object 1's, ...) into one batch of "
    "N x frames, e.g. with core Batch Masks or Batch Images."
)
SAMPLE_STACKING = ("N x K x frames, stacked object by object and within an object sample by sample (as the stage "
                   "nodes return them with samples = K).")


def _shape(value) -> object:
    return tuple(value.shape) if torch.is_tensor(value) else type(value).__name__


def unstack_objects(batch: torch.Tensor, frames: int, name: str, reference: str) -> torch.Tensor:
    """A ComfyUI batch ``[N * T, ...]`` (a MASK ``[H, W]`` is one frame) -> ``[N, T, ...]``, object by object;
    a `BoolMask` as its bool values (no float copy)."""
    bits = bool_values(batch)
    if bits is not None:
        batch = bits
    if batch.ndim == 2:
        batch = batch[None]
    if batch.shape[0] % frames:
        raise ValueError(
            f"{name} has {batch.shape[0]} frames, not a multiple of the {frames} frames of {reference}: give one "
            f"per frame of {reference} (same start, count and frame skip). {OBJECT_STACKING}"
        )
    return batch.reshape(batch.shape[0] // frames, frames, *batch.shape[1:])


def split_objects(masks: torch.Tensor, frames: int, name: str, reference: str) -> torch.Tensor:
    """A MASK input -> ``[N, T, H, W]`` bool, ``T = frames``; on as the reference binarizes (8-bit value > 128).

    Accepts ``[H, W]``, ``[B, H, W]``, ``[B, H, W, 1]``, ``[B, 1, H, W]`` (SAM2-style nodes) with ``B = N * frames``
    stacked object by object, ``[N, T, H, W]``, bool, uint8 (0..255, or 0/1) or float (0..1), or a `BoolMask`
    (its bool values, no copy). Kept as bool: a 1080p clip's masks stay a quarter of their float size through the
    stages.
    """
    if not torch.is_tensor(masks):
        raise ValueError(f"{name}: expected a MASK tensor, got {type(masks).__name__}.")
    bits = bool_values(masks)
    if bits is not None:
        masks = bits
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    elif masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim in (2, 3):
        masks = unstack_objects(masks, frames, name, reference)
    if masks.ndim != 4 or masks.shape[1] != frames:
        raise ValueError(f"{name}: expected a MASK [frames, height, width] ({frames} frames per object), got "
                         f"shape {tuple(masks.shape)}.")
    if masks.dtype == torch.bool:
        return masks
    fmt = MaskFormat(masks, name)  # the reference's on/off rule, decided (and checked for NaN) once
    out = torch.empty(masks.shape, dtype=torch.bool, device=masks.device)
    for part in chunks(masks.shape[1]):  # a few frames at a time: no float copy of a 1080p/4K clip
        out[:, part] = fmt.on(masks[:, part])
    return out


def frames_of(tensor, name: str, channels: int | None) -> torch.Tensor:
    """Checks an IMAGE input's shape ``[T, H, W, C]``; keeps the first ``channels`` channels (a view). Its values
    are checked (NaN, infinity) by the engine call the frames go to: one pass over a 1080p clip, not two."""
    if not torch.is_tensor(tensor) or tensor.ndim != 4:
        raise ValueError(f"{name}: expected an IMAGE [frames, height, width, channels], got {_shape(tensor)}.")
    if channels is not None and tensor.shape[-1] < channels:
        raise ValueError(f"{name}: expected {channels} colour channels, got {tensor.shape[-1]}.")
    return tensor if channels is None else tensor[..., :channels]


def check_same_size(masks: torch.Tensor, size: tuple[int, int], name: str, reference: str) -> None:
    if tuple(masks.shape[-2:]) != tuple(size):
        raise ValueError(
            f"{name} are {masks.shape[-1]}x{masks.shape[-2]} (WxH) but {reference} are {size[1]}x{size[0]}; resize "
            "the masks (Load Visible Masks: connect the video frames to reference_images) or the frames so they match."
        )


def warn_empty(masks: torch.Tensor, name: str) -> None:
    """Logs objects whose ``[N, T, H, W]`` bool masks are empty in every frame."""
    for index in torch.nonzero(masks.view(torch.uint8).flatten(1).amax(dim=1) == 0).flatten().tolist():
        logger.warning("Diffusion-VAS: %s of object %d are empty in every frame; its result will be empty or "
                       "meaningless.", name, index)


def stacked(tensor: torch.Tensor, compact: bool = False) -> torch.Tensor:
    """``[N, T, ...]`` -> ``[N * T, ...]`` float32 (ComfyUI's object-major stacking); ``compact``: bool masks as a
    `BoolMask`, float32 to ComfyUI held as bool (a quarter of the memory: long shots)."""
    if compact and tensor.dtype == torch.bool:
        return as_mask(tensor.flatten(0, 1))
    return to_float(tensor.flatten(0, 1)).contiguous()


def depth_image_frames(depth: torch.Tensor, size: tuple[int, int], node: str, lazy: bool = False):
    """A depth IMAGE ``[T, h, w, C]`` (or MASK ``[T, h, w]``) -> ``[T, H, W]``: channel mean, bilinear to ``size``.

    ``lazy``: depth of another size comes back as a `ResizedDepth` sequence, resized part by part when the stage
    reads it (the same values): depth made at the processing size never exists at a long shot's input size."""
    if torch.is_tensor(depth) and depth.ndim == 3:
        depth = depth[..., None]
    if not torch.is_tensor(depth) or depth.ndim != 4:
        raise ValueError(f"depth: expected an IMAGE [frames, height, width, channels], got {_shape(depth)}.")
    if not depth.is_floating_point():
        depth = depth.float()
    # Grey depth (equal channels, as every depth node writes it) is used as a view of its first channel; an
    # equality test is a fifth of the cost of measuring the channels' spread at 1080p. NaN never compares equal, so
    # it takes the other branch; finiteness is checked where the depth is used (stage 1 / the normalization).
    grey = all(torch.equal(depth[part, ..., 0], depth[part, ..., c])
               for part in chunks(depth.shape[0]) for c in range(1, depth.shape[-1]))
    if grey:
        depth = depth[..., 0]
    else:
        if not all_finite(depth):
            raise ValueError("depth contains NaN or infinite values; check the node that made it.")
        spread = max(float((depth[part].amax(dim=-1) - depth[part].amin(dim=-1)).max())
                     for part in chunks(depth.shape[0]))
        if spread > 0.05:
            logger.warning(
                "%s: the depth input is coloured (channels differ by up to %.2f); using the channel mean. "
                "Feed grayscale depth (near = bright), not a colour map.", node, spread,
            )
        depth = depth.mean(dim=-1)
    if tuple(depth.shape[1:]) != tuple(size):
        if lazy:
            logger.info("%s: depth of %s enlarged to %s part by part as it is read", node, tuple(depth.shape[1:]),
                        tuple(size))
            return ResizedDepth(depth, size, "depth")
        logger.info("%s: resizing depth from %s to %s", node, tuple(depth.shape[1:]), tuple(size))
        depth = F.interpolate(depth[:, None], size, mode="bilinear", align_corners=False)[:, 0]
    return depth
