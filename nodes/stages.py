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

import torch

from ..models import SamplingOptions, complete_content_stream, predict_amodal_masks
from ..models import chunks
from ..models import get_host
from ..models import settings as S
from ..models.settings import Link
from ..models import agreement, completion_samples, consensus, hypotheses_per_object
from .adapters import (OBJECT_STACKING, check_same_size, depth_image_frames, frames_of, split_objects, stacked,
                       warn_empty)
from .bool_mask import bool_values
from .inputs import node_inputs
from .preflight import MASK_LOADER, NODE_STAGE, Graph, hidden_inputs, warn_visible_as_full
from .video import DEFAULT_VIDEO_FPS, content_video, frame_rate, frame_sequence, is_video, objects_video

logger = logging.getLogger(__name__)

# Widget -> SamplingOptions field; every default comes from the settings' declarations (`models.settings`).
_SAMPLING_FIELDS = {s.name: s.field or s.name for s in S.SAMPLING}
_REQUIRED_WIDGETS = (S.SEED, S.STEPS, S.GUIDANCE_SCALE, S.WIDTH, S.HEIGHT)  # shared by both stage nodes
_ADVANCED_WIDGETS = (S.WINDOW, S.OVERLAP, S.OBJECT_BATCH_SIZE, S.DECODE_CHUNK_SIZE, S.MODEL_FPS, S.MOTION_BUCKET_ID,
                     S.NOISE_AUG_STRENGTH)  # rarely changed, flagged advanced
MODEL_HELP = {"amodal": "The diffusion-vas-amodal-segmentation model from Load Model.",
              "content": "The diffusion-vas-content-completion model from Load Model."}


def sampling_options(stage: str, widgets: dict) -> SamplingOptions:
    """The stage's `SamplingOptions` with the widget values given (absent optional widgets keep the defaults)."""
    sizes = {S.WIDTH.name, S.HEIGHT.name}
    unknown = sorted(set(widgets) - set(_SAMPLING_FIELDS) - sizes)
    if unknown:
        raise TypeError(f"unknown input(s) {unknown}; the stage nodes take {sorted([*_SAMPLING_FIELDS, *sizes])}.")
    return SamplingOptions.for_stage(stage, **{_SAMPLING_FIELDS[k]: v for k, v in widgets.items()
                                               if k in _SAMPLING_FIELDS})


def processing_size(widgets: dict) -> tuple[int, int]:
    """``(height, width)`` from the width/height widgets; both must be multiples of 8 (64 for the real model)."""
    width, height = widgets.get("width", S.WIDTH.default), widgets.get("height", S.HEIGHT.default)
    if width % 8 or height % 8 or width < 8 or height < 8:
        raise ValueError(f"width and height must be multiples of 8 (got {width}x{height}); use a multiple of 64 for "
                         "the real model, e.g. 512x256.")
    if width % 64 or height % 64:
        logger.warning("Diffusion-VAS: %dx%d is not a multiple of 64; the published checkpoints need one.",
                       width, height)
    return height, width


COMBINE = tuple(S.COMBINE.choices)  # AmodalMaskSVD's ways to return several samples; the first is the default


def run_progress(options: SamplingOptions, objects: int, label: str):
    """The host's progress callback over every denoising step of the call (ComfyUI: its bar and Cancel);
    ``objects`` counts object-samples (rows the sampler denoises)."""
    return get_host().progress(options.num_inference_steps * math.ceil(objects / options.object_batch_size), label)


class AmodalMaskSVD:
    DESCRIPTION = (
        "Diffusion-VAS stage 1: the full shape of each object in every frame (its amodal mask), hidden parts and "
        "fully hidden frames included, from its visible mask and the scene's depth. Needs the "
        "diffusion-vas-amodal-segmentation model. The result keeps every visible pixel."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "predict"
    RETURN_TYPES = ("MASK", "IMAGE", "MASK")
    RETURN_NAMES = ("amodal_masks", "probability", "agreement")
    OUTPUT_TOOLTIPS = (
        "The full shapes (amodal masks) at your footage's size, one per visible mask. With samples above 1: "
        "consensus gives one per frame, all gives every sample (object by object, then sample by sample).",
        "How sure the model is, per pixel (bright = object), for previews and soft mattes.",
        "Where the samples agree: white where all cover a pixel, grey where the hidden shape is uncertain. With "
        "one sample: the mask itself.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return node_inputs(
            required=(Link("model", "DIFFUSION_VAS_MODEL", MODEL_HELP["amodal"]),
                      Link("modal_masks", "MASK", "The object's visible part in every frame of depth (modal masks), "
                                                  "e.g. from Load Visible Masks or a segmentation node. "
                           + OBJECT_STACKING),
                      Link("depth", "IMAGE", "Depth of the same frames, near = bright (Pseudo-Depth or any depth "
                                             "node); normalized over the clip and resized to the masks."),
                      *_REQUIRED_WIDGETS),
            optional=(S.THRESHOLD, *_ADVANCED_WIDGETS, S.MASK_UPSCALE, S.REGION, S.SAMPLES, S.COMBINE),
            hidden=hidden_inputs(), stage="amodal")

    def predict(self, model, modal_masks, depth, threshold=S.THRESHOLD.default, mask_upscale=S.MASK_UPSCALE.default,
                region=S.REGION.default, combine=COMBINE[0], prompt=None, extra_pnginfo=None, unique_id=None,
                **widgets):
        graph = Graph.of(prompt, extra_pnginfo, unique_id)
        graph.check_checkpoints()
        model.require_stage(NODE_STAGE["AmodalMaskSVD"], "AmodalMaskSVD")
        size = processing_size(widgets)
        if not hasattr(depth, "ndim") or depth.ndim not in (3, 4):
            raise ValueError(f"depth: expected an IMAGE [frames, height, width, 3], got "
                             f"{tuple(depth.shape) if hasattr(depth, 'shape') else type(depth).__name__}.")
        graph.check_frames("modal_masks", modal_masks, "depth", depth.shape[0])
        modal = split_objects(modal_masks, depth.shape[0], "modal_masks", "depth")
        warn_empty(modal, "modal_masks")
        if tuple(depth.shape[1:3]) != size:  # depth at the processing size is a long shot's (VIDEO) depth
            check_frame_size_for_stage2(graph, tuple(modal.shape[-2:]), tuple(depth.shape[1:3]))
        depth = depth_image_frames(depth, tuple(modal.shape[-2:]), "AmodalMaskSVD", lazy=True)
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}.")
        # masks held as bool in (Load Visible Masks with a VIDEO: long shots), masks held as bool out (`BoolMask`),
        # and the soft map at the processing size: a quarter of the memory, no float copy of the shot at its size
        compact = bool_values(modal_masks) is not None or modal_masks.dtype == torch.bool
        options = sampling_options("amodal", widgets)
        with model.prepared(options, modal.shape[0], size, modal.shape[1]) as pipe:
            result = predict_amodal_masks(pipe, modal, depth, size, options, threshold,
                                          run_progress(options, modal.shape[0] * options.samples, "AmodalMaskSVD"),
                                          mask_upscale=mask_upscale, region=region, probability=not compact)
        masks, k = result.masks, result.samples
        probability = result.soft if compact else result.probability
        if k > 1 and combine == "consensus":
            masks = consensus(masks, k, modal)
            probability = probability.view(-1, k, *probability.shape[1:]).mean(dim=1)
        masks = stacked(masks, compact)
        # With one sample the agreement is the mask itself: the same tensor, not a second float copy of the clip.
        fraction = stacked(agreement(result.masks, k)) if k > 1 else masks
        # A read-only view with 3 channels, as core MaskToImage returns: no 3x copy of a 1080p/4K clip.
        probability = stacked(probability)[..., None].expand(-1, -1, -1, 3)
        return masks, probability, fraction


def check_frame_size_for_stage2(graph: Graph, masks: tuple[int, int], depth: tuple[int, int]) -> None:
    """Stage 1 resizes depth to the masks, but stage 2 needs the masks at the frames' size. When this node's depth
    is Pseudo-Depth made from the very frames a stage-2 node gets (so the depth is at their size), masks of
    another size would fail there after this node has sampled: refused here, before."""
    source = graph.source("depth")
    if masks == depth or graph.class_type(source) != "PseudoDepth":
        return
    frames = graph.link("images", source)
    for node_id, entry in graph.prompt.items():
        if entry.get("class_type") == "AmodalContentSVD" and graph.link("images", node_id) == frames:
            mask_source = graph.source("modal_masks")
            fix = (f"in {graph.title(mask_source)} connect the video frames to reference_images"
                   if graph.class_type(mask_source) == MASK_LOADER else "resize the masks to the frames")
            raise ValueError(
                f"modal_masks{graph.from_('modal_masks')} are {masks[1]}x{masks[0]} (WxH) but the video frames are "
                f"{depth[1]}x{depth[0]} (the size of the depth from {graph.title(source)}); {graph.title(node_id)} "
                f"needs the masks at the frames' size: {fix}, so they match.")


class AmodalContentSVD:
    DESCRIPTION = (
        "Diffusion-VAS stage 2: each object's full appearance, its hidden parts painted in, inside its full shape, "
        "from the frames, its visible mask and its full mask (stage 1). Needs the diffusion-vas-content-completion "
        "model."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "complete"
    RETURN_TYPES = ("IMAGE", "MASK", "VIDEO")
    RETURN_NAMES = ("amodal_rgb", "alpha", "video")
    OUTPUT_TOOLTIPS = (
        "The objects' completed colours at your footage's size (white outside the object), one per object, stacked "
        "like modal_masks; with several samples (or stage 1's samples) object by object, then sample by sample. "
        "With a VIDEO: at the model's size (width x height), for a look; the full size is in video.",
        "The objects' full shape (the full mask with every visible pixel): the alpha to composite amodal_rgb with "
        "(with a VIDEO: 0 or 1, held at one byte per pixel).",
        "The completed objects over white as a VIDEO at your footage's size, made frame by frame when it is saved "
        "(Save Video) or composited (Composite Edit's amodal_rgb): what long shots use.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return node_inputs(
            required=(Link("model", "DIFFUSION_VAS_MODEL", MODEL_HELP["content"]),
                      Link("images", "IMAGE,VIDEO", "The video frames: an IMAGE batch, or a VIDEO (Load Video, "
                                                    "Select Frames) for long shots, decoded a few frames at a time."),
                      Link("modal_masks", "MASK", "The object's visible part in every frame of images (modal "
                                                  "masks). " + OBJECT_STACKING),
                      Link("amodal_masks", "MASK", "The object's full shape in every frame (amodal masks): stage 1's "
                                                   "amodal_masks. Stage 1 with combine all gives K shapes per object; "
                                                   "shape k is completed with seed + k (samples 1 or K)."),
                      *_REQUIRED_WIDGETS),
            optional=(*_ADVANCED_WIDGETS, S.KEEP_VISIBLE_PIXELS, S.REGION, S.SAMPLES),
            hidden=hidden_inputs(), stage="content")

    def complete(self, model, images, modal_masks, amodal_masks, keep_visible_pixels=S.KEEP_VISIBLE_PIXELS.default,
                 region=S.REGION.default, prompt=None, extra_pnginfo=None, unique_id=None, **widgets):
        graph = Graph.of(prompt, extra_pnginfo, unique_id)
        graph.check_checkpoints()
        model.require_stage(NODE_STAGE["AmodalContentSVD"], "AmodalContentSVD")
        size = processing_size(widgets)
        video = is_video(images)
        if video:  # a long shot: decoded a few frames at a time, the colours given as a VIDEO rendered on demand
            fps = frame_rate(images)
            images = frame_sequence(images, "images")
            frames, image_size = images.count, tuple(images.size)
        else:
            images = frames_of(images, "images", 3)
            frames, image_size, fps = images.shape[0], tuple(images.shape[1:3]), DEFAULT_VIDEO_FPS
        graph.check_frames("modal_masks", modal_masks, "images", frames)
        graph.check_frames("amodal_masks", amodal_masks, "images", frames)
        modal = split_objects(modal_masks, frames, "modal_masks", "images")
        amodal = split_objects(amodal_masks, frames, "amodal_masks", "images")
        check_same_size(modal, image_size, "modal_masks" + graph.from_("modal_masks"), "images")
        if amodal.shape[0] % modal.shape[0]:
            raise ValueError(f"amodal_masks{graph.from_('amodal_masks')} holds {amodal.shape[0]} object(s) and "
                             f"modal_masks{graph.from_('modal_masks')} {modal.shape[0]} (of {frames} frames each); "
                             "give one amodal mask sequence per modal mask sequence (or K per object: stage 1 with "
                             "combine all).")
        warn_empty(amodal, "amodal_masks")
        warn_visible_as_full(graph, modal, amodal, "AmodalContentSVD")
        options = sampling_options("content", widgets)
        rows = modal.shape[0] * completion_samples(hypotheses_per_object(amodal.shape[0], modal.shape[0]),
                                                   options.samples)
        with model.prepared(options, modal.shape[0], size, frames, rows // modal.shape[0]) as pipe:
            stream = complete_content_stream(pipe, images, modal, amodal, size, options,
                                             run_progress(options, rows, "AmodalContentSVD"),
                                             keep_visible_pixels=keep_visible_pixels, region=region)
        if video:
            # the colours at the processing size (the model's own output) as the IMAGE; at your footage's size
            # only in the VIDEO, part by part; alpha held as bool
            rgb = stacked(stream.output.processed).div_(255)
            alpha = stacked(full_shapes(modal, amodal, stream.samples), compact=True)
            return rgb, alpha, content_video(stream, fps)
        full, shape = stream.whole()
        return stacked(full), stacked(shape), objects_video(full, shape, fps)


def full_shapes(modal: torch.Tensor, amodal: torch.Tensor, samples: int) -> torch.Tensor:
    """Stage 2's alpha ``[N * K, T, H, W]`` bool from the masks (no colours needed): each hypothesis's full mask
    OR its object's visible mask; stage 1's masks contain the visible ones already, and are then returned as they
    are (no copy of a long shot's masks)."""
    n, m = modal.shape[0], amodal.shape[0] // modal.shape[0]
    per_object = amodal.view(n, m, *amodal.shape[1:])
    # checked a few frames at a time: the whole shot's temporaries (~amodal, the AND) were 1.9 GB at 1080p x 480
    parts = chunks(amodal.shape[1], frame_pixels=amodal.shape[-2] * amodal.shape[-1])
    if any(bool((modal[:, p].unsqueeze(1) & ~per_object[:, :, p]).view(torch.uint8).amax() > 0) for p in parts):
        per_object = per_object | modal.unsqueeze(1)
    if m == samples:
        return per_object.reshape(n * m, *amodal.shape[1:])
    return per_object.expand(n, samples, *amodal.shape[1:]).reshape(n * samples, *amodal.shape[1:])


NODE_CLASS_MAPPINGS = {"AmodalMaskSVD": AmodalMaskSVD, "AmodalContentSVD": AmodalContentSVD}
