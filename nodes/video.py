"""VIDEO in and out for long shots: frames decoded and results rendered a few at a time, never held whole.

ComfyUI's core ``Load Video`` gives a VIDEO (a file); ``Get Video Components`` would turn it into a float32 IMAGE
of every frame (17.9 GB for 30 s of 1080p at 24 fps). The pack's nodes read a VIDEO themselves instead
(`frame_sequence`: decoded in order, a few frames at a time, each pass anew), and hand results on as a VIDEO
(`FrameVideo`) that renders its frames only when something asks for them: ``Save Video`` calls `save_to`, which
encodes them part by part as they are made. `SelectVideoFrames` takes ``start_frame``/``frame_count``/
``every_nth`` of a VIDEO once, for every node that reads it (and for Load Visible Masks, which applies the same
selection to the mask files).

Outside ComfyUI (tests, scripts) `FrameVideo` is a plain class with the same methods.
"""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction
from typing import Callable, Iterator

import numpy as np
import torch

from ..models import settings as S
from ..models.settings import Link
from .inputs import node_inputs
from ..models import VideoFrames
from ..models import MP4_CRF, MP4_PRESET
from ..models import to_uint8
from ..models import chunks

logger = logging.getLogger(__name__)

try:  # ComfyUI's VIDEO interface, from the API version ComfyUI's maintainers advise packs to import
    from comfy_api.v0_0_2 import Input as _ComfyInput, Types as _ComfyTypes
    _VideoBase, VideoComponents = _ComfyInput.Video, _ComfyTypes.VideoComponents
except ImportError:  # ComfyUI absent: the same methods on a plain base
    _VideoBase, VideoComponents = object, None

COLOR_SPACE, BIT_DEPTH = "sRGB", 8  # what the pack's videos hold: 8-bit sRGB frames


class FrameVideo(_VideoBase):
    """A VIDEO whose frames come part by part from a `FrameSequence` (``read(parts)`` -> ``[t, H, W, 3]`` uint8 or
    float 0..1): a file's selected frames, or a stage or edit rendered on demand.

    ``frames`` is what the pack's nodes read (`frame_sequence`); ``content``: the stage-2 result it renders (a
    `models.ContentStream`), when it is one, so Composite Edit takes the objects' colours from it directly."""

    def __init__(self, frames, fps, content=None):
        self.frames, self.fps, self.content = frames, Fraction(fps).limit_denominator(1001), content

    # -- ComfyUI's VideoInput -----------------------------------------------------------------------------------

    def get_dimensions(self) -> tuple[int, int]:
        height, width = self.frames.size
        return width, height

    def get_frame_count(self) -> int:
        return self.frames.count

    def get_frame_rate(self) -> Fraction:
        return self.fps

    def get_duration(self) -> float:
        return float(self.frames.count / self.fps)

    def get_container_format(self) -> str:
        return "mp4"

    def get_color_space(self) -> str:
        return COLOR_SPACE

    def get_bit_depth(self) -> int:
        return BIT_DEPTH

    def as_trimmed(self, start_time: float | None = 0, duration: float | None = 0, strict_duration: bool = False
                   ) -> "FrameVideo | None":
        """The frames shown from ``start_time`` seconds (negative: counted from the end) for ``duration`` seconds
        (0 = to the end), as a new VIDEO, nothing rendered: frame ``i`` is shown at ``i / fps``. None, as core's
        videos answer, when no frame is left or (``strict_duration``) fewer seconds than ``duration`` remain."""
        start, length, total = float(start_time or 0), float(duration or 0), self.get_duration()
        if start < 0:
            start = max(total + start, 0.0)
        first = math.ceil(start * self.fps - 1e-9)
        stop = self.frames.count if not length else min(self.frames.count, math.ceil((start + length) * self.fps
                                                                                     - 1e-9))
        if stop <= first or (strict_duration and length and (stop - first) / self.fps < length - 1e-9):
            return None
        return FrameVideo(window(self.frames, first, stop), self.fps,
                          None if self.content is None else _WindowContent(self.content, first, stop))

    def get_components(self):
        """Every frame as one float32 IMAGE (what ``Get Video Components`` asks for: the whole clip in memory)."""
        logger.warning("Diffusion-VAS: a node asked for every frame of a %d-frame video at once (%.1f GB as float); "
                       "connect Save Video or the pack's nodes to keep long shots streamed.", self.frames.count,
                       self.frames.count * self.frames.size[0] * self.frames.size[1] * 12 / 1e9)
        images = torch.cat([to_float(part) for part in self.frames.read(self.parts())])
        if VideoComponents is None:
            return images, self.fps
        return VideoComponents(images=images, frame_rate=self.fps)

    def save_to(self, path, format="auto", codec="auto", metadata: dict | None = None, bit_depth: int | None = None,
                crf: float | None = None, color_space: str | None = None):
        """Encodes the frames as 8-bit H.264 in MP4 (libx264 at the command line's preview settings; ``crf`` as
        given), part by part as they are rendered (no whole-clip tensor)."""
        import av

        if str(getattr(format, "value", format)) not in ("auto", "mp4"):
            raise ValueError(f"Diffusion-VAS videos are saved as MP4; got format {format!r}: choose mp4 (or auto).")
        if str(getattr(codec, "value", codec)) not in ("auto", "h264"):
            raise ValueError(f"Diffusion-VAS videos are saved as H.264; got codec {codec!r}: choose h264 (or auto).")
        if bit_depth not in (None, BIT_DEPTH):
            raise ValueError(f"Diffusion-VAS videos are {BIT_DEPTH}-bit; got bit_depth {bit_depth}: leave it unset.")
        if color_space not in (None, "auto", COLOR_SPACE):
            raise ValueError(f"Diffusion-VAS videos are {COLOR_SPACE}; got color_space {color_space!r}: choose "
                             f"{COLOR_SPACE} (or auto).")
        options = {"movflags": "use_metadata_tags"}
        kwargs = {} if isinstance(path, str) else {"format": "mp4"}
        with av.open(path, mode="w", options=options, **kwargs) as container:
            for key, value in (metadata or {}).items():
                container.metadata[key] = json.dumps(value)
            stream = container.add_stream("libx264", rate=self.fps)
            height, width = self.frames.size
            stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
            stream.options = {"crf": f"{MP4_CRF if crf is None else crf:g}", "preset": MP4_PRESET}
            for part in self.frames.read(self.parts()):
                for frame in to_uint8(part).numpy():
                    rgb = np.ascontiguousarray(frame[: stream.height, : stream.width])
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            container.mux(stream.encode())

    # -- the pack's own reading ---------------------------------------------------------------------------------

    def parts(self) -> list[slice]:
        height, width = self.frames.size
        return chunks(self.frames.count, frame_pixels=height * width)


class Rendered:
    """A `FrameSequence` made by ``render(parts)`` (an iterator of ``[t, H, W, 3]`` frames for those parts)."""

    def __init__(self, count: int, size: tuple[int, int], render: Callable[[list[slice]], Iterator[torch.Tensor]],
                 name: str = "video"):
        self.count, self.size, self.render, self.name = count, tuple(size), render, name

    def read(self, parts):
        return self.render(list(parts))


class _Window:
    """Frames ``[first, stop)`` of a `FrameSequence`, read from it."""

    def __init__(self, frames, first: int, stop: int):
        self.frames, self.first = frames, first
        self.count, self.size, self.name = stop - first, tuple(frames.size), getattr(frames, "name", "video")

    def read(self, parts):
        return self.frames.read([_shifted(p, self.first) for p in parts])


def _shifted(part: slice, by: int) -> slice:
    return slice(part.start + by, part.stop + by)


def window(frames, first: int, stop: int):
    """Frames ``[first, stop)`` of a `FrameSequence`; a video file's stay a `VideoFrames` (masks follow them)."""
    if first == 0 and stop == frames.count:
        return frames
    if isinstance(frames, VideoFrames):
        return frames.select(first, stop - first, 1)
    return _Window(frames, first, stop)


class _WindowContent:
    """Frames ``[first, stop)`` of a stage-2 result with `models.ContentStream`'s ``parts``."""

    def __init__(self, content, first: int, stop: int):
        self.content, self.first = content, first
        self.rows, self.count, self.size = content.rows, stop - first, tuple(content.size)

    def parts(self, parts, into=None):
        inner = None if into is None else (lambda part: into(_shifted(part, -self.first)))
        for part, rgb, alpha in self.content.parts([_shifted(p, self.first) for p in parts], inner):
            yield _shifted(part, -self.first), rgb, alpha


def to_float(frames: torch.Tensor) -> torch.Tensor:
    return frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()


def is_video(value) -> bool:
    """True for a ComfyUI VIDEO (anything with ``get_stream_source`` or this pack's `FrameVideo`)."""
    return isinstance(value, FrameVideo) or hasattr(value, "get_stream_source")


def frame_sequence(video, name: str):
    """The frames of a VIDEO as a `FrameSequence`, decoded when read: the pack's own videos as they are, any
    other (core Load Video, other packs) from its stream source (a file or bytes), every frame."""
    if isinstance(video, FrameVideo):
        return video.frames
    if not hasattr(video, "get_stream_source"):
        raise ValueError(f"{name}: expected IMAGE frames or a VIDEO, got {type(video).__name__}.")
    frames = VideoFrames(video.get_stream_source(), name=f"{name} (VIDEO)")
    start, duration = video.get_active_trim_window() if hasattr(video, "get_active_trim_window") else (0.0, 0.0)
    if start or duration:  # Load Video's start_time / duration (ComfyUI 0.3x): the file's frames in that window
        try:
            frames = frames.within(start, duration)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
    return frames


DEFAULT_VIDEO_FPS = 8  # videos made from IMAGE frames (which carry no rate): the rate the model is made for


def frame_rate(video) -> Fraction:
    """The VIDEO's frames per second (`DEFAULT_VIDEO_FPS` when it has none)."""
    try:
        rate = video.get_frame_rate()
    except (AttributeError, ValueError, TypeError):
        rate = None
    return Fraction(rate).limit_denominator(1001) if rate else Fraction(DEFAULT_VIDEO_FPS)


def over_white(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Objects ``[R, t, H, W, 3]`` (float 0..1) with their alpha ``[R, t, H, W]`` drawn over white, back to front
    (first = farthest): ``[t, H, W, 3]`` uint8. One object is its colours as they are (white outside it)."""
    if rgb.shape[0] == 1:
        return to_uint8(rgb[0])
    out = torch.ones(rgb.shape[1:])
    for colours, shape in zip(rgb, alpha):
        out.lerp_(colours.float(), shape.unsqueeze(-1).float())
    return to_uint8(out)


def content_video(stream, fps) -> FrameVideo:
    """Stage 2's completed objects (a `models.ContentStream`) as a VIDEO, rendered part by part when read."""
    def render(parts):
        for _, rgb, alpha in stream.parts(parts):
            yield over_white(rgb, alpha)

    return FrameVideo(Rendered(stream.count, stream.size, render, "completed objects"), fps, content=stream)


def objects_video(rgb: torch.Tensor, alpha: torch.Tensor, fps) -> FrameVideo:
    """In-memory stage-2 results ``[R, T, H, W, 3]`` / ``[R, T, H, W]`` as the same VIDEO."""
    def render(parts):
        for part in parts:
            yield over_white(rgb[:, part], alpha[:, part])

    return FrameVideo(Rendered(rgb.shape[1], tuple(rgb.shape[2:4]), render, "completed objects"), fps,
                      content=_InMemoryContent(rgb, alpha))


def frames_video(images: torch.Tensor, fps) -> FrameVideo:
    """An IMAGE batch ``[T, H, W, 3]`` as a VIDEO (encoded part by part when saved)."""
    sequence = Rendered(images.shape[0], tuple(images.shape[1:3]),
                        lambda parts: (images[part] for part in parts), "frames")
    return FrameVideo(sequence, fps)


class _InMemoryContent:
    """Whole-clip stage-2 results with `models.ContentStream`'s ``parts`` (Composite Edit reads either)."""

    def __init__(self, rgb: torch.Tensor, alpha: torch.Tensor):
        self.rgb, self.alpha = rgb, alpha
        self.rows, self.count, self.size = rgb.shape[0], rgb.shape[1], tuple(rgb.shape[2:4])

    def parts(self, parts, into=None):
        for part in parts:
            yield part, self.rgb[:, part], self.alpha[:, part]


class SelectVideoFrames:
    DESCRIPTION = (
        "Takes some of a video's frames (from start_frame, every n-th, frame_count of them) without decoding it: "
        "connect its output to every Diffusion-VAS node that reads the frames, and to Load Visible Masks' "
        "reference_images, which then loads the matching masks. For long shots: the frames are decoded a few at a "
        "time by the nodes that read them, never all at once."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "select"
    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    OUTPUT_TOOLTIPS = ("The selected frames as a VIDEO (at the source rate divided by every_nth).",)

    @classmethod
    def INPUT_TYPES(cls):
        return node_inputs(required=(Link("video", "VIDEO", "The shot, e.g. from core Load Video."),
                                     S.SELECT_START, S.SELECT_COUNT, S.SELECT_EVERY))

    def select(self, video, start_frame=0, frame_count=0, every_nth=3):
        if isinstance(video, FrameVideo) and isinstance(video.frames, VideoFrames):
            source = video.frames
        else:
            source = frame_sequence(video, "video")
            if not isinstance(source, VideoFrames):
                raise ValueError("video: Select Frames takes a video file's frames (e.g. from Load Video), not "
                                 "frames the pack renders; select them before the stage nodes.")
        try:
            chosen = source.select(start_frame, frame_count, every_nth)
        except ValueError as err:
            raise ValueError(f"start_frame/frame_count/every_nth: {err}") from err
        rate = Fraction(source.rate).limit_denominator(1001) if source.rate else frame_rate(video)
        logger.info("SelectVideoFrames: %d of %d frames (from %d, every %d)", chosen.count, source.count,
                    start_frame, every_nth)
        return (FrameVideo(chosen, rate / every_nth if source.rate else rate),)


NODE_CLASS_MAPPINGS = {"SelectVideoFrames": SelectVideoFrames}
