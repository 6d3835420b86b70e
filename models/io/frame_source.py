"""Frames read lazily from a video file or a folder of images, as `base.sequences.FrameSequence`.

A 30-second 1080p shot is 720 frames, 4.5 GB as uint8 RGB: it is never held. A `VideoFrames` decodes the file in
order with PyAV (frame-threaded), applies ``start``/``count``/``every`` while decoding (frames that are not
selected are decoded, as a video needs, but never converted or kept) and stops after the last selected frame;
every ``read`` pass decodes again. An `ImageFolderFrames` reads one image per frame when it is asked for. Both
know their frame count, size and source frame names before anything is decoded: the video's count comes from
its packets (demuxing reads no picture), checked again while decoding.

Frames are ``[t, H, W, 3]`` uint8 tensors.
"""

from __future__ import annotations

import copy
import io
from fractions import Fraction
import queue
import threading
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, _read_rgb, _require_av, image_files, select_range
from ..base.sequences import check_parts


class VideoFrames:
    """A video file's selected frames (``frames[start::every]``, at most ``count``; 0 = to the end).

    Attributes: ``count``, ``size`` ``(H, W)``, ``names`` (the zero-padded source frame index of each selected
    frame), ``rate`` (the stream's frames per second, or None), ``indices`` (source frame indices)."""

    def __init__(self, path, start: int = 0, count: int = 0, every: int = 1, name: str | None = None):
        if isinstance(path, io.BytesIO):  # e.g. ComfyUI's VIDEO from an upload: every pass opens its own view
            self.path, self._data = Path("<in-memory video>"), path.getvalue()
        else:
            self.path, self._data = Path(path).expanduser(), None
        self.name = name or f"--frames {self.path}"
        av = _require_av("read video files")
        try:
            with av.open(self._source()) as container:
                stream = container.streams.video[0]
                self.size = (stream.codec_context.height, stream.codec_context.width)
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                self.rate = float(rate) if rate else None
                times = [packet.pts for packet in container.demux(stream) if packet.size]
                time_base = stream.time_base
        except (av.FFmpegError, IndexError) as err:
            raise ValueError(f"Cannot read video {self.path} ({err}); convert it to MP4/H.264 or a folder of "
                             "PNGs.") from err
        total = len(times)
        if None in times or not time_base:  # no timestamps (raw streams): frames evenly spaced at the rate
            times, time_base = list(range(total)), Fraction(1) / Fraction(rate or 1)
        else:
            times.sort()  # packets come in decoding order, frames in presentation order
        if total == 0 or not all(self.size):
            raise ValueError(f"Video {self.path} has no frames; check the file.")
        self.total = total
        self._pts, self._time_base = times, time_base  # presentation times, for trim windows in seconds
        self.indices = select_range(list(range(total)), start, count, every, f"frames of {self.path}")
        self.count = len(self.indices)
        self.names = [f"{i:05d}" for i in self.indices]

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        """Decodes the file once, in order, yielding ``[t, H, W, 3]`` uint8 per part (parts may leave gaps: the
        frames between are decoded, never converted)."""
        parts = list(check_parts(parts, self.count, self.name))
        if not parts:
            return
        av = _require_av("read video files")
        wanted = iter([self.indices[i] for part in parts for i in range(part.start, part.stop)])
        target = next(wanted)
        batch: list[np.ndarray] = []
        part_iter = iter(parts)
        part = next(part_iter)
        try:
            with av.open(self._source()) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for index, frame in enumerate(container.decode(stream)):
                    if index < target:
                        continue
                    rgb = frame.to_ndarray(format="rgb24")
                    if rgb.shape[:2] != self.size:
                        raise ValueError(f"Video {self.path}: frame {index} is {rgb.shape[1]}x{rgb.shape[0]} but the "
                                         f"stream says {self.size[1]}x{self.size[0]}; re-encode it at one size.")
                    batch.append(rgb)
                    if len(batch) == part.stop - part.start:
                        yield torch.from_numpy(np.stack(batch))
                        batch = []
                        part = next(part_iter, None)
                        if part is None:
                            return
                    target = next(wanted, None)
        except av.FFmpegError as err:
            raise ValueError(f"Cannot decode video {self.path} ({err}); convert it to MP4/H.264 or a folder of "
                             "PNGs.") from err
        raise ValueError(f"Video {self.path} ended before frame {target} although its container lists {self.total} "
                         "frames; re-encode it (e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4) or use a folder of PNGs.")

    def select(self, start: int = 0, count: int = 0, every: int = 1) -> "VideoFrames":
        """These frames' ``[start::every]``, at most ``count`` (0 = to the end), as another `VideoFrames` (nothing
        decoded)."""
        chosen = copy.copy(self)
        chosen.indices = select_range(self.indices, start, count, every, f"frames of {self.path}")
        chosen.count, chosen.names = len(chosen.indices), [f"{i:05d}" for i in chosen.indices]
        return chosen

    def within(self, start_time: float, duration: float) -> "VideoFrames":
        """These frames shown from ``start_time`` (seconds, >= 0) for ``duration`` seconds (0 = to the end), as
        another `VideoFrames`: a frame is in when its presentation time ``pts * time_base`` is in the window, the
        rule ComfyUI's own videos decode a trimmed file by (``pts >= int(start / time_base)``, ``pts <
        int((start + duration) / time_base)``)."""
        if start_time < 0 or duration < 0:
            raise ValueError(f"Need a trim window with start_time >= 0 and duration >= 0; got {start_time}, "
                             f"{duration}.")
        first = int(start_time / self._time_base)
        last = int((start_time + duration) / self._time_base) if duration else None
        chosen = copy.copy(self)
        chosen.indices = [i for i in self.indices
                          if self._pts[i] >= first and (last is None or self._pts[i] < last)]
        if not chosen.indices:
            raise ValueError(f"Video {self.path} has no frame from {start_time:g} s for {duration:g} s (it has "
                             f"{self.total} frames); check the trim window (Load Video's start_time and duration).")
        chosen.count, chosen.names = len(chosen.indices), [f"{i:05d}" for i in chosen.indices]
        return chosen

    def _source(self):
        """What ``av.open`` reads: the file's path, or a fresh in-memory stream over the same bytes."""
        return io.BytesIO(self._data) if self._data is not None else str(self.path)


class ImageFolderFrames:
    """A folder's images in natural name order, ``[start::every]``, at most ``count``, read one at a time.

    Attributes: ``count``, ``size`` (from the first image's header), ``names`` (the image stems), ``rate`` (None: a
    folder has no frame rate), ``files``."""

    def __init__(self, folder, start: int = 0, count: int = 0, every: int = 1):
        self.path = Path(folder).expanduser()
        self.name = f"--frames {self.path}"
        files = image_files(self.path)
        if not files:
            raise ValueError(f"{self.path} has no images ({', '.join(IMAGE_EXTENSIONS)}).")
        self.files = select_range(files, start, count, every, f"images in {self.path}")
        self.count = len(self.files)
        self.names = [f.stem for f in self.files]
        self.rate = None
        from PIL import Image

        try:
            with Image.open(self.files[0]) as image:
                self.size = (image.height, image.width)
        except OSError as err:
            raise ValueError(f"Cannot read image {self.files[0]} ({err}); replace it or remove it from the folder.") \
                from err

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        for part in check_parts(parts, self.count, self.name):
            frames = []
            for file in self.files[part]:
                rgb = _read_rgb(file)
                if rgb.shape[:2] != self.size:
                    raise ValueError(f"The images in {self.path} have different sizes: {file.name} is "
                                     f"{rgb.shape[1]}x{rgb.shape[0]} but {self.files[0].name} is {self.size[1]}x"
                                     f"{self.size[0]}; all frames need one size.")
                frames.append(rgb)
            yield torch.from_numpy(np.stack(frames))


def open_frames(source, start: int = 0, count: int = 0, every: int = 1):
    """A folder of images or a video file -> `ImageFolderFrames` or `VideoFrames` (nothing decoded yet)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return ImageFolderFrames(path, start, count, every)
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        return VideoFrames(path, start, count, every)
    if not path.exists():
        raise ValueError(f"{path} does not exist; give a video file or a folder of images.")
    raise ValueError(f"{path} is neither a folder of images nor a video file ({', '.join(VIDEO_EXTENSIONS)}).")



class DepthFrames:
    """A folder (or video) of depth images as a raw `DepthSequence`: each frame's channel mean (brighter = nearer),
    float32, read part by part."""

    def __init__(self, frames):
        self.frames, self.count, self.size = frames, frames.count, frames.size
        self.name = f"--depth {frames.path}"

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        for part in self.frames.read(parts):
            yield part.float().mean(dim=-1)


def prefetch(parts: Iterator[torch.Tensor], ahead: int = 2) -> Iterator[torch.Tensor]:
    """``parts`` produced on a background thread, up to ``ahead`` of the consumer (decoding and PNG reading
    release the GIL, so they overlap the consumer's work); the producer's error is raised here, in order."""
    items: queue.Queue = queue.Queue(maxsize=ahead)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in parts:
                if stop.is_set():
                    return
                items.put((True, item))
            items.put((True, done))
        except BaseException as err:  # handed to the consumer
            items.put((False, err))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = items.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let a producer blocked on a full queue finish
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def read_frames(source, start: int = 0, count: int = 0, step: int = 1) -> torch.Tensor:
    """A folder of images or a video file -> ``[T, H, W, 3]`` uint8, the selected frames only (decoded in order;
    frames that are not selected are never converted or kept). For long shots read part by part with
    `open_frames` instead."""
    frames = open_frames(source, start, count, step)
    return next(frames.read([slice(0, frames.count)]))
