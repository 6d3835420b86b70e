"""The two Diffusion-VAS stages on user data: masks, depth and RGB at any size in, results at that size out.

Objects: a mask argument is ``[T, H, W]`` (one object) or ``[N, T, H, W]`` (N objects); results always carry the
object axis ``N``. Frames may be uint8 (0..255), bool or float (0..1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import conditions as C
from ..engine.pipeline import DiffusionVASPipeline, StepCallback

DEFAULT_SIZE = (256, 512)  # (height, width) used by the authors' demo


@dataclass
class SamplingOptions:
    """Sampling settings shared by both stages (defaults: the reference's)."""

    seed: int = 23
    num_inference_steps: int = 25
    guidance_scale: float = 1.5
    fps: int = 8
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    decode_chunk_size: int = 8
    window: int = 25
    overlap: int = 8
    object_batch_size: int = 1

    def sample_kwargs(self) -> dict:
        return dict(
            seed=self.seed, num_inference_steps=self.num_inference_steps, min_guidance_scale=self.guidance_scale,
            max_guidance_scale=self.guidance_scale, fps=self.fps, motion_bucket_id=self.motion_bucket_id,
            noise_aug_strength=self.noise_aug_strength, decode_chunk_size=self.decode_chunk_size,
            window=self.window, overlap=self.overlap, object_batch_size=self.object_batch_size,
        )


@dataclass
class AmodalMasks:
    """Stage-1 result.

    masks: ``[N, T, H, W]`` bool at the input size, always containing the input modal mask.
    masks_processed: ``[N, T, h, w]`` bool at the processing size (the reference's output).
    probability: ``[N, T, H, W]`` float 0..1, the decoded frames' mean intensity (for previews / soft masks).
    """

    masks: torch.Tensor
    masks_processed: torch.Tensor
    probability: torch.Tensor


@dataclass
class AmodalContent:
    """Stage-2 result.

    rgb: ``[N, T, H, W, 3]`` float 0..1 at the input size.
    rgb_processed: ``[N, T, h, w, 3]`` uint8 at the processing size (the reference's output).
    """

    rgb: torch.Tensor
    rgb_processed: torch.Tensor


def predict_amodal_masks(
    pipe: DiffusionVASPipeline,
    modal_masks: torch.Tensor,
    depth: torch.Tensor,
    size: tuple[int, int] = DEFAULT_SIZE,
    options: SamplingOptions | None = None,
    threshold: int = C.AMODAL_SUM_THRESHOLD,
    callback: StepCallback | None = None,
) -> AmodalMasks:
    """Stage 1: each object's full (amodal) mask in every frame.

    Args:
        pipe: the amodal-segmentation checkpoint.
        modal_masks: ``[T, H, W]`` or ``[N, T, H, W]`` visible masks.
        depth: ``[T, H, W]`` pseudo-depth of the scene (any scale; normalized over the clip here).
        size: processing ``(height, width)``, multiples of 8.
        threshold: a decoded pixel is amodal when its uint8 R+G+B exceeds this (reference: 600 of 765).
    """
    options = options or SamplingOptions()
    modal = _objects(modal_masks, "modal_masks")
    n, t, height, width = modal.shape
    _check_frames(depth, (t, height, width), "depth", "modal_masks")
    modal_conds = torch.stack([C.modal_condition(m, size) for m in modal])
    depth_cond = C.depth_condition(depth, size).expand(n, -1, -1, -1, -1)
    frames = pipe.sample(modal_conds, depth_cond, callback=callback, **options.sample_kwargs())

    processed = torch.stack([C.frames_to_amodal(f, c, threshold) for f, c in zip(frames, modal_conds)])
    masks = C.resize_masks_nearest(processed, (height, width)) | (C.binarize_masks(modal.flatten(0, 1)) > 0).view_as(modal)
    probability = C.resize_frames_bilinear(frames.mean(dim=2, keepdim=True).flatten(0, 1).permute(0, 2, 3, 1),
                                           (height, width))[..., 0].view(n, t, height, width)
    return AmodalMasks(masks=masks, masks_processed=processed, probability=probability)


def complete_content(
    pipe: DiffusionVASPipeline,
    rgb: torch.Tensor,
    modal_masks: torch.Tensor,
    amodal_masks: torch.Tensor,
    size: tuple[int, int] = DEFAULT_SIZE,
    options: SamplingOptions | None = None,
    callback: StepCallback | None = None,
) -> AmodalContent:
    """Stage 2: each object's appearance, hidden parts included.

    Args:
        pipe: the content-completion checkpoint.
        rgb: ``[T, H, W, 3]`` frames.
        modal_masks: ``[T, H, W]`` or ``[N, T, H, W]`` visible masks.
        amodal_masks: same shape as ``modal_masks``, at the input size or already at the processing size
            (e.g. `AmodalMasks.masks_processed`, as the reference feeds them).
        size: processing ``(height, width)``, multiples of 8.
    """
    options = options or SamplingOptions(seed=29)
    modal = _objects(modal_masks, "modal_masks")
    amodal = _objects(amodal_masks, "amodal_masks")
    n, t, height, width = modal.shape
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be [T, H, W, 3] frames; got {tuple(rgb.shape)}.")
    _check_frames(rgb[..., 0], (t, height, width), "rgb", "modal_masks")
    if amodal.shape[:2] != (n, t):
        raise ValueError(f"amodal_masks has {amodal.shape[0]} objects x {amodal.shape[1]} frames; modal_masks has "
                         f"{n} x {t}. Pass one amodal mask sequence per modal mask sequence.")

    modal_conds = torch.stack([C.modal_condition(m, size) for m in modal])
    rgb_conds = torch.stack([C.modal_rgb_condition(rgb, c) for c in modal_conds])
    amodal_conds = torch.stack([C.amodal_condition(_amodal_at(a, size)) for a in amodal])
    frames = pipe.sample(rgb_conds, amodal_conds, callback=callback, **options.sample_kwargs())

    processed = torch.stack([C.frames_to_uint8(f) for f in frames])
    full = C.resize_frames_bilinear(processed.flatten(0, 1), (height, width)).view(n, t, height, width, 3)
    return AmodalContent(rgb=full, rgb_processed=processed)


def _amodal_at(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Amodal masks at the processing size: stage-1 masks (nearest-upsampled from this size) come back exactly
    as the reference's processing-size masks."""
    return C.downsample_masks_nearest(C.binarize_masks(masks) > 0, size)


def _objects(masks: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_tensor(masks) or masks.ndim not in (3, 4):
        shape = tuple(masks.shape) if torch.is_tensor(masks) else type(masks).__name__
        raise ValueError(f"{name} must be [T, H, W] (one object) or [N, T, H, W] (N objects); got {shape}.")
    if masks.is_floating_point() and not torch.isfinite(masks).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return masks if masks.ndim == 4 else masks.unsqueeze(0)


def _check_frames(tensor: torch.Tensor, expected: tuple[int, int, int], name: str, reference: str) -> None:
    if tensor.ndim != 3 or tuple(tensor.shape) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; it must match {reference}'s frames "
                         f"[T, H, W] = {list(expected)}. Resize it or select the same frames.")
