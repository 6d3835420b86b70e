"""The two Diffusion-VAS stage nodes: ComfyUI MASK/IMAGE in, `predict_amodal_masks` / `complete_content`, MASK/IMAGE
out at the input size.

``AmodalMaskSVD`` (stage 1): visible masks + pseudo-depth -> full (amodal) object masks.
``AmodalContentSVD`` (stage 2): frames + visible masks + amodal masks -> the objects' full appearance.

Several objects travel as ``N * T`` frames stacked object by object (see `adapters.split_objects`); results keep that
stacking. Clips longer than ``window`` frames are denoised in overlapping windows by the engine.
"""

from __future__ import annotations

import logging
import math

from ..models import SamplingOptions, complete_content, predict_amodal_masks
from ..models.host import get_host
from ..models.stages.conditions import AMODAL_SUM_THRESHOLD
from ..models.stages.hypotheses import agreement, completion_samples, consensus, hypotheses_per_object
from ..models.stages.content_blend import DEFAULT_KEEP_VISIBLE_PIXELS
from ..models.stages.region import DEFAULT_REGION, REGIONS
from ..models.stages.upscale import DEFAULT_MASK_UPSCALE, MASK_UPSCALES
from .adapters import OBJECT_STACKING, check_same_size, depth_image_frames, frames_of, split_objects, stacked, warn_empty

logger = logging.getLogger(__name__)

# Widget -> SamplingOptions field. Defaults, and so the widgets' defaults, come from `SamplingOptions.for_stage`.
_REQUIRED = {"seed": "seed", "steps": "num_inference_steps", "guidance_scale": "guidance_scale"}
_OPTIONAL = {"window": "window", "overlap": "overlap", "object_batch_size": "object_batch_size",
             "decode_chunk_size": "decode_chunk_size", "fps": "fps", "motion_bucket_id": "motion_bucket_id",
             "noise_aug_strength": "noise_aug_strength", "samples": "samples"}
_SIZE = {"width": 512, "height": 256}  # processing size: the authors' (DEFAULT_SIZE is (256, 512))


def sampling_inputs(stage: str) -> dict:
    """The required sampling widgets shared by both stage nodes, defaults from `SamplingOptions.for_stage`."""
    d = SamplingOptions.for_stage(stage)
    return {
        "seed": ("INT", {"default": d.seed, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                         "tooltip": "Random seed; every object starts from this seed."}),
        "steps": ("INT", {"default": d.num_inference_steps, "min": 1, "max": 200,
                          "tooltip": f"Denoising steps (reference: {d.num_inference_steps})."}),
        "guidance_scale": ("FLOAT", {"default": d.guidance_scale, "min": 0.0, "max": 20.0, "step": 0.05,
                                     "tooltip": f"Classifier-free guidance (reference: {d.guidance_scale}); 1 or "
                                                "less turns it off."}),
        "width": ("INT", {"default": _SIZE["width"], "min": 64, "max": 4096, "step": 8,
                          "tooltip": "Processing width (the model was trained at 512x256); results come back at "
                                     "the input size. A multiple of 64 for the real model."}),
        "height": ("INT", {"default": _SIZE["height"], "min": 64, "max": 4096, "step": 8,
                           "tooltip": "Processing height (trained: 256). A multiple of 64 for the real model."}),
    }


def advanced_inputs(stage: str) -> dict:
    """The optional sampling widgets shared by both stage nodes, defaults from `SamplingOptions.for_stage`."""
    d = SamplingOptions.for_stage(stage)
    return {
        "window": ("INT", {"default": d.window, "min": 2, "max": 256,
                           "tooltip": "Frames denoised together (trained: 25); longer clips use overlapping windows."}),
        "overlap": ("INT", {"default": d.overlap, "min": 0, "max": 255,
                            "tooltip": "Frames shared by neighbouring windows (less than window)."}),
        "object_batch_size": ("INT", {"default": d.object_batch_size, "min": 1, "max": 64,
                                      "tooltip": "Objects denoised at once; more is faster and uses more memory."}),
        "decode_chunk_size": ("INT", {"default": d.decode_chunk_size, "min": 1, "max": 256,
                                      "tooltip": f"Frames decoded at once by the VAE (reference: "
                                                 f"{d.decode_chunk_size}); lower saves memory."}),
        "fps": ("INT", {"default": d.fps, "min": 1, "max": 120,
                        "tooltip": f"Frame-rate conditioning (reference: {d.fps})."}),
        "motion_bucket_id": ("INT", {"default": d.motion_bucket_id, "min": 0, "max": 1023,
                                     "tooltip": f"Motion conditioning (reference: {d.motion_bucket_id})."}),
        "noise_aug_strength": ("FLOAT", {"default": d.noise_aug_strength, "min": 0.0, "max": 1.0, "step": 0.005,
                                         "tooltip": f"Noise added to the conditions (reference: "
                                                    f"{d.noise_aug_strength})."}),
    }


def sampling_options(stage: str, widgets: dict) -> SamplingOptions:
    """The stage's `SamplingOptions` with the widget values given (absent optional widgets keep the defaults)."""
    names = {**_REQUIRED, **_OPTIONAL}
    unknown = sorted(set(widgets) - set(names) - set(_SIZE))
    if unknown:
        raise TypeError(f"unknown input(s) {unknown}; the stage nodes take {sorted([*names, *_SIZE])}.")
    return SamplingOptions.for_stage(stage, **{names[k]: v for k, v in widgets.items() if k in names})


def processing_size(widgets: dict) -> tuple[int, int]:
    """``(height, width)`` from the width/height widgets; both must be multiples of 8 (64 for the real model)."""
    width, height = widgets.get("width", _SIZE["width"]), widgets.get("height", _SIZE["height"])
    if width % 8 or height % 8 or width < 8 or height < 8:
        raise ValueError(f"width and height must be multiples of 8 (got {width}x{height}); use a multiple of 64 for "
                         "the real model, e.g. 512x256.")
    if width % 64 or height % 64:
        logger.warning("Diffusion-VAS: %dx%d is not a multiple of 64; the published checkpoints need one.",
                       width, height)
    return height, width


def region_input() -> dict:
    """The optional ``region`` widget shared by both stage nodes (added last: saved workflows keep their values)."""
    return {"region": (list(REGIONS), {
        "default": DEFAULT_REGION,
        "tooltip": "frame: the whole frame, as the model was trained. object: each object in a crop around where it "
                   "is visible over the clip (with 100% context margin, at the model's 2:1 aspect), pasted back at "
                   "the input size; better for objects small in the frame (HD/4K footage)."})}


COMBINE = ("consensus", "all")  # AmodalMaskSVD's ways to return several samples; the first is the default


def samples_input() -> dict:
    """The optional ``samples`` widget shared by both stage nodes (added last: saved workflows keep their values)."""
    d = SamplingOptions()
    return {"samples": ("INT", {
        "default": d.samples, "min": 1, "max": 64,
        "tooltip": "Independent samples per object (hidden parts are ambiguous: each sample is one plausible "
                   "answer). Sample k is drawn exactly as a run with seed + k; K samples cost K times the sampling "
                   "work (batched with the objects by object_batch_size)."})}


def run_progress(options: SamplingOptions, objects: int, label: str):
    """The host's progress callback over every denoising step of the call (ComfyUI: its bar and Cancel);
    ``objects`` counts object-samples (rows the sampler denoises)."""
    return get_host().progress(options.num_inference_steps * math.ceil(objects / options.object_batch_size), label)


class AmodalMaskSVD:
    DESCRIPTION = (
        "Diffusion-VAS stage 1: predicts each object's full shape (amodal mask), hidden parts included, from its "
        "visible (modal) mask and the scene's pseudo-depth. Load diffusion-vas-amodal-segmentation. The result "
        "contains every visible pixel. " + OBJECT_STACKING
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "predict"
    RETURN_TYPES = ("MASK", "IMAGE", "MASK")
    RETURN_NAMES = ("amodal_masks", "probability", "agreement")
    OUTPUT_TOOLTIPS = (
        "Full object masks [N x frames, height, width] at the input size, stacked like modal_masks. With samples "
        "> 1: combine consensus gives N x frames (majority vote), all gives N x samples x frames (object by object, "
        "then sample by sample).",
        "The model's raw output (bright = object) as an image, for previews and soft masks (consensus: the mean over "
        "the samples; all: one per sample, stacked like amodal_masks).",
        "Fraction of the samples covering each pixel [N x frames, height, width] (0..1): where the samples disagree "
        "the hidden shape is uncertain. With one sample: the mask itself.",
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
                **sampling_inputs("amodal"),
            },
            "optional": {
                "threshold": ("INT", {"default": AMODAL_SUM_THRESHOLD, "min": 0, "max": 765,
                                      "tooltip": "A pixel is in the mask when its decoded R+G+B (0..765) exceeds "
                                                 f"this (reference: {AMODAL_SUM_THRESHOLD}). Lower grows the masks."}),
                **advanced_inputs("amodal"),
                "mask_upscale": (list(MASK_UPSCALES), {
                    "default": DEFAULT_MASK_UPSCALE,
                    "tooltip": "smooth: the model's soft mask is upsampled smoothly to the input size and thresholded "
                               "there (clean edges at HD/4K). reference: the authors' nearest-neighbour upscaling "
                               "(OpenCV-exact, staircase edges)."}),
                **region_input(),
                **samples_input(),
                "combine": (list(COMBINE), {
                    "default": COMBINE[0],
                    "tooltip": "With samples > 1: consensus returns one mask per frame, on where more than half of "
                               "the samples are (visible pixels always in); all returns every sample (N x samples x "
                               "frames, object by object, then sample by sample) for SelectHypothesis or stage 2."}),
            },
        }

    def predict(self, model, modal_masks, depth, threshold=AMODAL_SUM_THRESHOLD, mask_upscale=DEFAULT_MASK_UPSCALE,
                region=DEFAULT_REGION, combine=COMBINE[0], **widgets):
        model.require_stage("segmentation", "AmodalMaskSVD")
        size = processing_size(widgets)
        if not hasattr(depth, "ndim") or depth.ndim not in (3, 4):
            raise ValueError(f"depth: expected an IMAGE [frames, height, width, 3], got "
                             f"{tuple(depth.shape) if hasattr(depth, 'shape') else type(depth).__name__}.")
        modal = split_objects(modal_masks, depth.shape[0], "modal_masks", "depth")
        warn_empty(modal, "modal_masks")
        depth = depth_image_frames(depth, tuple(modal.shape[-2:]), "AmodalMaskSVD")
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}.")
        options = sampling_options("amodal", widgets)
        with model.prepared() as pipe:
            result = predict_amodal_masks(pipe, modal, depth, size, options, threshold,
                                          run_progress(options, modal.shape[0] * options.samples, "AmodalMaskSVD"),
                                          mask_upscale=mask_upscale, region=region)
        masks, probability, k = result.masks, result.probability, result.samples
        if k > 1 and combine == "consensus":
            masks = consensus(masks, k, modal)
            probability = probability.view(-1, k, *probability.shape[1:]).mean(dim=1)
        masks = stacked(masks)
        # With one sample the agreement is the mask itself: the same tensor, not a second float copy of the clip.
        fraction = stacked(agreement(result.masks, k)) if k > 1 else masks
        # A read-only view with 3 channels, as core MaskToImage returns: no 3x copy of a 1080p/4K clip.
        probability = stacked(probability)[..., None].expand(-1, -1, -1, 3)
        return masks, probability, fraction


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
        "like modal_masks; with several samples (or mask hypotheses) N x samples x frames, object by object, then "
        "sample by sample.",
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
                                                     "modal_masks; or N x K x frames mask hypotheses (AmodalMaskSVD "
                                                     "combine all): hypothesis k is completed with seed + k (samples "
                                                     "1 or K), every hypothesis sharing its object's modal masks."}),
                **sampling_inputs("content"),
            },
            "optional": {
                **advanced_inputs("content"),
                "keep_visible_pixels": ("BOOLEAN", {
                    "default": DEFAULT_KEEP_VISIBLE_PIXELS,
                    "tooltip": "true: the footage's own pixels where the object is visible, the model's colours only "
                               "in the hidden part (colour-matched, blended over a few pixels). false: the model's "
                               "render everywhere, upsampled from the processing size (the authors' output)."}),
                **region_input(),
                **samples_input(),
            },
        }

    def complete(self, model, images, modal_masks, amodal_masks, keep_visible_pixels=DEFAULT_KEEP_VISIBLE_PIXELS,
                 region=DEFAULT_REGION, **widgets):
        model.require_stage("completion", "AmodalContentSVD")
        size = processing_size(widgets)
        images = frames_of(images, "images", 3)
        frames, image_size = images.shape[0], tuple(images.shape[1:3])
        modal = split_objects(modal_masks, frames, "modal_masks", "images")
        amodal = split_objects(amodal_masks, frames, "amodal_masks", "images")
        check_same_size(modal, image_size, "modal_masks", "images")
        if amodal.shape[0] % modal.shape[0]:
            raise ValueError(f"amodal_masks holds {amodal.shape[0]} object(s) and modal_masks {modal.shape[0]} "
                             f"(of {frames} frames each); give one amodal mask sequence per modal mask sequence "
                             "(or K per object: AmodalMaskSVD with combine all).")
        warn_empty(amodal, "amodal_masks")
        options = sampling_options("content", widgets)
        rows = modal.shape[0] * completion_samples(hypotheses_per_object(amodal.shape[0], modal.shape[0]),
                                                   options.samples)
        with model.prepared() as pipe:
            result = complete_content(pipe, images, modal, amodal, size, options,
                                      run_progress(options, rows, "AmodalContentSVD"),
                                      keep_visible_pixels=keep_visible_pixels, region=region)
        return stacked(result.rgb), stacked(result.alpha)


NODE_CLASS_MAPPINGS = {"AmodalMaskSVD": AmodalMaskSVD, "AmodalContentSVD": AmodalContentSVD}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AmodalMaskSVD": "Diffusion-VAS Amodal Mask (SVD)",
    "AmodalContentSVD": "Diffusion-VAS Amodal Content (SVD)",
}
