"""Result files written as the frames are produced, each one atomically.

A shot's results are written part by part while the next part is computed: PNG frames are encoded on a thread
pool (zlib releases the GIL), each MP4 preview on its own thread (libx264 with a fast preset), and GIFs, small
and only when asked for, at the end from reduced frames. Every file is written under a temporary name in its
folder and renamed when complete (`os.replace`, atomic on one file system), so a run killed at any moment never
leaves a half-written PNG, MP4 or GIF under its final name; a rerun (``--resume``) finds the finished files and
writes the rest.

Frames are uint8 numpy arrays ``[H, W]`` (grey), ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from ..io.frame_names import PNG_COMPRESS_LEVEL
from ..io.media import _require_av
from ..base.errors import PackError

logger = logging.getLogger(__name__)

MP4_PRESET = "veryfast"  # libx264: ~4x faster than its default 'medium' at 1080p, files somewhat larger
MP4_CRF = 18  # visually lossless for previews
GIF_WIDTH = 480  # GIFs are previews: at most this wide (a 1080p GIF is slow to write and to open)
PARTIAL = ".partial"  # in-progress files: ".<name>.partial<suffix>" beside the final name


def partial_path(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed to ``path``."""
    return path.with_name(f".{path.stem}{PARTIAL}{path.suffix}")


def save_png(path: Path, frame: np.ndarray) -> None:
    """One PNG, atomically (temporary name, then rename)."""
    tmp = partial_path(path)
    Image.fromarray(frame).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    os.replace(tmp, path)


def png_workers() -> int:
    """Threads a `PngWriter` encodes on: one per core, at most 4."""
    return min(4, os.cpu_count() or 1)


class PngWriter:
    """PNG frames on a thread pool, at most ``queued`` frames in flight (memory stays flat); `close` waits for
    all and raises a worker's error."""

    def __init__(self, workers: int | None = None, queued: int = 8):
        self.pool = ThreadPoolExecutor(max_workers=workers or png_workers(),
                                       thread_name_prefix="png")
        self.slots = threading.BoundedSemaphore(queued)
        self.futures: list[Future] = []

    def write(self, path: Path, frame: np.ndarray) -> None:
        self.slots.acquire()
        future = self.pool.submit(save_png, path, frame)
        future.add_done_callback(lambda _: self.slots.release())
        self.futures.append(future)
        if len(self.futures) > 64:  # keep the list short; surface errors early
            done = [f for f in self.futures if f.done()]
            for f in done:
                f.result()
            self.futures = [f for f in self.futures if not f.done()]

    def close(self) -> None:
        try:
            for future in self.futures:
                future.result()
        finally:
            self.pool.shutdown(wait=True)
            self.futures = []


class Mp4Writer:
    """One H.264 MP4 fed frame by frame, encoded on its own thread, renamed into place by `close`.

    Frames of odd size lose their last row/column (yuv420p needs even sizes); grey frames are shown as grey RGB; RGBA frames are shown without their alpha."""

    def __init__(self, path: Path, fps: float, preset: str = MP4_PRESET, crf: int = MP4_CRF, queued: int = 4):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}.")
        self.path, self.fps, self.preset, self.crf = Path(path), fps, preset, crf
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = partial_path(self.path)
        self.frames: queue.Queue = queue.Queue(maxsize=queued)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._encode, name=f"mp4 {self.path.name}", daemon=True)
        self.thread.start()

    def write(self, frame: np.ndarray) -> None:
        if self.error is not None:
            raise PackError(f"writing {self.path} failed: {self.error}") from self.error
        self.frames.put(frame)

    def close(self) -> None:
        """Flushes the encoder and renames the file into place; raises the encoder's error."""
        self.frames.put(None)
        self.thread.join()
        if self.error is not None:
            self.tmp.unlink(missing_ok=True)
            raise PackError(f"writing {self.path} failed: {self.error}") from self.error
        os.replace(self.tmp, self.path)

    def _encode(self) -> None:
        try:
            av = _require_av("write MP4 files")
            with av.open(str(self.tmp), mode="w", format="mp4") as container:
                stream = None
                while True:
                    frame = self.frames.get()
                    if frame is None:
                        break
                    if stream is None:
                        stream = container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
                        height, width = frame.shape[:2]
                        stream.width, stream.height = width - width % 2, height - height % 2
                        stream.pix_fmt = "yuv420p"
                        stream.options = {"crf": str(self.crf), "preset": self.preset}
                    rgb = frame if frame.ndim == 3 else np.repeat(frame[..., None], 3, axis=2)
                    # RGBA as it is (the encoder's colour conversion drops the alpha): no copy to RGB first
                    rgb = np.ascontiguousarray(rgb[: stream.height, : stream.width])
                    pixels = "rgba" if rgb.shape[-1] == 4 else "rgb24"
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format=pixels)))
                if stream is not None:
                    container.mux(stream.encode())
        except BaseException as err:  # handed to the caller by write/close
            self.error = err
            while True:  # unblock a producer waiting on a full queue
                try:
                    if self.frames.get_nowait() is None:
                        break
                except queue.Empty:
                    break


class GifWriter:
    """An animated GIF from frames reduced to at most `GIF_WIDTH` pixels wide, written (atomically) by `close`."""

    def __init__(self, path: Path, fps: float, width: int = GIF_WIDTH):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}.")
        self.path, self.fps, self.width = Path(path), fps, width
        self.images: list[Image.Image] = []

    def write(self, frame: np.ndarray) -> None:
        image = Image.fromarray(frame if frame.ndim == 2 or frame.shape[-1] == 3 else frame[..., :3])
        if image.width > self.width:
            image = image.resize((self.width, max(1, round(image.height * self.width / image.width))),
                                 Image.BILINEAR)
        self.images.append(image.convert("P", palette=Image.ADAPTIVE) if image.mode == "RGB" else image)

    def close(self) -> None:
        if not self.images:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_path(self.path)
        self.images[0].save(tmp, format="GIF", save_all=True, append_images=self.images[1:],
                            duration=round(1000 / self.fps), loop=0)
        os.replace(tmp, self.path)
        self.images = []


def remove_partial_files(folder: Path) -> int:
    """Deletes the temporary files a killed run left under ``folder``; returns how many."""
    removed = 0
    for path in Path(folder).rglob(f".*{PARTIAL}*"):
        if path.is_file():
            path.unlink()
            removed += 1
    return removed
