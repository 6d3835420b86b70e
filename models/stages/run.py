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
from . import hypotheses, native
from .chunking import MaskFormat, all_finite, work_device
from .content_blend import DEFAULT_KEEP_VISIBLE_PIXELS
from .region import DEFAULT_CONTEXT, DEFAULT_REGION, REGIONS
from .upscale import DEFAULT_MASK_UPSCALE, check_mask_upscale
from ..engine.options import DEFAULT_SIZE, SamplingOptions
from ..engine.pipeline import DiffusionVASPipeline, StepCallback

@dataclass
class AmodalMasks:
    """Stage-1 result.

    masks: ``[N, T, H, W]`` bool at the input size, always containing the input modal mask.
    masks_processed: ``[N, T, h, w]`` bool at the processing size (the reference's output).
    probability: ``[N, T, H, W]`` float 0..1, the decoded frames' mean intensity (for previews / soft masks).
    samples: K, samples per object. With K > 1 every field has ``N * K`` rows instead of ``N``, object-major;
        `hypotheses.consensus` / `hypotheses.agreement` combine them.
    """

    masks: torch.Tensor
    masks_processed: torch.Tensor
    probability: torch.Tensor
    samples: int = 1


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
) -> AmodalMasks:
    """Stage 1: each object's full (amodal) mask in every frame.

    Args:
        pipe: the amodal-segmentation checkpoint.
        modal_masks: ``[T, H, W]`` or ``[N, T, H, W]`` visible masks.
        depth: ``[T, H, W]`` pseudo-depth of the scene (any scale; normalized over the clip here).
        size: processing ``(height, width)``, multiples of 8.
        threshold: a decoded pixel is amodal when its uint8 R+G+B exceeds this (reference: 600 of 765).
        mask_upscale: ``smooth`` (the soft map upsampled bilinearly and thresholded at the input size) or
            ``reference`` (thresholded at the processing size, OpenCV-exact nearest upsampling); see `upscale`.
        region: ``frame`` (as trained) or ``object`` (each object in a zoomed crop, see `region`); ``context`` is
            the crop's margin as a fraction of the object's visible extent.

    ``pipe`` may be any object with the pipeline's ``sample(cond_a, cond_b, options, callback)`` (e.g. an oracle
    sampler in benchmarks). With ``mask_upscale="reference"`` and ``region="frame"`` the result is the reference's.
    """
    options = options or SamplingOptions.for_stage("amodal")
    check_mask_upscale(mask_upscale)
    _check_region(region)
    modal = _objects(modal_masks, "modal_masks")
    n, t, height, width = modal.shape
    _check_frames(depth, (t, height, width), "depth", "modal_masks")
    fmt, device = MaskFormat(modal, "modal_masks"), work_device(pipe)
    boxes = native.object_boxes(modal, fmt, size, region, context)
    modal_conds = native.modal_conditions(modal, fmt, boxes, size)
    depth_conds = native.depth_conditions(depth, boxes, size, device)
    frames = pipe.sample(modal_conds, depth_conds, options, callback)  # [N, (K,) T, 3, h, w]

    masks, processed, probability = hypotheses.per_sample(
        lambda sample, _: native.stage1_results(sample, modal_conds, modal, fmt, boxes, threshold, mask_upscale,
                                                device), frames)
    return AmodalMasks(masks=masks, masks_processed=processed, probability=probability, samples=options.samples)


def complete_content(
    pipe: DiffusionVASPipeline,
    rgb: torch.Tensor,
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
        rgb: ``[T, H, W, 3]`` frames.
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

    With ``keep_visible_pixels=False`` and ``region="frame"`` the result is the reference's.
    """
    options = options or SamplingOptions.for_stage("content")
    _check_region(region)
    modal = _objects(modal_masks, "modal_masks")
    amodal = _objects(amodal_masks, "amodal_masks")
    n, t, height, width = modal.shape
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be [T, H, W, 3] frames; got {tuple(rgb.shape)}.")
    _check_frames(rgb[..., 0], (t, height, width), "rgb", "modal_masks")
    if amodal.shape[1] != t:
        raise ValueError(f"amodal_masks has {amodal.shape[0]} objects x {amodal.shape[1]} frames; modal_masks has "
                         f"{n} x {t}. Pass one amodal mask sequence per modal mask sequence.")
    samples = hypotheses.completion_samples(hypotheses.hypotheses_per_object(amodal.shape[0], n), options.samples)

    if not all_finite(rgb):
        raise ValueError("rgb contains NaN or infinite values; check the node or file that made the frames.")
    modal_fmt, amodal_fmt = MaskFormat(modal, "modal_masks"), MaskFormat(amodal, "amodal_masks")
    device = work_device(pipe)
    boxes = native.object_boxes(modal, modal_fmt, size, region, context)
    masks = hypotheses.split_hypotheses(amodal, n)  # M views [N, T, H, W]
    inputs = [native.Stage2Inputs(rgb, modal, modal_fmt, m, amodal_fmt, boxes, size) for m in masks]
    frames = pipe.sample(*hypotheses.stack_conditions([i.conditions() for i in inputs]), options, callback)

    def finish(sample: torch.Tensor, k: int):
        m = k if len(masks) > 1 else 0
        return native.stage2_results(sample, inputs[m], rgb, modal, modal_fmt, masks[m], amodal_fmt, boxes,
                                     keep_visible_pixels, device)

    full, processed, alpha = hypotheses.per_sample(finish, frames)
    return AmodalContent(rgb=full, rgb_processed=processed, alpha=alpha, samples=samples)


def _check_region(region: str) -> None:
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}.")


def _objects(masks: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_tensor(masks) or masks.ndim not in (3, 4):
        shape = tuple(masks.shape) if torch.is_tensor(masks) else type(masks).__name__
        raise ValueError(f"{name} must be [T, H, W] (one object) or [N, T, H, W] (N objects); got {shape}.")
    return masks if masks.ndim == 4 else masks.unsqueeze(0)


def _check_frames(tensor: torch.Tensor, expected: tuple[int, int, int], name: str, reference: str) -> None:
    if tensor.ndim != 3 or tuple(tensor.shape) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; it must match {reference}'s frames "
                         f"[T, H, W] = {list(expected)}. Resize it or select the same frames.")
