"""``CompositeEdit`` node: ComfyUI IMAGE/MASK batches in, ``models.editing.composite.composite_edit``, IMAGE/MASK out.

ComfyUI has no object dimension: several objects travel as one batch of ``N * T`` frames stacked object by
object (object 0's frames 0..T-1, then object 1's, ...), where ``T`` is the number of frames of ``images``.
"""

from __future__ import annotations

import re

import torch

from ..models.editing.composite import MODES, composite_edit
from .adapters import unstack_objects
from .preflight import Graph, hidden_inputs, warn_visible_as_full

_STACKING = "For several objects, stack N*T frames object by object (object 0's T frames, then object 1's, ...)."
_HEX_COLOUR = re.compile(r"#?([0-9a-fA-F]{6})")


class CompositeEdit:
    DESCRIPTION = (
        "Edits the video with the recovered objects. reveal: the completed object in front of what hid it. "
        "xray: the hidden part shown see-through with an outline, for review. remove_occluder: what hides the object "
        "replaced by the background (a plate you give, or one built from the clip), the completed object on top. "
        "layer: the object alone, colour + alpha, to composite elsewhere. move: the object shifted, the hole it "
        "leaves filled like remove_occluder. Several objects are drawn back to front in the order stacked (first = "
        "farthest)."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "composite"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("images", "mask")
    OUTPUT_TOOLTIPS = (
        "The edited frames at the input size (layer: the objects' completed colours).",
        "reveal/layer: the objects' alpha; xray: the hidden parts; remove_occluder/move: every repainted pixel.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The original video frames (T frames)."}),
                "amodal_rgb": ("IMAGE", {
                    "tooltip": "The objects' completed colours from stage 2 (amodal_rgb), T frames per object. "
                    + _STACKING}),
                "amodal_masks": ("MASK", {
                    "tooltip": "The objects' full shapes (visible + hidden; stage 1's or stage 2's alpha), T frames "
                    "per object. " + _STACKING}),
                "mode": (list(MODES), {
                    "default": "reveal",
                    "tooltip": "reveal, xray, remove_occluder, layer or move (see the node description)."}),
            },
            "optional": {
                "modal_masks": ("MASK", {
                    "tooltip": "The objects' visible parts, T frames per object (xray, move). " + _STACKING}),
                "occluder_masks": ("MASK", {
                    "tooltip": "What hides the objects (remove_occluder; optional for xray and move). T frames, "
                    "or K*T frames for K occluders stacked occluder by occluder (they are united)."}),
                "background": ("IMAGE", {
                    "tooltip": "The scene without occluder or object (1 or T frames), e.g. from an inpainting node, "
                    "for remove_occluder and move. Without it a clean plate is built from the clip: each pixel as "
                    "seen in the frames where nothing covers it, a smooth fill where it is never seen (connect one "
                    "when the occluder never moves)."}),
                "opacity": ("FLOAT", {
                    "default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                    "tooltip": "xray: how solid the hidden part is drawn (0 invisible, 1 opaque)."}),
                "feather": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": 64.0, "step": 0.5,
                    "tooltip": "Softens every edge over about this many pixels (0: hard edges). Raise it when a "
                    "hard edge or a fringe of the occluder shows."}),
                "offset_x": ("INT", {
                    "default": 0, "min": -8192, "max": 8192, "step": 1,
                    "tooltip": "move: pixels to shift the objects right (negative: left)."}),
                "offset_y": ("INT", {
                    "default": 0, "min": -8192, "max": 8192, "step": 1,
                    "tooltip": "move: pixels to shift the objects down (negative: up)."}),
                "outline_color": ("STRING", {
                    "default": "#00FF00", "tooltip": "xray: outline colour as hex RGB, e.g. #00FF00."}),
                "outline_width": ("INT", {
                    "default": 2, "min": 0, "max": 64, "step": 1,
                    "tooltip": "xray: outline width in pixels around the full object shape; 0 = no outline."}),
            },
            "hidden": hidden_inputs(),
        }

    def composite(self, images, amodal_rgb, amodal_masks, mode, modal_masks=None, occluder_masks=None,
                  background=None, opacity=0.5, feather=0.0, offset_x=0, offset_y=0, outline_color="#00FF00",
                  outline_width=2, prompt=None, extra_pnginfo=None, unique_id=None):
        graph = Graph.of(prompt, extra_pnginfo, unique_id)
        graph.check_checkpoints()

        def split(batch, name):
            if batch is None:
                return None
            if torch.is_tensor(images) and images.ndim == 4:
                graph.check_frames(name, batch, "images", images.shape[0])
            return unstack_objects(batch, images.shape[0], name, "images")

        amodal, modal = split(amodal_masks, "amodal_masks"), split(modal_masks, "modal_masks")
        if modal is not None and mode in ("xray", "move"):
            warn_visible_as_full(graph, modal, amodal, "CompositeEdit")
        image, mask = composite_edit(
            images,
            split(amodal_rgb, "amodal_rgb"),
            amodal,
            mode,
            modal_masks=modal,
            occluder_masks=split(occluder_masks, "occluder_masks"),
            background=background,
            opacity=opacity,
            feather=feather,
            offset=(offset_x, offset_y),
            outline_color=parse_colour(outline_color),
            outline_width=outline_width,
        )
        return image, mask


def parse_colour(text: str) -> tuple[float, float, float]:
    """``"#RRGGBB"`` (the ``#`` is optional) -> RGB in 0..1."""
    match = _HEX_COLOUR.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"outline_color must be a hex colour like #00FF00, got {text!r}.")
    digits = match.group(1)
    return tuple(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))


NODE_CLASS_MAPPINGS = {"CompositeEdit": CompositeEdit}
