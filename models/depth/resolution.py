"""At which resolution pseudo-depth is computed.

The authors run Depth Anything V2 on frames already resized to the processing size (128x256 in training,
256x512 in their demo and SAIL-VOS evaluation; `../shared/docs/reference-training-and-evaluation.md` 4.2 and 7),
so stage 1 learned the depth detail of small frames. ``depth_from="processing"`` (default) does the same: frames
are resized (bilinear, as OpenCV INTER_LINEAR) to the processing size, the network runs there, and the depth
comes back bilinearly at the input size. ``depth_from="input"`` runs the network on the frames as they are
(sharper depth than the model ever saw; slower at 1080p/4K).

Long shots: `DepthFromFrames` runs the network on frames fed in order (one decode pass), in the same batches as
`predict_depth` on the whole clip, and keeps only what it must: with ``processing`` the network's output at the
processing size (a 256x512 float map per frame), upsampled to the frame size part by part when read; with
``input`` the frame-size output, written frame by frame to a spill file (``spill``) and read back from it, so a
4K shot's depth is never held. Its raw depth is normalized over the clip by the caller
(`stages.amodal_stage.NormalizedDepth`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..base.chunking import chunks
from ..base.resize import bilinear_taps
from ..base.sequences import TensorFrames, check_parts
from .estimator import INPUT_SIZE, DepthEstimator
from ..base.errors import PackError

DEPTH_FROM = ("processing", "input")
DEFAULT_DEPTH_FROM = "processing"


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[T, H, W, 3]`` uint8 or float 0..1 -> ``[T, h, w, 3]`` float 0..1, bilinear without antialiasing (OpenCV
    INTER_LINEAR), a few frames at a time.

    Shrinking a lot (1080p to 64x128 reads a quarter of the rows), only the rows the resize reads
    (`conditions.bilinear_taps`) are converted to float, into a buffer reused for every chunk whose other rows are
    never read: bit-identical to converting the whole frames."""
    t, height, width = frames.shape[:3]
    size = tuple(size)
    rows = bilinear_taps(height, size[0])
    out = torch.empty(t, *size, 3)
    buffer = None
    for part in chunks(t):
        count = part.stop - part.start
        if frames.dtype != torch.uint8:
            x = frames[part].float()
        elif 2 * rows.numel() > height:  # most rows are read: convert the frames whole
            x = frames[part].float() / 255
        else:
            if buffer is None or buffer.shape[0] < count:
                buffer = torch.empty(count, height, width, 3)
            x = buffer[:count].index_copy_(1, rows, frames[part].index_select(1, rows).float().div_(255))
        y = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False)
        out[part] = y.clamp_(0, 1).permute(0, 2, 3, 1)
    return out


def predict_depth(estimator: DepthEstimator, frames: torch.Tensor, depth_from: str = DEFAULT_DEPTH_FROM,
                  size: tuple[int, int] = (256, 512), batch_size: int = 4, callback=None,
                  input_size: int = INPUT_SIZE) -> torch.Tensor:
    """Raw relative depth ``[T, H, W]`` (larger = nearer) at the size of ``frames`` ``[T, H, W, 3]``, the whole clip
    at once (`DepthFromFrames` over the frames).

    ``depth_from="processing"``: the network runs on the frames resized to ``size = (h, w)`` and its output is
    resized back bilinearly; ``"input"``: on the frames as given.
    """
    frames = TensorFrames(torch.as_tensor(frames), "frames")
    if frames.count == 0:
        raise ValueError("frames is empty.")
    depth = depth_of_frames(estimator, frames, depth_from, size, batch_size, input_size, None, callback)
    return torch.cat(list(depth.read(chunks(frames.count))))


class DepthFromFrames:
    """Raw depth of ``count`` frames of ``frame_size`` ``(H, W)``, computed from frames given in order.

    Args:
        estimator: the loaded Depth Anything V2.
        count, frame_size: the clip's frame count and size.
        depth_from: ``processing`` or ``input`` (see the module docstring).
        size: the processing ``(h, w)`` (``depth_from="processing"``).
        batch_size, input_size: as `DepthEstimator.predict`.
        spill: a folder for the ``input`` depth (a file ``depth_input.f32`` there); None keeps it in memory.
        callback: ``callback(done, total)`` after each network batch.
    """

    def __init__(self, estimator: DepthEstimator, count: int, frame_size: tuple[int, int],
                 depth_from: str = DEFAULT_DEPTH_FROM, size: tuple[int, int] = (256, 512), batch_size: int = 4,
                 input_size: int = INPUT_SIZE, spill: Path | None = None, callback=None):
        if depth_from not in DEPTH_FROM:
            raise ValueError(f"depth_from must be one of {DEPTH_FROM}, got {depth_from!r}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.estimator, self.count, self.size = estimator, int(count), tuple(frame_size)
        self.name = "depth"
        self.batch_size, self.input_size, self.callback = batch_size, input_size, callback
        self.small = depth_from == "processing" and tuple(size) != self.size
        self.network_size = tuple(size) if self.small else self.size
        self.done = 0
        self._pending: list[torch.Tensor] = []
        self._store = torch.empty(self.count, *self.network_size) if (self.small or spill is None) else None
        self._spill = None
        if self._store is None:
            Path(spill).mkdir(parents=True, exist_ok=True)
            self._spill = Path(spill) / "depth_input.f32"
            self._file = open(self._spill, "wb")

    @classmethod
    def from_store(cls, small: torch.Tensor, frame_size: tuple[int, int]) -> "DepthFromFrames":
        """A finished processing-size depth ``[T, h, w]`` (e.g. saved by a run to resume) as a sequence."""
        depth = cls.__new__(cls)
        depth.count, depth.size, depth.name = small.shape[0], tuple(frame_size), "depth"
        depth.small = tuple(small.shape[-2:]) != depth.size
        depth.network_size = tuple(small.shape[-2:])
        depth._store, depth._spill, depth.done, depth._pending = small, None, small.shape[0], []
        return depth

    @property
    def store(self) -> torch.Tensor | None:
        """The kept depth ``[T, h, w]`` (processing size, or the frame size in memory); None when spilled."""
        return self._store

    def feed(self, frames: torch.Tensor) -> None:
        """The next frames ``[t, H, W, 3]`` (uint8 or float 0..1) of the clip, in order."""
        if self.done + sum(p.shape[0] for p in self._pending) + frames.shape[0] > self.count:
            raise ValueError(f"depth: more than the {self.count} frames it was made for.")
        if self.small:
            frames = resize_frames(frames, self.network_size)
        self._pending.append(frames)
        while sum(p.shape[0] for p in self._pending) >= self.batch_size:
            self._run(self.batch_size)

    def finish(self) -> "DepthFromFrames":
        """Runs the last (short) batch; every frame must have been fed."""
        rest = sum(p.shape[0] for p in self._pending)
        if rest:
            self._run(rest)
        if self.done != self.count:
            raise ValueError(f"depth: {self.done} frames were given for a clip of {self.count}.")
        if self._spill is not None and not self._file.closed:
            self._file.close()
        return self

    def _run(self, frames: int) -> None:
        batch = torch.cat(self._pending)
        now, self._pending = batch[:frames], [batch[frames:]] if batch.shape[0] > frames else []
        depth = self.estimator.predict(now, self.batch_size, None, self.input_size)  # [b, h, w] float32, CPU
        if self._store is not None:
            self._store[self.done:self.done + frames] = depth
        else:
            self._file.write(np.ascontiguousarray(depth.numpy(), dtype=np.float32).tobytes())
        self.done += frames
        if self.callback is not None:
            self.callback(self.done, self.count)

    def read(self, parts: Iterable[slice]) -> Iterator[torch.Tensor]:
        """Raw depth ``[t, H, W]`` float32 at the frame size, part by part (after `finish`)."""
        if self.done != self.count:
            raise PackError("depth is read before every frame was fed; call finish() first.")
        frame = self.size[0] * self.size[1]
        for part in check_parts(parts, self.count, self.name):
            if self._spill is not None:
                values = np.fromfile(self._spill, dtype=np.float32, count=(part.stop - part.start) * frame,
                                     offset=part.start * frame * 4)
                yield torch.from_numpy(values.reshape(-1, *self.size))
            elif self.small:
                yield F.interpolate(self._store[part][:, None], size=self.size, mode="bilinear",
                                    align_corners=False)[:, 0]
            else:
                yield self._store[part]

    def close(self) -> None:
        """Removes the spill file (if any)."""
        if self._spill is not None:
            if not self._file.closed:
                self._file.close()
            self._spill.unlink(missing_ok=True)


def depth_of_frames(estimator: DepthEstimator, frames, depth_from: str = DEFAULT_DEPTH_FROM,
                    size: tuple[int, int] = (256, 512), batch_size: int = 4, input_size: int = INPUT_SIZE,
                    spill: Path | None = None, callback=None) -> DepthFromFrames:
    """One pass over a `FrameSequence`: its `DepthFromFrames`, finished."""
    depth = DepthFromFrames(estimator, frames.count, frames.size, depth_from, size, batch_size, input_size, spill,
                            callback)
    for part in frames.read(chunks(frames.count)):
        depth.feed(part)
    return depth.finish()

