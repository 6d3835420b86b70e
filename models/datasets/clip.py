"""One annotated object track from a real dataset, in one form for every reader.

A clip is one object over ``T`` frames (the authors' curated files hold 25-frame tracks). Masks are bool
``[T, H, W]`` at the annotation's native resolution; boxes are ``[T, 4]`` float64 ``[x, y, w, h]`` in pixels.
Frames are not read until `AmodalClip.read_frames` is called, so scoring needs no images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .resize import resize_linear


@dataclass
class AmodalClip:
    """One object track.

    Attributes:
        dataset: ``"sailvos"``, ``"tao-amodal"`` or ``"movi"``.
        index: position of the entry in the annotation file (0-based), for messages.
        source: the annotation file.
        frame_files: absolute (or data-root-relative when no root was given) path of every frame.
        frame_keys: per frame, the key of that frame's result in the authors' result JSON
            (SAIL-VOS/MOVi: ``"(image_id, obj_id)"``; TAO-Amodal: ``"(video_id, 'file.jpg', 'rel_track_id')"``).
        modal: ``[T, H, W]`` bool true visible masks.
        amodal: ``[T, H, W]`` bool true full masks, or None (TAO-Amodal annotates boxes only).
        amodal_boxes: ``[T, 4]`` float64 true full boxes ``[x, y, w, h]``, or None.
        object_id: SAIL-VOS/MOVi ``obj_id``; TAO-Amodal the absolute ``track_id``.
        category_id: the dataset's category.
        image_ids: per-frame image ids (SAIL-VOS/MOVi), else None.
        info: other fields of the entry (TAO: ``video_id``, ``rel_track_id``, ``height``, ``width``).
    """

    dataset: str
    index: int
    source: Path
    frame_files: list[Path]
    frame_keys: list[str]
    modal: torch.Tensor
    amodal: torch.Tensor | None = None
    amodal_boxes: torch.Tensor | None = None
    object_id: int = 0
    category_id: int = 0
    image_ids: list[int] | None = None
    info: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Stable clip id: the first frame's result key (unique per track and start frame)."""
        return self.frame_keys[0]

    @property
    def num_frames(self) -> int:
        return int(self.modal.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the annotation."""
        return int(self.modal.shape[1]), int(self.modal.shape[2])

    def where(self) -> str:
        return f"{self.source}, entry {self.index}"

    def read_frames(self, size: tuple[int, int] | None = None) -> torch.Tensor:
        """``[T, H, W, 3]`` uint8 RGB frames; resized to ``size = (h, w)`` with OpenCV-style INTER_LINEAR (as the
        authors' loaders do) when given. A missing or unreadable file raises, naming the file and the entry."""
        frames = []
        for file in self.frame_files:
            try:
                with Image.open(file) as image:
                    array = np.asarray(image.convert("RGB"))
            except (OSError, ValueError) as error:
                raise ValueError(f"{self.where()}: cannot read frame {file} ({error}). Check --data-root: frame "
                                 f"paths are the annotation's file names joined to it.") from error
            frames.append(resize_linear(array, size) if size is not None else array)
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"{self.where()}: frames have different sizes {sorted(shapes)}.")
        return torch.from_numpy(np.stack(frames))


def modal_box(mask: np.ndarray) -> list[int] | None:
    """``[x, y, w, h]`` of a ``[H, W]`` mask's on pixels, inclusive extents (``w = x_max - x_min + 1``) as the
    authors compute it; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
