"""Stage 1 between the input resolution and the processing size, a few frames at a time.

`prepare` reads the visible masks and the depth (sequences, `sequences`) once or twice each and keeps only what
the model needs at the processing size: the visible masks PIL-resized (uint8), condition B per crop box (float32,
one channel) and the boxes (`region`). `AmodalStageOutput.collect` receives the decoded frames piece by piece and
keeps the channel mean (the soft map) and the reference's processing-size masks. `AmodalStageOutput.finish` reads the
visible masks again and brings each part of the clip back to the input size (`upscale`, pasted into the frame
for ``region="object"``, OR the visible mask). Memory: the processing-size stores plus a few frames at input size,
whatever the clip's length.

In ``region="frame"`` with ``mask_upscale="reference"`` every condition and result is the reference's, computed
with the arithmetic of `conditions`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from . import conditions as C
from ..base.chunking import all_finite, chunks, footprint
from .region import Box, frame_box, object_box, visible_extent
from ..base.sequences import DepthSequence, MaskSequence
from .upscale import upscale_chunk
from ..base.packed_masks import PackedMasks
from ..engine.condition_video import ConditionVideo

logger = logging.getLogger(__name__)


# -- where each object is processed ------------------------------------------------------------------------------

def object_boxes(modal: list[MaskSequence], size: tuple[int, int], region: str, context: float) -> list[Box]:
    """One `Box` per object: the frame, or (``region="object"``) the crop around the object's visible extent over
    the clip (one pass over its masks). An object never visible falls back to the frame (with a warning)."""
    frame = tuple(modal[0].size)
    if region == "frame":
        return [frame_box(frame)] * len(modal)
    boxes = []
    for index, obj in enumerate(modal):
        rows = torch.zeros(frame[0], dtype=torch.bool)
        cols = torch.zeros(frame[1], dtype=torch.bool)
        for on in obj.read(chunks(obj.count)):
            on = footprint(on).view(torch.uint8)
            rows |= on.amax(dim=1) > 0
            cols |= on.amax(dim=0) > 0
        extent = visible_extent(rows, cols)
        if extent is None:
            logger.warning("Diffusion-VAS: object %d is never visible; processing it on the whole frame.", index)
            boxes.append(frame_box(frame))
        else:
            boxes.append(object_box(extent, size, context))
    return boxes


# -- conditions ----------------------------------------------------------------------------------------------------

def modal_store(modal: list[MaskSequence], boxes: list[Box], size: tuple[int, int]) -> torch.Tensor:
    """``[N, T, h, w]`` uint8: each object's visible masks in its box, PIL bilinear to ``size`` (the reference's
    condition A before ``/ 255 * 2 - 1``; also stage 2's visible mask)."""
    out = torch.empty(len(modal), modal[0].count, *size, dtype=torch.uint8)
    for i, (obj, box) in enumerate(zip(modal, boxes)):
        parts = chunks(obj.count)
        for part, on in zip(parts, obj.read(parts)):
            out[i, part] = C.pil_resize(box.crop(on), size)
    return out


def modal_pixels(store: torch.Tensor) -> torch.Tensor:
    """uint8 ``[t, h, w]`` from `modal_store` -> condition A ``[t, 3, h, w]`` in [-1, 1] (the reference's values)."""
    return C._to_unit_range(store).unsqueeze(1).repeat(1, 3, 1, 1)


def depth_store(depth: DepthSequence, boxes: list[Box], size: tuple[int, int],
                device: torch.device) -> tuple[torch.Tensor, list[int]]:
    """Condition B per distinct box: ``([B, T, h, w] float32 in [-1, 1], object -> row)``.

    Depth normalized over the clip inside each box (the model sees the box as its whole frame), ``* 2 - 1``,
    bilinear to ``size`` without antialiasing, a frame at a time in place, in two passes over ``depth``: the
    minimum and maximum per box (a `NormalizedDepth` gets its own clip statistics from the same pass), then the
    conditions. Objects sharing a box share a row."""
    distinct = list(dict.fromkeys(boxes))
    count = depth.count
    normalized = isinstance(depth, NormalizedDepth)
    source = depth.raw if normalized else depth
    low: dict[Box, torch.Tensor] = {}
    high: dict[Box, torch.Tensor] = {}
    clip_low = clip_high = None
    for part in source.read(chunks(count)):
        if not all_finite(part):
            raise ValueError(f"{getattr(source, 'name', 'depth')} contains NaN or infinite values; check the depth "
                             "source.")
        if normalized:
            part_low, part_high = torch.aminmax(part.float())
            clip_low = part_low if clip_low is None else torch.minimum(clip_low, part_low)
            clip_high = part_high if clip_high is None else torch.maximum(clip_high, part_high)
        for box in distinct:
            part_low, part_high = torch.aminmax(box.crop(part, pad="replicate").float())
            low[box] = part_low if box not in low else torch.minimum(low[box], part_low)
            high[box] = part_high if box not in high else torch.maximum(high[box], part_high)
    if normalized:
        depth.set_range(clip_low, clip_high)
        # min and max commute with the normalization: x -> (x - low) / (high - low) is monotone in float32 too
        low = {box: depth.normalize(value) for box, value in low.items()}
        high = {box: depth.normalize(value) for box, value in high.items()}

    out = torch.empty(len(distinct), count, *size)
    buffers: dict[Box, torch.Tensor] = {}
    parts = chunks(count)
    for part, frames in zip(parts, depth.read(parts)):
        for j, box in enumerate(distinct):
            lo, hi = low[box].to(device), high[box].to(device)
            for i in range(frames.shape[0]):  # a frame at a time, in place: one frame-sized buffer per box
                values = box.crop(frames[i:i + 1], pad="replicate").to(device, torch.float32)
                buffer = buffers.get(box)
                if buffer is None or buffer.shape != values.shape:
                    buffer = buffers[box] = torch.empty(values.shape, dtype=torch.float32, device=device)
                # the reference's arithmetic: (d - min) / (max - min), * 2 - 1, then bilinear without antialias
                if hi > lo:
                    torch.sub(values, lo, out=buffer).div_(hi - lo)
                else:
                    buffer.zero_()
                pixels = buffer.mul_(2).sub_(1).unsqueeze(1)
                if tuple(pixels.shape[-2:]) != tuple(size):
                    pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=False)
                out[j, part.start + i] = pixels[0, 0].cpu()
    return out, [distinct.index(box) for box in boxes]


class NormalizedDepth:
    """A `DepthSequence` min-max normalized to 0..1 over the whole clip (`depth.estimator.normalize_depth`'s
    ``clip`` mode, the same arithmetic), read part by part. Its range comes from one pass over ``raw`` (or from
    `depth_store`, which reads it in its own first pass)."""

    def __init__(self, raw: DepthSequence, name: str = "depth"):
        self.raw, self.name = raw, name
        self.count, self.size = raw.count, raw.size
        self.low = self.high = None

    def set_range(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.low, self.high = low.float(), high.float()

    def _range(self) -> None:
        low = high = None
        for part in self.raw.read(chunks(self.count)):
            part = part.float()
            if not all_finite(part):
                raise ValueError(f"{self.name} contains NaN or infinite values; check the depth source.")
            part_low, part_high = torch.aminmax(part)
            low = part_low if low is None else torch.minimum(low, part_low)
            high = part_high if high is None else torch.maximum(high, part_high)
        self.set_range(low, high)

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        """``(values - low) / (high - low)`` (all zeros for a constant clip), in float32."""
        values = values.float()
        if self.high > self.low:
            return (values - self.low) / (self.high - self.low)
        return torch.zeros_like(values)

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        if self.low is None:
            self._range()
        for part in self.raw.read(parts):
            yield self.normalize(part)


@dataclass
class AmodalStageConditions:
    """What stage 1's model needs, at the processing size.

    boxes: per object, where it is processed. modal: ``[N, T, h, w]`` uint8 (`modal_store`). depth: ``[B, T, h, w]``
    float32 condition B per distinct box, ``depth_rows[n]`` the row of object ``n``.
    """

    boxes: list[Box]
    modal: torch.Tensor
    depth: torch.Tensor
    depth_rows: list[int]
    size: tuple[int, int] = field(init=False)

    def __post_init__(self):
        self.size = tuple(self.modal.shape[-2:])

    @property
    def objects(self) -> int:
        return self.modal.shape[0]

    @property
    def frames(self) -> int:
        return self.modal.shape[1]

    def videos(self, objects: list[int] | None = None) -> tuple[ConditionVideo, ConditionVideo]:
        """The sampler's two conditions for ``objects`` (default all), expanded a few frames at a time."""
        rows = list(range(self.objects)) if objects is None else list(objects)

        def modal(row: int, frames: slice) -> torch.Tensor:
            return modal_pixels(self.modal[rows[row], frames])

        def depth(row: int, frames: slice) -> torch.Tensor:
            return self.depth[self.depth_rows[rows[row]], frames].unsqueeze(1).repeat(1, 3, 1, 1)

        return (ConditionVideo(len(rows), self.frames, self.size, modal),
                ConditionVideo(len(rows), self.frames, self.size, depth))


def prepare(modal: list[MaskSequence], depth: DepthSequence, size: tuple[int, int], region: str, context: float,
            device: torch.device) -> AmodalStageConditions:
    """Reads the visible masks (``region="object"``: twice) and the depth (twice) into `AmodalStageConditions`."""
    boxes = object_boxes(modal, size, region, context)
    stored, rows = depth_store(depth, boxes, size, device)
    return AmodalStageConditions(boxes, modal_store(modal, boxes, size), stored, rows)


# -- results -------------------------------------------------------------------------------------------------------

@dataclass
class AmodalStageOutput:
    """Stage 1's model output at the processing size, and the way back to the input size.

    soft: ``[R, T, h, w]`` float32, the decoded frames' channel mean (0..1). processed: ``[R, T, h, w]`` bool, the
    reference's masks (uint8 R + G + B > ``threshold``, OR the visible mask). Rows are object-major object-samples:
    row ``r`` = object ``r // samples``'s sample ``r % samples``. boxes: per object.
    """

    soft: torch.Tensor
    processed: torch.Tensor
    boxes: list[Box]
    samples: int
    threshold: int
    mask_upscale: str
    # per row, the input-size masks `finish` gave with ``keep``, packed: stage 2 reads them again
    # (`mask_sequence`) instead of upscaling a second time (about 30 ms a 1080p frame)
    kept: dict = field(default_factory=dict, repr=False)

    @classmethod
    def empty(cls, conditions: AmodalStageConditions, samples: int, threshold: int, mask_upscale: str,
              objects: list[int] | None = None) -> "AmodalStageOutput":
        """Zeroed stores for the samples of ``objects`` (default all), filled by `collect`."""
        objects = list(range(conditions.objects)) if objects is None else list(objects)
        rows, t, size = len(objects) * samples, conditions.frames, conditions.size
        return cls(torch.zeros(rows, t, *size), torch.zeros(rows, t, *size, dtype=torch.bool),
                   [conditions.boxes[n] for n in objects], samples, threshold, mask_upscale)

    def collector(self, modal: torch.Tensor):
        """``on_decoded(row, frames, pixels)`` for the sampler; ``modal`` is the uint8 `modal_store` of this
        output's objects (``[N, T, h, w]``)."""
        def collect(row: int, frames: slice, pixels: torch.Tensor) -> None:
            cond = modal_pixels(modal[row // self.samples, frames])
            self.soft[row, frames] = pixels.mean(dim=1)
            self.processed[row, frames] = C.frames_to_amodal(pixels, cond, self.threshold)
        return collect

    def finish(self, modal: list[MaskSequence], parts: list[slice], device: torch.device,
               probability: bool = True, keep: bool = False
               ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor | None]]:
        """The input-size results part by part: ``(part, masks [R, t, H, W] bool, probability [R, t, H, W]
        float32 or None)``; masks contain the visible masks (``modal``, one sequence per object, read once).
        ``keep``: the masks are also kept packed (`kept`), for `mask_sequence` to read back."""
        k = self.samples
        height, width = modal[0].size
        frame = frame_box((height, width))
        cropped = any(box != frame for box in self.boxes)  # outside a crop the results are 0: start from zeros
        new = torch.zeros if cropped else torch.empty
        readers = [obj.read(parts) for obj in modal]
        for part in parts:
            visible = [next(reader) for reader in readers]
            t = part.stop - part.start
            masks = new(self.soft.shape[0], t, height, width, dtype=torch.bool)
            prob = new(self.soft.shape[0], t, height, width) if probability else None
            for row in range(self.soft.shape[0]):
                box = self.boxes[row // k]
                mask, soft_up = upscale_chunk(self.soft[row, part], self.processed[row, part], box.size,
                                              self.threshold, self.mask_upscale, device, probability)
                if box == frame:
                    torch.bitwise_or(mask, visible[row // k], out=masks[row])
                else:
                    box.paste(mask, masks[row])
                    masks[row] |= visible[row // k]
                if prob is not None:
                    box.paste(soft_up, prob[row])
                if keep:
                    self.kept.setdefault(row, PackedMasks((height, width))).put_part(part, masks[row])
            yield part, masks, prob

    def mask_sequence(self, row: int, modal: MaskSequence, device: torch.device) -> MaskSequence:
        """Row ``row``'s input-size masks as a `MaskSequence` (recomputed from the stores part by part: what
        `finish` gives), e.g. to feed stage 2 without keeping the masks of the whole clip."""
        return _Stage1Masks(self, row, modal, device)


class _Stage1Masks:
    def __init__(self, output: AmodalStageOutput, row: int, modal: MaskSequence, device: torch.device):
        self.output, self.row, self.modal, self.device = output, row, modal, device
        self.count, self.size = modal.count, modal.size
        self.name = f"stage-1 masks of row {row}"

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        parts = list(parts)
        kept = self.output.kept.get(self.row)
        if kept is not None and all(kept.holds(part) for part in parts):
            yield from (kept.get_part(part) for part in parts)
            return
        rows = slice(self.row, self.row + 1)
        single = AmodalStageOutput(self.output.soft[rows], self.output.processed[rows],
                                   [self.output.boxes[self.row // self.output.samples]], 1, self.output.threshold,
                                   self.output.mask_upscale)
        for _, masks, _ in single.finish([self.modal], parts, self.device, probability=False):
            yield masks[0]
