"""``CompositeEdit`` node: ComfyUI IMAGE/MASK batches in, ``models.editing.composite.composite_edit``, IMAGE/MASK out.

ComfyUI has no object dimension: several objects travel as one batch of ``N * T`` frames stacked object by
object (object 0's frames 0..T-1, then object 1's, ...), where ``T`` is the number of frames of ``images``.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from ..models import settings as S
from ..models.settings import Link
from .inputs import node_inputs
from ..models import composite_edit, composite_masks, composite_stream, shot_background
from ..models import TensorFrames
from .adapters import OBJECT_STACKING, unstack_objects
from .bool_mask import as_mask
from .video import (DEFAULT_VIDEO_FPS, FrameVideo, Rendered, frame_rate, frame_sequence, frames_video, is_video,
                    to_float, to_uint8)
from .preflight import Graph, hidden_inputs, warn_visible_as_full

_HEX_COLOUR = re.compile(r"#?([0-9a-fA-F]{6})")
PREVIEW_FRAMES = 16  # with a VIDEO, the images output shows this many frames spread over the shot
PREVIEW_WIDTH = 512  # at most this wide


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
    RETURN_TYPES = ("IMAGE", "MASK", "VIDEO")
    RETURN_NAMES = ("images", "mask", "video")
    OUTPUT_TOOLTIPS = (
        "The edited frames at the input size (layer: the objects' completed colours). With a VIDEO: a preview of "
        f"up to {PREVIEW_FRAMES} frames spread over the shot, at most {PREVIEW_WIDTH} px wide; the whole edit is in "
        "video.",
        "reveal/layer: the objects' alpha; xray: the hidden parts; remove_occluder/move: every repainted pixel. "
        "With a VIDEO: 0 or 1 (on above one half), held at one byte per pixel.",
        "The edit as a VIDEO at the input size, made frame by frame when it is saved: connect Save Video. What long "
        "shots use (no frame of the shot is held whole).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return node_inputs(
            required=(Link("images", "IMAGE,VIDEO", "The original video frames (T frames): an IMAGE batch, or a VIDEO "
                                                    "(Load Video, Select Frames) for long shots."),
                      Link("amodal_rgb", "IMAGE,VIDEO", "The objects' completed colours from stage 2, T frames per "
                                                        "object: its amodal_rgb, or for long shots its video (the "
                                                        "colours are then made part by part). " + OBJECT_STACKING),
                      Link("amodal_masks", "MASK", "The objects' full shapes (visible + hidden; stage 1's or stage "
                                                   "2's alpha), T frames per object. " + OBJECT_STACKING),
                      S.MODE),
            optional=(Link("modal_masks", "MASK", "The objects' visible parts, T frames per object (xray, move). "
                           + OBJECT_STACKING),
                      Link("occluder_masks", "MASK", "What hides the objects (remove_occluder; optional for xray and "
                                                     "move). T frames, or K*T frames for K occluders stacked occluder "
                                                     "by occluder (they are united)."),
                      Link("background", "IMAGE", "The scene without occluder or object (1 or T frames), e.g. from an "
                                                  "inpainting node, for remove_occluder and move. Without it a clean "
                                                  "plate is built from the clip: each pixel as seen in the frames "
                                                  "where nothing covers it, a smooth fill where it is never seen "
                                                  "(connect one when the occluder never moves)."),
                      S.OPACITY, S.FEATHER, S.OFFSET_X, S.OFFSET_Y, S.OUTLINE_COLOR, S.OUTLINE_WIDTH),
            hidden=hidden_inputs())

    def composite(self, images, amodal_rgb, amodal_masks, mode, modal_masks=None, occluder_masks=None,
                  background=None, opacity=0.5, feather=0.0, offset_x=0, offset_y=0, outline_color="#00FF00",
                  outline_width=2, prompt=None, extra_pnginfo=None, unique_id=None):
        graph = Graph.of(prompt, extra_pnginfo, unique_id)
        graph.check_checkpoints()
        streamed = is_video(images)
        fps = frame_rate(images) if streamed else (frame_rate(amodal_rgb) if is_video(amodal_rgb)
                                                   else DEFAULT_VIDEO_FPS)
        frames = frame_sequence(images, "images") if streamed else TensorFrames(images, "images")
        count = frames.count

        def split(batch, name):
            if batch is None:
                return None
            if torch.is_tensor(batch):
                graph.check_frames(name, batch, "images", count)
            return unstack_objects(batch, count, name, "images")

        amodal, modal = split(amodal_masks, "amodal_masks"), split(modal_masks, "modal_masks")
        if modal is not None and mode in ("xray", "move"):
            warn_visible_as_full(graph, modal, amodal, "CompositeEdit")
        edit = dict(modal_masks=modal, occluder_masks=split(occluder_masks, "occluder_masks"), feather=feather)
        look = dict(opacity=opacity, offset=(offset_x, offset_y), outline_color=parse_colour(outline_color),
                    outline_width=outline_width)
        if not streamed and not is_video(amodal_rgb):
            image, mask = composite_edit(images, split(amodal_rgb, "amodal_rgb"), amodal, mode, background=background,
                                         **edit, **look)
            return image, mask, frames_video(image, fps)
        colours = object_colours(amodal_rgb, count, split)
        if background is None:
            background = shot_background(frames, amodal, mode, **edit)

        def render(parts):
            for _, image, _ in composite_stream(frames, colours, amodal, mode, background=background, parts=parts,
                                                **edit, **look):
                yield to_uint8(image)

        video = FrameVideo(Rendered(count, frames.size, render, "edit"), fps)
        if not streamed:  # IMAGE frames with the colours as a VIDEO: the whole edit as IMAGE too
            image = torch.cat([to_float(part) for part in render(video.parts())])
            mask = torch.cat([m for _, m in composite_masks((count, *frames.size), amodal, mode,
                                                            offset=look["offset"], **edit)])
            return image, mask, video
        mask = torch.empty(count, *frames.size, dtype=torch.bool)
        for part, soft in composite_masks((count, *frames.size), amodal, mode, offset=look["offset"], **edit):
            torch.ge(soft, 0.5, out=mask[part])
        return preview(render, count, frames.size), as_mask(mask), video


def preview(render, count: int, size: tuple[int, int]) -> torch.Tensor:
    """``[P, h, w, 3]`` float: `PREVIEW_FRAMES` frames of a rendered edit spread over the shot, `PREVIEW_WIDTH` px
    wide at most (a look at a long shot's edit without the cost of every frame)."""
    shown = min(count, PREVIEW_FRAMES)
    chosen = sorted({round(i * (count - 1) / max(shown - 1, 1)) for i in range(shown)})
    height, width = size
    scale = min(1.0, PREVIEW_WIDTH / width)
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    out = []
    for frame in render([slice(i, i + 1) for i in chosen]):
        x = to_float(frame).permute(0, 3, 1, 2)
        if small != (height, width):
            x = F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False)
        out.append(x.permute(0, 2, 3, 1))
    return torch.cat(out).clamp_(0, 1)


def object_colours(amodal_rgb, count: int, split):
    """``colours(parts)`` for `composite_stream`: from stage 2's VIDEO (its result, rendered part by part), another
    VIDEO (one object, decoded), or an IMAGE batch of N x T frames."""
    content = getattr(amodal_rgb, "content", None)
    if content is not None:
        return lambda parts: (rgb for _, rgb, _ in content.parts(parts))
    if is_video(amodal_rgb):
        sequence = frame_sequence(amodal_rgb, "amodal_rgb")
        if sequence.count != count:
            raise ValueError(f"amodal_rgb has {sequence.count} frames but images has {count}; give stage 2's video "
                             "of the same frames.")
        return lambda parts: (to_float(part)[None] for part in sequence.read(parts))
    return split(amodal_rgb, "amodal_rgb")


def parse_colour(text: str) -> tuple[float, float, float]:
    """``"#RRGGBB"`` (the ``#`` is optional) -> RGB in 0..1."""
    match = _HEX_COLOUR.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"outline_color must be a hex colour like #00FF00, got {text!r}.")
    digits = match.group(1)
    return tuple(int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))


NODE_CLASS_MAPPINGS = {"CompositeEdit": CompositeEdit}
