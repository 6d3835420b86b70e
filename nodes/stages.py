"""The two Diffusion-VAS stage nodes: ComfyUI MASK/IMAGE in, `predict_amodal_masks` / `complete_content`, MASK/IMAGE
out at the input size.

``AmodalMaskSVD`` (stage 1): visible masks + pseudo-depth -> full (amodal) object masks.
``AmodalContentSVD`` (stage 2): frames + visible masks + amodal masks -> the objects' full appearance.

Several objects travel as ``N * T`` frames stacked object by object (see `masks.split_objects`); results keep that
stacking. Clips longer than ``window`` frames are denoised in overlapping windows by the engine.
"""

from __future__ import annotations

import logging
import math

import torch

from ..models import SamplingOptions, complete_content, predict_amodal_masks
from ..models.stages.conditions import AMODAL_SUM_THRESHOLD, binarize_masks, resize_masks_nearest
from .comfy_bridge import ProgressReporter
from .depth import depth_image_frames
from .masks import OBJECT_STACKING, split_objects

logger = logging.getLogger(__name__)

STAGE1_SEED, STAGE2_SEED = 23, 29  # the reference demo's seeds


def sampling_inputs(seed: int) -> dict:
    """The required sampling widgets shared by both stage nodes (defaults: the reference's)."""
    return {
        "seed": ("INT", {"default": seed, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                         "tooltip": "Random seed; every object starts from this seed."}),
        "steps": ("INT", {"default": 25, "min": 1, "max": 200, "tooltip": "Denoising steps (reference: 25)."}),
        "guidance_scale": ("FLOAT", {"default": 1.5, "min": 0.0, "max": 20.0, "step": 0.05,
                                     "tooltip": "Classifier-free guidance (reference: 1.5); 1 or less turns it off."}),
        "width": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 8,
                          "tooltip": "Processing width (the model was trained at 512x256); results come back at "
                                     "the input size. A multiple of 64 for the real model."}),
        "height": ("INT", {"default": 256, "min": 64, "max": 4096, "step": 8,
                           "tooltip": "Processing height (trained: 256). A multiple of 64 for the real model."}),
    }


def advanced_inputs() -> dict:
    """The optional sampling widgets shared by both stage nodes (defaults: the reference's)."""
    return {
        "window": ("INT", {"default": 25, "min": 2, "max": 256,
                           "tooltip": "Frames denoised together (trained: 25); longer clips use overlapping windows."}),
        "overlap": ("INT", {"default": 8, "min": 0, "max": 255,
                            "tooltip": "Frames shared by neighbouring windows (less than window)."}),
        "object_batch_size": ("INT", {"default": 1, "min": 1, "max": 64,
                                      "tooltip": "Objects denoised at once; more is faster and uses more memory."}),
        "decode_chunk_size": ("INT", {"default": 8, "min": 1, "max": 256,
                                      "tooltip": "Frames decoded at once by the VAE (reference: 8); lower saves memory."}),
        "fps": ("INT", {"default": 8, "min": 1, "max": 120, "tooltip": "Frame-rate conditioning (reference: 8)."}),
        "motion_bucket_id": ("INT", {"default": 127, "min": 0, "max": 1023,
                                     "tooltip": "Motion conditioning (reference: 127)."}),
        "noise_aug_strength": ("FLOAT", {"default": 0.02, "min": 0.0, "max": 1.0, "step": 0.005,
                                         "tooltip": "Noise added to the conditions (reference: 0.02)."}),
    }


def sampling_options(seed, steps, guidance_scale, window, overlap, object_batch_size, decode_chunk_size, fps,
                     motion_bucket_id, noise_aug_strength) -> SamplingOptions:
    return SamplingOptions(
        seed=seed, num_inference_steps=steps, guidance_scale=guidance_scale, fps=fps, motion_bucket_id=motion_bucket_id,
        noise_aug_strength=noise_aug_strength, decode_chunk_size=decode_chunk_size, window=window, overlap=overlap,
        object_batch_size=object_batch_size,
    )


def processing_size(width: int, height: int) -> tuple[int, int]:
    """``(height, width)``; both must be multiples of 8."""
    if width % 8 or height % 8 or width < 8 or height < 8:
        raise ValueError(f"width and height must be multiples of 8 (got {width}x{height}); use a multiple of 64 for "
                         "the real model, e.g. 512x256.")
    if width % 64 or height % 64:
        logger.warning("Diffusion-VAS: %dx%d is not a multiple of 64; the published checkpoints need one.",
                       width, height)
    return height, width


def frames_of(tensor, name: str, channels: int | None) -> torch.Tensor:
    """Checks an IMAGE input: ``[T, H, W, C]`` finite floats; keeps the first ``channels`` channels."""
    if not torch.is_tensor(tensor) or tensor.ndim != 4:
        shape = tuple(tensor.shape) if torch.is_tensor(tensor) else type(tensor).__name__
        raise ValueError(f"{name}: expected an IMAGE [frames, height, width, channels], got {shape}.")
    if channels is not None and tensor.shape[-1] < channels:
        raise ValueError(f"{name}: expected {channels} colour channels, got {tensor.shape[-1]}.")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the node that made it.")
    return tensor if channels is None else tensor[..., :channels]


def check_same_size(masks: torch.Tensor, size: tuple[int, int], name: str, reference: str) -> None:
    if tuple(masks.shape[-2:]) != tuple(size):
        raise ValueError(
            f"{name} are {masks.shape[-1]}x{masks.shape[-2]} but {reference} are {size[1]}x{size[0]}; resize the masks "
            "(LoadModalMasks: connect reference_images) or the frames so they match."
        )


def warn_empty(masks: torch.Tensor, name: str) -> None:
    for index, obj in enumerate(masks):
        if not (binarize_masks(obj) > 0).any():
            logger.warning("Diffusion-VAS: %s of object %d are empty in every frame; its result will be empty or "
                           "meaningless.", name, index)


def run_progress(steps: int, objects: int, object_batch_size: int, label: str) -> ProgressReporter:
    return ProgressReporter(steps * math.ceil(objects / object_batch_size), label)


def stacked(tensor: torch.Tensor) -> torch.Tensor:
    """``[N, T, ...]`` -> ``[N * T, ...]`` float32 (ComfyUI's object-major stacking)."""
    return tensor.float().flatten(0, 1).contiguous()


class AmodalMaskSVD:
    DESCRIPTION = (
        "Diffusion-VAS stage 1: predicts each object's full shape (amodal mask), hidden parts included, from its "
        "visible (modal) mask and the scene's pseudo-depth. Load diffusion-vas-amodal-segmentation. The result "
        "contains every visible pixel. " + OBJECT_STACKING
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "predict"
    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("amodal_masks", "probability")
    OUTPUT_TOOLTIPS = (
        "Full object masks [N x frames, height, width] at the input size, stacked like modal_masks.",
        "The model's raw output (bright = object) as an image, for previews and soft masks.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("DIFFUSION_VAS_MODEL", {"tooltip": "diffusion-vas-amodal-segmentation from the loader."}),
                "modal_masks": ("MASK", {"tooltip": "Visible part of the object in every frame of depth. "
                                                    + OBJECT_STACKING}),
                "depth": ("IMAGE", {"tooltip": "Pseudo-depth of the same frames in 0..1, near = bright (PseudoDepth "
                                               "or any depth node); normalized over the clip, resized to the masks."}),
                **sampling_inputs(STAGE1_SEED),
            },
            "optional": {
                "threshold": ("INT", {"default": AMODAL_SUM_THRESHOLD, "min": 0, "max": 765,
                                      "tooltip": "A pixel is in the mask when its decoded R+G+B (0..765) exceeds "
                                                 "this (reference: 600). Lower grows the masks."}),
                **advanced_inputs(),
            },
        }

    def predict(self, model, modal_masks, depth, seed=STAGE1_SEED, steps=25, guidance_scale=1.5, width=512,
                height=256, threshold=AMODAL_SUM_THRESHOLD, window=25, overlap=8, object_batch_size=1,
                decode_chunk_size=8, fps=8, motion_bucket_id=127, noise_aug_strength=0.02):
        model.require_stage("segmentation", "AmodalMaskSVD")
        size = processing_size(width, height)
        if not torch.is_tensor(depth) or depth.ndim not in (3, 4):
            raise ValueError(f"depth: expected an IMAGE [frames, height, width, 3], got "
                             f"{tuple(depth.shape) if torch.is_tensor(depth) else type(depth).__name__}.")
        modal = split_objects(modal_masks, depth.shape[0], "modal_masks", "depth")
        warn_empty(modal, "modal_masks")
        depth = depth_image_frames(depth, tuple(modal.shape[-2:]), "AmodalMaskSVD")
        options = sampling_options(seed, steps, guidance_scale, window, overlap, object_batch_size, decode_chunk_size,
                                   fps, motion_bucket_id, noise_aug_strength)
        pipe = model.prepare()
        try:
            result = predict_amodal_masks(pipe, modal, depth, size, options, threshold,
                                          run_progress(steps, modal.shape[0], object_batch_size, "AmodalMaskSVD"))
        finally:
            model.managed.release()
        probability = stacked(result.probability)[..., None].expand(-1, -1, -1, 3).contiguous()
        return stacked(result.masks), probability


class AmodalContentSVD:
    DESCRIPTION = (
        "Diffusion-VAS stage 2: paints each object's full appearance, hidden parts included, inside its amodal "
        "mask, from the frames and its visible mask. Load diffusion-vas-content-completion. " + OBJECT_STACKING
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "complete"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("amodal_rgb", "alpha")
    OUTPUT_TOOLTIPS = (
        "The objects' completed colours [N x frames, height, width, 3] at the input size (white outside), stacked "
        "like modal_masks.",
        "The objects' full shape at the input size (amodal mask, with every visible pixel), to composite amodal_rgb.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("DIFFUSION_VAS_MODEL", {"tooltip": "diffusion-vas-content-completion from the loader."}),
                "images": ("IMAGE", {"tooltip": "The video frames."}),
                "modal_masks": ("MASK", {"tooltip": "Visible part of the object in every frame of images. "
                                                    + OBJECT_STACKING}),
                "amodal_masks": ("MASK", {"tooltip": "Full object masks (AmodalMaskSVD's amodal_masks), stacked like "
                                                     "modal_masks."}),
                **sampling_inputs(STAGE2_SEED),
            },
            "optional": advanced_inputs(),
        }

    def complete(self, model, images, modal_masks, amodal_masks, seed=STAGE2_SEED, steps=25, guidance_scale=1.5,
                 width=512, height=256, window=25, overlap=8, object_batch_size=1, decode_chunk_size=8, fps=8,
                 motion_bucket_id=127, noise_aug_strength=0.02):
        model.require_stage("completion", "AmodalContentSVD")
        size = processing_size(width, height)
        images = frames_of(images, "images", 3)
        frames, image_size = images.shape[0], tuple(images.shape[1:3])
        modal = split_objects(modal_masks, frames, "modal_masks", "images")
        amodal = split_objects(amodal_masks, frames, "amodal_masks", "images")
        check_same_size(modal, image_size, "modal_masks", "images")
        if amodal.shape[0] != modal.shape[0]:
            raise ValueError(f"amodal_masks holds {amodal.shape[0]} object(s) and modal_masks {modal.shape[0]} "
                             f"(of {frames} frames each); give one amodal mask sequence per modal mask sequence.")
        warn_empty(amodal, "amodal_masks")
        options = sampling_options(seed, steps, guidance_scale, window, overlap, object_batch_size, decode_chunk_size,
                                   fps, motion_bucket_id, noise_aug_strength)
        pipe = model.prepare()
        try:
            result = complete_content(pipe, images, modal, amodal, size, options,
                                      run_progress(steps, modal.shape[0], object_batch_size, "AmodalContentSVD"))
        finally:
            model.managed.release()
        alpha = resize_masks_nearest(binarize_masks(amodal) > 0, image_size) | (binarize_masks(modal) > 0)
        return stacked(result.rgb), stacked(alpha)


NODE_CLASS_MAPPINGS = {"AmodalMaskSVD": AmodalMaskSVD, "AmodalContentSVD": AmodalContentSVD}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AmodalMaskSVD": "Diffusion-VAS Amodal Mask (SVD)",
    "AmodalContentSVD": "Diffusion-VAS Amodal Content (SVD)",
}
