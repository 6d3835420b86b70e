"""Between the input resolution and the processing size, object by object and a few frames at a time.

`run.predict_amodal_masks` and `run.complete_content` validate their inputs, call these to build the model's
conditions from native-resolution footage (in the object's `region.Box`: the frame, or a zoomed crop), sample,
and call them again to bring the results back to the input size. Nothing here holds a whole clip at input
resolution except the preallocated results: inputs are read in chunks of `chunking.CHUNK_FRAMES` frames, masks
stay bool, and resizes run on the model's device when it is a GPU.

In ``region="frame"`` with ``mask_upscale="reference"`` and ``keep_visible_pixels=False`` every condition and
result is the reference's, computed chunk by chunk with the same arithmetic (`conditions`).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from . import conditions as C
from .chunking import MaskFormat, all_finite, chunks, footprint
from .content_blend import colour_gains, compose_chunk
from .region import Box, frame_box, object_box, visible_extent
from .upscale import upscale_chunk

logger = logging.getLogger(__name__)


def object_boxes(modal: torch.Tensor, fmt: MaskFormat, size: tuple[int, int], region: str,
                 context: float) -> list[Box]:
    """One `Box` per object of ``modal`` ``[N, T, H, W]``: the frame, or (``region="object"``) the crop around the
    object's visible extent over the clip. An object never visible falls back to the frame (with a warning)."""
    frame = tuple(modal.shape[-2:])
    if region == "frame":
        return [frame_box(frame)] * modal.shape[0]
    boxes = []
    for index, obj in enumerate(modal):
        rows = torch.zeros(frame[0], dtype=torch.bool)
        cols = torch.zeros(frame[1], dtype=torch.bool)
        for part in chunks(obj.shape[0]):
            on = footprint(fmt.on(obj[part])).view(torch.uint8)
            rows |= on.amax(dim=1) > 0
            cols |= on.amax(dim=0) > 0
        extent = visible_extent(rows, cols)
        if extent is None:
            logger.warning("Diffusion-VAS: object %d is never visible; processing it on the whole frame.", index)
            boxes.append(frame_box(frame))
        else:
            boxes.append(object_box(extent, size, context))
    return boxes


def modal_conditions(modal: torch.Tensor, fmt: MaskFormat, boxes: list[Box], size) -> torch.Tensor:
    """``[N, T, 3, h, w]`` stage-1 condition A (also stage 2's visible mask), per object in its box."""
    out = []
    for obj, box in zip(modal, boxes):
        parts = [C.binary_mask_condition(box.crop(fmt.on(obj[part])), size) for part in chunks(obj.shape[0])]
        out.append(torch.cat(parts))
    return torch.stack(out)


def depth_conditions(depth: torch.Tensor, boxes: list[Box], size, device: torch.device) -> torch.Tensor:
    """``[N, T, 3, h, w]`` stage-1 condition B: depth normalized over the clip inside each box (the model sees the
    box as its whole frame), ``* 2 - 1``, bilinear to ``size``. Objects sharing a box share the tensor."""
    if not all_finite(depth):
        raise ValueError("depth contains NaN or infinite values; check the depth source.")
    cache: dict[Box, torch.Tensor] = {}
    for box in boxes:
        if box in cache:
            continue
        low, high = None, None
        for part in chunks(depth.shape[0]):
            part_low, part_high = torch.aminmax(box.crop(depth[part], pad="replicate").float())
            low = part_low if low is None else torch.minimum(low, part_low)
            high = part_high if high is None else torch.maximum(high, part_high)
        frames = torch.empty(depth.shape[0], 1, *size)
        buffer = None
        for i in range(depth.shape[0]):  # a frame at a time, in place: one frame-sized buffer, no temporaries
            values = box.crop(depth[i:i + 1], pad="replicate").to(device, torch.float32)
            if buffer is None:
                buffer = torch.empty(values.shape, dtype=torch.float32, device=device)
            # the reference's arithmetic: (d - min) / (max - min), * 2 - 1, then bilinear without antialias
            if high > low:
                torch.sub(values, low.to(device), out=buffer).div_((high - low).to(device))
            else:
                buffer.zero_()
            pixels = buffer.mul_(2).sub_(1).unsqueeze(1)
            if tuple(pixels.shape[-2:]) != tuple(size):
                pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=False)
            frames[i] = pixels[0]
        cache[box] = frames.repeat(1, 3, 1, 1)
    return torch.stack([cache[box] for box in boxes])


def stage1_results(frames: torch.Tensor, modal_conds: torch.Tensor, modal: torch.Tensor, fmt: MaskFormat,
                   boxes: list[Box], threshold: int, mask_upscale: str, device: torch.device):
    """Stage-1 frames ``[N, T, 3, h, w]`` -> ``(masks [N, T, H, W] bool, processed [N, T, h, w] bool,
    probability [N, T, H, W] float32)``; masks contain the visible mask at the input size."""
    n, t, height, width = modal.shape
    processed = torch.stack([C.frames_to_amodal(f, c, threshold) for f, c in zip(frames, modal_conds)])
    masks = torch.zeros(n, t, height, width, dtype=torch.bool)
    probability = torch.zeros(n, t, height, width, dtype=torch.float32)
    for i, box in enumerate(boxes):
        for part in chunks(t, frame_pixels=height * width):
            mask, prob = upscale_chunk(frames[i, part], processed[i, part], box.size, threshold, mask_upscale, device)
            box.paste(mask, masks[i, part])
            box.paste(prob, probability[i, part])
            masks[i, part] |= fmt.on(modal[i, part])
    return masks, processed, probability


class Stage2Inputs:
    """Stage-2 conditions per object (in its box) and what the results need again (footage at the processing
    size for the colour gains, the masks at the processing size)."""

    def __init__(self, rgb: torch.Tensor, modal: torch.Tensor, modal_fmt: MaskFormat, amodal: torch.Tensor,
                 amodal_fmt: MaskFormat, boxes: list[Box], size):
        t = modal.shape[1]
        self.modal_conds = modal_conditions(modal, modal_fmt, boxes, size)
        footage: dict[Box, torch.Tensor] = {}
        for box in boxes:
            if box not in footage:
                footage[box] = torch.cat([C.pil_resize(box.crop(rgb[part], spatial="channels_last"), size)
                                          for part in chunks(t)])
        self.footage = [footage[box] for box in boxes]  # [T, h, w, 3] uint8 per object
        frame = tuple(modal.shape[-2:])
        self.amodal_small = []
        for obj, box in zip(amodal, boxes):
            parts = []
            for part in chunks(t):
                on = amodal_fmt.on(obj[part])
                if tuple(on.shape[-2:]) != frame:  # given at the processing size (the reference's masks)
                    if box != frame_box(frame):
                        raise ValueError("amodal_masks must be at the input size for region='object'.")
                    parts.append(C.downsample_masks_nearest(on, size))
                else:
                    parts.append(C.downsample_masks_nearest(box.crop(on), size))
            self.amodal_small.append(torch.cat(parts))

    def conditions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rgb_conds, amodal_conds)``, each ``[N, T, 3, h, w]``."""
        rgb = torch.stack([_modal_rgb(f, c) for f, c in zip(self.footage, self.modal_conds)])
        amodal = torch.stack([C.amodal_condition(a) for a in self.amodal_small])
        return rgb, amodal


def _modal_rgb(footage_u8: torch.Tensor, modal_cond: torch.Tensor) -> torch.Tensor:
    """`conditions.modal_rgb_condition` from frames already resized to the processing size (same arithmetic)."""
    pixels = ((footage_u8.float().div(255) - 0.5) / 0.5).permute(0, 3, 1, 2)
    visible = (modal_cond > 0).float()
    return (((pixels + 1) / 2) * visible + (1 - visible)) * 2 - 1


def stage2_results(frames: torch.Tensor, inputs: Stage2Inputs, rgb: torch.Tensor, modal: torch.Tensor,
                   modal_fmt: MaskFormat, amodal: torch.Tensor, amodal_fmt: MaskFormat, boxes: list[Box],
                   keep_visible_pixels: bool, device: torch.device):
    """Stage-2 frames ``[N, T, 3, h, w]`` -> ``(rgb [N, T, H, W, 3] float32, processed [N, T, h, w, 3] uint8,
    alpha [N, T, H, W] bool)``. Outside an object's box the colour is white."""
    n, t, height, width = modal.shape
    processed = torch.stack([C.frames_to_uint8(f) for f in frames])
    out = torch.empty(n, t, height, width, 3, dtype=torch.float32)
    alpha = torch.empty(n, t, height, width, dtype=torch.bool)
    full = frame_box((height, width))
    for i, box in enumerate(boxes):
        gains = None
        if keep_visible_pixels:
            visible_small = inputs.modal_conds[i, :, 0] > 0
            gains = colour_gains(inputs.footage[i], processed[i], visible_small, inputs.amodal_small[i] & ~visible_small)
        for part in chunks(t, frame_pixels=height * width):
            visible = modal_fmt.on(modal[i, part])
            on = amodal_fmt.on(amodal[i, part])
            if tuple(on.shape[-2:]) != (height, width):
                on = C.resize_masks_nearest(on, (height, width))
            alpha[i, part] = on | visible
            render = _upsample_u8(processed[i, part], box.size, device)
            target = out[i, part]
            crop = target if box == full else torch.empty(*render.shape[:-1], 3)
            if keep_visible_pixels:
                compose_chunk(crop, render, box.crop(rgb[part], spatial="channels_last"), box.crop(visible),
                              box.crop(on), gains[part])
            else:
                crop.copy_(render).div_(255)
            if box != full:
                box.paste(crop, target.fill_(1.0), spatial="channels_last")
    return out, processed, alpha


def _upsample_u8(frames_u8: torch.Tensor, size, device: torch.device) -> torch.Tensor:
    """``[t, h, w, 3]`` uint8 -> ``[t, H, W, 3]`` uint8, bilinear (half-pixel centres, no antialias upward) like
    the reference's OpenCV INTER_LINEAR, on ``device``; returned on the CPU."""
    if tuple(frames_u8.shape[1:3]) == tuple(size):
        return frames_u8
    x = frames_u8.to(device).permute(0, 3, 1, 2)
    if device.type == "cpu":  # PyTorch's fast uint8 path wants channels-last
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        x = x.float()
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    y = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)
    if y.dtype != torch.uint8:
        y = y.round_().clamp_(0, 255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).cpu()
