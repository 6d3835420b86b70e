"""Stage 2 between the input resolution and the processing size, a few frames at a time.

`prepare` reads the frames once (the footage in each object's box, PIL-resized to uint8), the visible masks
(stage 1's `modal_store`) and the full masks of every hypothesis (nearest-sampled to bool at the processing size,
the exact inverse of stage 1's upsampling). `ContentStageOutput.collect` keeps the decoded frames as uint8 (the
reference's output). `ContentStageOutput.finish` reads the frames and masks again and gives each part of the clip at the
input size: the footage's own pixels where visible and the colour-matched render in the hidden part
(``keep_visible_pixels``, `content_blend`), or the render everywhere.

With ``keep_visible_pixels=False`` and ``region="frame"`` the result is the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from . import conditions as C
from ..base.chunking import chunks
from .content_blend import colour_gains, compose_chunk
from .region import Box, frame_box
from ..base.sequences import FrameSequence, MaskSequence
from .amodal_stage import modal_pixels, modal_store
from ..engine.condition_video import ConditionVideo


class FootageStore:
    """The frames in each distinct box, PIL bilinear to ``size``, filled from frames fed in order (so the decode
    pass that computes depth fills it too): `result` is ``([B, T, h, w, 3] uint8, object -> row)``."""

    def __init__(self, count: int, boxes: list[Box], size: tuple[int, int]):
        self.distinct = list(dict.fromkeys(boxes))
        self.rows = [self.distinct.index(box) for box in boxes]
        self.size, self.count, self.done = tuple(size), count, 0
        self.store = torch.empty(len(self.distinct), count, *size, 3, dtype=torch.uint8)

    def feed(self, rgb: torch.Tensor) -> None:
        """The next frames ``[t, H, W, 3]`` (uint8 or float 0..1)."""
        part = slice(self.done, self.done + rgb.shape[0])
        if part.stop > self.count:
            raise ValueError(f"footage: more than the {self.count} frames it was made for.")
        for j, box in enumerate(self.distinct):
            self.store[j, part] = C.pil_resize(box.crop(rgb, spatial="channels_last"), self.size)
        self.done = part.stop

    def result(self) -> tuple[torch.Tensor, list[int]]:
        if self.done != self.count:
            raise ValueError(f"footage: {self.done} frames were given for a clip of {self.count}.")
        return self.store, self.rows


def footage_store(frames: FrameSequence, boxes: list[Box], size: tuple[int, int]) -> tuple[torch.Tensor, list[int]]:
    """`FootageStore` of a `FrameSequence`, in one pass over it."""
    store = FootageStore(frames.count, boxes, size)
    for rgb in frames.read(chunks(frames.count)):
        store.feed(rgb)
    return store.result()


def amodal_store(amodal: list[MaskSequence], boxes: list[Box], size: tuple[int, int],
                 frame: tuple[int, int]) -> torch.Tensor:
    """``[N * M, T, h, w]`` bool: row ``r`` (object ``r // M``'s hypothesis ``r % M``, object-major) at the processing
    size, by `conditions.downsample_masks_nearest` (the exact inverse of stage 1's nearest upsampling) of its box;
    masks given at another size than the frame's are taken as processing-size masks (the reference's)."""
    if len(amodal) % len(boxes):
        raise ValueError(f"{len(amodal)} full-mask sequences for {len(boxes)} objects; give every object the same "
                         "number of hypotheses.")
    m = len(amodal) // len(boxes)
    out = torch.empty(len(amodal), amodal[0].count, *size, dtype=torch.bool)
    for r, obj in enumerate(amodal):
        box = boxes[r // m]
        parts = chunks(obj.count)
        for part, on in zip(parts, obj.read(parts)):
            if tuple(on.shape[-2:]) != tuple(frame):  # given at the processing size (the reference's masks)
                if box != frame_box(frame):
                    raise ValueError("amodal_masks must be at the input size for region='object'.")
                out[r, part] = C.downsample_masks_nearest(on, size)
            else:
                out[r, part] = C.downsample_masks_nearest(box.crop(on), size)
    return out


def modal_rgb(footage_u8: torch.Tensor, modal_u8: torch.Tensor) -> torch.Tensor:
    """Condition A ``[t, 3, h, w]``: the frames at the processing size where the object is visible, white elsewhere
    (`conditions.modal_rgb_condition`'s arithmetic, from the stores)."""
    pixels = ((footage_u8.float().div(255) - 0.5) / 0.5).permute(0, 3, 1, 2)
    visible = (modal_pixels(modal_u8) > 0).float()
    return (((pixels + 1) / 2) * visible + (1 - visible)) * 2 - 1


@dataclass
class ContentStageConditions:
    """What stage 2's model needs, at the processing size.

    boxes: per object. modal: ``[N, T, h, w]`` uint8 (stage 1's `modal_store`). footage: ``[B, T, h, w, 3]`` uint8
    per distinct box, ``footage_rows[n]`` the row of object ``n``. amodal: ``[N * M, T, h, w]`` bool, hypothesis
    ``m`` of object ``n`` at row ``n * M + m`` (M = 1: one mask sequence per object).
    """

    boxes: list[Box]
    modal: torch.Tensor
    footage: torch.Tensor
    footage_rows: list[int]
    amodal: torch.Tensor

    @property
    def objects(self) -> int:
        return self.modal.shape[0]

    @property
    def hypotheses(self) -> int:
        return self.amodal.shape[0] // self.objects

    @property
    def frames(self) -> int:
        return self.modal.shape[1]

    def footage_of(self, n: int) -> torch.Tensor:
        return self.footage[self.footage_rows[n]]

    def amodal_of(self, n: int, m: int) -> torch.Tensor:
        return self.amodal[n * self.hypotheses + m]

    def videos(self, objects: list[int] | None = None) -> tuple[ConditionVideo, ConditionVideo]:
        """The sampler's two conditions for ``objects`` (default all): rows object-major (object, hypothesis),
        one condition per sample when there are several hypotheses."""
        objects = list(range(self.objects)) if objects is None else list(objects)
        m = self.hypotheses
        size = tuple(self.modal.shape[-2:])

        def rgb(row: int, frames: slice) -> torch.Tensor:
            n = objects[row // m]
            return modal_rgb(self.footage_of(n)[frames], self.modal[n, frames])

        def amodal(row: int, frames: slice) -> torch.Tensor:
            return C.amodal_condition(self.amodal_of(objects[row // m], row % m)[frames])

        rows = len(objects) * m
        return (ConditionVideo(rows, self.frames, size, rgb, hypotheses=m),
                ConditionVideo(rows, self.frames, size, amodal, hypotheses=m))


def prepare(frames: FrameSequence, modal: list[MaskSequence], amodal: list[MaskSequence], boxes: list[Box],
            size: tuple[int, int]) -> ContentStageConditions:
    """Reads the frames, the visible masks and every hypothesis's full masks once into `ContentStageConditions`."""
    footage, rows = footage_store(frames, boxes, size)
    return ContentStageConditions(boxes, modal_store(modal, boxes, size), footage, rows,
                                  amodal_store(amodal, boxes, size, tuple(modal[0].size)))


@dataclass
class ContentStageOutput:
    """Stage 2's model output at the processing size: ``processed`` ``[R, T, h, w, 3]`` uint8, row ``r`` = object
    ``r // samples``'s sample ``r % samples`` (sample ``k`` completes hypothesis ``k`` when there are several)."""

    processed: torch.Tensor
    samples: int

    @classmethod
    def empty(cls, conditions: ContentStageConditions, samples: int, objects: int | None = None
              ) -> "ContentStageOutput":
        n = conditions.objects if objects is None else objects
        return cls(torch.zeros(n * samples, conditions.frames, *conditions.modal.shape[-2:], 3, dtype=torch.uint8),
                   samples)

    def collector(self):
        """``on_decoded(row, frames, pixels)`` for the sampler."""
        def collect(row: int, frames: slice, pixels: torch.Tensor) -> None:
            self.processed[row, frames] = C.frames_to_uint8(pixels)
        return collect

    def finish(self, conditions: ContentStageConditions, frames: FrameSequence, modal: list[MaskSequence],
               amodal: list[MaskSequence], parts: list[slice], keep_visible_pixels: bool,
               device: torch.device, into=None) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """The input-size results part by part: ``(part, rgb [R, t, H, W, 3] float32 0..1, alpha [R, t, H, W]
        bool)``; ``alpha`` is the object's full shape (full mask OR visible mask). Reads ``frames``, ``modal``
        (one sequence per object) and ``amodal`` (rows as in `ContentStageConditions`) once each.

        ``into(part)`` may give the ``(rgb, alpha)`` tensors to fill (views of whole-clip results, or buffers the
        consumer reuses once it has read a part): a fresh 1080p part is 50 MB, and on a fresh allocation the page
        faults cost several passes over it. Its ``rgb`` may be uint8 (0..255, rounded; e.g. the RGB of an RGBA
        buffer a file is written from): a float copy is then never made. By default every part is new float32."""
        k, m = self.samples, conditions.hypotheses
        height, width = modal[0].size
        full = frame_box((height, width))
        gains = [None] * self.processed.shape[0]
        if keep_visible_pixels:
            for row in range(self.processed.shape[0]):
                obj, hyp = row // k, (row % k if m > 1 else 0)
                visible_small = modal_pixels(conditions.modal[obj])[:, 0] > 0
                hidden_small = conditions.amodal_of(obj, hyp) & ~visible_small
                gains[row] = colour_gains(conditions.footage_of(obj), self.processed[row], visible_small,
                                          hidden_small)
        frame_reader = frames.read(parts)
        modal_readers = [obj.read(parts) for obj in modal]
        amodal_readers = [obj.read(parts) for obj in amodal]
        for part in parts:
            rgb = next(frame_reader)
            visible = [next(reader) for reader in modal_readers]
            on = []
            for reader in amodal_readers:
                mask = next(reader)
                if tuple(mask.shape[-2:]) != (height, width):
                    mask = C.resize_masks_nearest(mask, (height, width))
                on.append(mask)
            t = part.stop - part.start
            if into is not None:
                out, alpha = into(part)
            else:
                out = torch.empty(self.processed.shape[0], t, height, width, 3, dtype=torch.float32)
                alpha = torch.empty(self.processed.shape[0], t, height, width, dtype=torch.bool)
            for row in range(self.processed.shape[0]):
                obj, hyp = row // k, (row % k if m > 1 else 0)
                box, seen, shape = conditions.boxes[obj], visible[obj], on[obj * m + hyp]
                torch.bitwise_or(shape, seen, out=alpha[row])
                render = upsample_u8(self.processed[row, part], box.size, device)
                target = out[row]
                crop = target if box == full else torch.empty(*render.shape[:-1], 3, dtype=target.dtype)
                if keep_visible_pixels:
                    compose_chunk(crop, render, box.crop(rgb, spatial="channels_last"), box.crop(seen),
                                  box.crop(shape), gains[row][part])
                elif crop.dtype == torch.uint8:
                    crop.copy_(render)
                else:
                    crop.copy_(render).div_(255)
                if box != full:
                    box.paste(crop, target.fill_(255 if target.dtype == torch.uint8 else 1.0),
                              spatial="channels_last")
            yield part, out, alpha


def upsample_u8(frames_u8: torch.Tensor, size, device: torch.device) -> torch.Tensor:
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
