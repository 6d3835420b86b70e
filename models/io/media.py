"""Reading and writing frames: image folders and video files (video through PyAV, a dependency; ComfyUI has it too).

Frames are ``[T, H, W, 3]`` uint8 tensors.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..base.errors import PackError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif")


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers (``frame_2`` before ``frame_10``)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` in natural name order."""
    return sorted((p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=lambda p: natural_key(p.name))


def select_range(items: list, start: int, count: int, step: int, what: str) -> list:
    """``items[start::step]`` limited to ``count`` (0: all), with errors that say which setting is wrong."""
    if start < 0 or count < 0 or step < 1:
        raise ValueError(f"Need start >= 0, count >= 0 and step >= 1; got {start}, {count}, {step}.")
    if start >= len(items):
        raise ValueError(f"start {start} is past the last of the {len(items)} {what}; use 0..{len(items) - 1}.")
    chosen = items[start::step]
    return chosen[:count] if count else chosen


def frame_rate(source) -> float | None:
    """Frames per second of a video file (its stream's average rate); None for a folder of images, which has none."""
    path = Path(source).expanduser()
    if not (path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS):
        return None
    av = _require_av("read video files")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except (av.FFmpegError, IndexError) as err:
        raise ValueError(f"Cannot read the frame rate of {path} ({err}); convert it to MP4/H.264.") from err
    return float(rate) if rate else None


def output_frame_rate(source_rate: float | None, every: int, default: float) -> float:
    """Frame rate of written videos: the source's rate divided by the frame skip ``every`` (so a result plays as
    long as the source), or ``default`` when the source has no rate (image folders)."""
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}.")
    return source_rate / every if source_rate else float(default)


def write_png_frames(folder: Path, frames: torch.Tensor) -> list[Path]:
    """Writes ``[T, H, W, 3]`` or ``[T, H, W]`` uint8 frames as ``00000.png``, ``00001.png``, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames.cpu().numpy()):
        paths.append(folder / f"{index:05d}.png")
        Image.fromarray(frame).save(paths[-1])
    return paths


def write_animation(path, frames: torch.Tensor, fps: float = 8, crf: int = 16) -> Path:
    """Writes uint8 frames as an animated GIF (Pillow) or an H.264 MP4 (PyAV, quality ``crf``), by the extension.

    ``fps`` may be fractional (29.97 / 2); GIF frame times are whole milliseconds."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [np.asarray(f) for f in frames.cpu().numpy()]
    if path.suffix.lower() == ".gif":
        images = [Image.fromarray(a) for a in arrays]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path
    if path.suffix.lower() == ".mp4":
        _encode_mp4(path, arrays, fps, crf)
        return path
    raise ValueError(f"Unsupported animation format {path.suffix!r}; use .gif or .mp4.")


def _read_rgb(file: Path) -> np.ndarray:
    try:
        with Image.open(file) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise ValueError(f"Cannot read image {file} ({err}); replace it or remove it from the folder.") from err


def _encode_mp4(path: Path, arrays: list[np.ndarray], fps: float, crf: int) -> None:
    av = _require_av("write MP4 files")
    height, width = arrays[0].shape[:2]
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        stream.pix_fmt, stream.options = "yuv420p", {"crf": str(crf)}
        for array in arrays:
            rgb = np.ascontiguousarray(np.broadcast_to(array[..., None], (*array.shape, 3)) if array.ndim == 2 else array)
            frame = av.VideoFrame.from_ndarray(rgb[: stream.height, : stream.width], format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def pyav_available() -> bool:
    """Whether PyAV (video files) can be imported."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _require_av(purpose: str):
    try:
        import av
    except ImportError as err:
        raise PackError(f"PyAV is needed to {purpose}: pip install av (a dependency of this pack; ComfyUI has "
                           "it too).") from err
    return av
