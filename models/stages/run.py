"""The two Diffusion-VAS stages on user data: masks, depth and RGB at any size in, results at that size out.

Objects: a mask argument is ``[T, H, W]`` (one object) or ``[N, T, H, W]`` (N objects); results always carry the
object axis ``N``. Frames may be uint8 (0..255), bool or float (0..1). With ``options.samples = K`` every result
field holds ``N * K`` rows, object-major (row ``n * K + k`` = object ``n``'s sample ``k``, drawn with seed + k) and
the result's ``samples`` is K; K = 1 gives ``N`` rows as without samples (`hypotheses`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import conditions as C
from . import amodal_stage, content_stage, hypotheses
from ..base.chunking import chunks, work_device
from .content_blend import DEFAULT_KEEP_VISIBLE_PIXELS
from .region import DEFAULT_CONTEXT, DEFAULT_REGION, REGIONS
from ..base.sequences import FrameSequence, TensorDepth, TensorFrames, check_same_frames, tensor_masks
from .upscale import DEFAULT_MASK_UPSCALE, check_mask_upscale
from ..engine.options import DEFAULT_SIZE, SamplingOptions
from ..engine.pipeline import DiffusionVASPipeline, StepCallback

@dataclass
class AmodalMasks:
    """Stage-1 result.

    masks: ``[N, T, H, W]`` bool at the input size, always containing the input modal mask.
    masks_processed: ``[N, T, h, w]`` bool at the processing size (the reference's output).
    probability: ``[N, T, H, W]`` float 0..1, the decoded frames' mean intensity (for previews / soft masks); None
        when not asked for (``probability=False``: long shots keep `soft` instead).
    samples: K, samples per object. With K > 1 every field has ``N * K`` rows instead of ``N``, object-major;
        `hypotheses.consensus` / `hypotheses.agreement` combine them.
    soft: ``[N, T, h, w]`` float32, the same soft map at the processing size.
    """

    masks: torch.Tensor
    masks_processed: torch.Tensor
    probability: torch.Tensor | None
    samples: int = 1
    soft: torch.Tensor | None = None


@dataclass
class AmodalContent:
    """Stage-2 result.

    rgb: ``[N, T, H, W, 3]`` float 0..1 at the input size.
    rgb_processed: ``[N, T, h, w, 3]`` uint8 at the processing size (the reference's output).
    alpha: ``[N, T, H, W]`` bool, the objects' full shape at the input size (amodal mask with every visible
        pixel), to composite ``rgb``.
    samples: K, samples per object. With K > 1 every field has ``N * K`` rows instead of ``N``, object-major.
    """

    rgb: torch.Tensor
    rgb_processed: torch.Tensor
    alpha: torch.Tensor
    samples: int = 1


def predict_amodal_masks(
    pipe: DiffusionVASPipeline,
    modal_masks: torch.Tensor,
    depth: torch.Tensor,
    size: tuple[int, int] = DEFAULT_SIZE,
    options: SamplingOptions | None = None,
    threshold: int = C.AMODAL_SUM_THRESHOLD,
    callback: StepCallback | None = None,
    *,
    mask_upscale: str = DEFAULT_MASK_UPSCALE,
    region: str = DEFAULT_REGION,
    context: float = DEFAULT_CONTEXT,
    probability: bool = True,
) -> AmodalMasks:
    """Stage 1: each object's full (amodal) mask in every frame.

    Args:
        pipe: the amodal-segmentation checkpoint.
        modal_masks: ``[T, H, W]`` or ``[N, T, H, W]`` visible masks.
        depth: ``[T, H, W]`` pseudo-depth of the scene (any scale; normalized over the clip here), or a
            `sequences.DepthSequence` of that size (e.g. `sequences.ResizedDepth` of depth made smaller).
        size: processing ``(height, width)``, multiples of 8.
        threshold: a decoded pixel is amodal when its uint8 R+G+B exceeds this (reference: 600 of 765).
        mask_upscale: ``smooth`` (the soft map upsampled bilinearly and thresholded at the input size) or
            ``reference`` (thresholded at the processing size, OpenCV-exact nearest upsampling); see `upscale`.
        region: ``frame`` (as trained) or ``object`` (each object in a zoomed crop, see `region`); ``context`` is
            the crop's margin as a fraction of the object's visible extent.
        probability: also give the soft map at the input size (``False``: only `AmodalMasks.soft`).

    ``pipe`` may be any object with the pipeline's ``sample(cond_a, cond_b, options, callback)`` (e.g. an oracle
    sampler in benchmarks). With ``mask_upscale="reference"`` and ``region="frame"`` the result is the reference's.
    """
    options = options or SamplingOptions.for_stage("amodal")
    check_mask_upscale(mask_upscale)
    check_region(region)
    modal = tensor_masks(modal_masks, "modal_masks")
    t, (height, width) = modal[0].count, modal[0].size
    depth = TensorDepth(depth, "depth") if torch.is_tensor(depth) or not hasattr(depth, "read") else depth
    check_same_frames(depth, t, (height, width), "depth", "modal_masks")
    device = work_device(pipe)
    conditions = amodal_stage.prepare(modal, depth, size, region, context, device)
    output = sample_amodal_stage(pipe, conditions, options, callback, threshold, mask_upscale)

    rows = output.soft.shape[0]
    masks = torch.empty(rows, t, height, width, dtype=torch.bool)
    soft = torch.empty(rows, t, height, width, dtype=torch.float32) if probability else None
    for part, mask, prob in output.finish(modal, chunks(t, frame_pixels=height * width), device, probability):
        masks[:, part] = mask
        if soft is not None:
            soft[:, part] = prob
    return AmodalMasks(masks=masks, masks_processed=output.processed, probability=soft, samples=options.samples,
                       soft=output.soft)


def sample_amodal_stage(pipe, conditions: amodal_stage.AmodalStageConditions, options: SamplingOptions,
                        callback: StepCallback | None = None, threshold: int = C.AMODAL_SUM_THRESHOLD,
                        mask_upscale: str = DEFAULT_MASK_UPSCALE, objects: list[int] | None = None
                        ) -> amodal_stage.AmodalStageOutput:
    """Stage 1's model on ``objects`` (default all) of ``conditions``: the processing-size `AmodalStageOutput`,
    collected piece by piece as the VAE decodes."""
    output = amodal_stage.AmodalStageOutput.empty(conditions, options.samples, threshold, mask_upscale, objects)
    modal = conditions.modal if objects is None else conditions.modal[list(objects)]
    pipe.sample(*conditions.videos(objects), options, callback, on_decoded=output.collector(modal))
    return output


def complete_content(
    pipe: DiffusionVASPipeline,
    rgb,
    modal_masks: torch.Tensor,
    amodal_masks: torch.Tensor,
    size: tuple[int, int] = DEFAULT_SIZE,
    options: SamplingOptions | None = None,
    callback: StepCallback | None = None,
    *,
    keep_visible_pixels: bool = DEFAULT_KEEP_VISIBLE_PIXELS,
    region: str = DEFAULT_REGION,
    context: float = DEFAULT_CONTEXT,
) -> AmodalContent:
    """Stage 2: each object's appearance, hidden parts included.

    Args:
        pipe: the content-completion checkpoint.
        rgb: ``[T, H, W, 3]`` frames (or a `sequences.FrameSequence`, e.g. a video read part by part).
        modal_masks: ``[T, H, W]`` or ``[N, T, H, W]`` visible masks.
        amodal_masks: same shape as ``modal_masks``, at the input size or already at the processing size
            (e.g. `AmodalMasks.masks_processed`, as the reference feeds them); or ``[N * M, T, ...]``, M
            hypotheses per object (stage 1 with ``samples = M``): hypothesis ``s`` gets sample ``s`` (seed + s),
            and ``options.samples`` must be 1 or M (`hypotheses`).
        size: processing ``(height, width)``, multiples of 8.
        keep_visible_pixels: True: the footage's own pixels where the object is visible, the model's colours
            (colour-matched, blended over a few pixels) only in the hidden part, white outside (see
            `content_blend`); False: the model's render everywhere, as the authors' demo saves it.
        region, context: as in `predict_amodal_masks` (the crop follows the visible masks).

    With ``keep_visible_pixels=False`` and ``region="frame"`` the result is the reference's. The whole clip at the
    input size is the result here; `complete_content_stream` gives it part by part instead.
    """
    stream = complete_content_stream(pipe, rgb, modal_masks, amodal_masks, size, options, callback,
                                     keep_visible_pixels=keep_visible_pixels, region=region, context=context)
    full, alpha = stream.whole()
    return AmodalContent(rgb=full, rgb_processed=stream.output.processed, alpha=alpha, samples=stream.samples)


@dataclass
class ContentStream:
    """Stage 2 sampled, its input-size results given part by part (`parts`): what a long shot needs, since its
    colours at the input size (12 GB for a minute of 1080p at 8 fps) are never held.

    rows: ``N * K`` object-samples, object-major, as `AmodalContent`; count, size: the clip's frames and ``(H, W)``.
    """

    conditions: content_stage.ContentStageConditions
    output: content_stage.ContentStageOutput
    frames: FrameSequence
    modal: list
    amodal: list
    keep_visible_pixels: bool
    device: torch.device

    @property
    def samples(self) -> int:
        return self.output.samples

    @property
    def rows(self) -> int:
        return self.output.processed.shape[0]

    @property
    def count(self) -> int:
        return self.frames.count

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.frames.size)

    def parts(self, parts, into=None):
        """``(part, rgb [R, t, H, W, 3] float32 0..1, alpha [R, t, H, W] bool)`` for increasing ``parts`` (gaps
        allowed), reading the frames and masks again (`content_stage.ContentStageOutput.finish`; ``into`` as there)."""
        return self.output.finish(self.conditions, self.frames, self.modal, self.amodal, list(parts),
                                  self.keep_visible_pixels, self.device, into)

    def whole(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every frame at once: ``rgb [R, T, H, W, 3]`` float32 and ``alpha [R, T, H, W]`` bool, each part written
        straight into them."""
        t, (height, width) = self.count, self.size
        rgb = torch.empty(self.rows, t, height, width, 3, dtype=torch.float32)
        alpha = torch.empty(self.rows, t, height, width, dtype=torch.bool)
        for _ in self.parts(chunks(t, frame_pixels=height * width), into=lambda part: (rgb[:, part], alpha[:, part])):
            pass
        return rgb, alpha


def complete_content_stream(pipe: DiffusionVASPipeline, rgb, modal_masks: torch.Tensor, amodal_masks: torch.Tensor,
                            size: tuple[int, int] = DEFAULT_SIZE, options: SamplingOptions | None = None,
                            callback: StepCallback | None = None, *,
                            keep_visible_pixels: bool = DEFAULT_KEEP_VISIBLE_PIXELS, region: str = DEFAULT_REGION,
                            context: float = DEFAULT_CONTEXT) -> ContentStream:
    """`complete_content`'s checks, conditions and sampling, without the input-size results: a `ContentStream`."""
    options = options or SamplingOptions.for_stage("content")
    check_region(region)
    modal = tensor_masks(modal_masks, "modal_masks")
    n, t, (height, width) = len(modal), modal[0].count, modal[0].size
    if torch.is_tensor(rgb) or not hasattr(rgb, "read"):
        frames = TensorFrames(rgb, "rgb")
    else:
        frames = rgb
    check_same_frames(frames, t, (height, width), "rgb", "modal_masks")
    amodal = tensor_masks(amodal_masks, "amodal_masks")
    if amodal[0].count != t:
        raise ValueError(f"amodal_masks has {len(amodal)} objects x {amodal[0].count} frames; modal_masks has "
                         f"{n} x {t}. Pass one amodal mask sequence per modal mask sequence.")
    hypotheses.completion_samples(hypotheses.hypotheses_per_object(len(amodal), n), options.samples)
    if isinstance(frames, TensorFrames):
        frames.check_finite()
    device = work_device(pipe)
    boxes = amodal_stage.object_boxes(modal, size, region, context)
    conditions = content_stage.prepare(frames, modal, amodal, boxes, size)
    output = sample_content_stage(pipe, conditions, options, callback)
    return ContentStream(conditions, output, frames, modal, amodal, keep_visible_pixels, device)


def sample_content_stage(pipe, conditions: content_stage.ContentStageConditions, options: SamplingOptions,
                         callback: StepCallback | None = None, objects: list[int] | None = None
                         ) -> content_stage.ContentStageOutput:
    """Stage 2's model on ``objects`` (default all) of ``conditions``: the processing-size `ContentStageOutput`."""
    samples = hypotheses.completion_samples(conditions.hypotheses, options.samples)
    output = content_stage.ContentStageOutput.empty(conditions, samples, None if objects is None else len(objects))
    pipe.sample(*conditions.videos(objects), options, callback, on_decoded=output.collector())
    return output


def check_region(region: str) -> None:
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}.")

