"""SAIL-VOS-format JSON (the authors' curated track files) as a training `TrackSource`.

The reader is ``models.datasets.sailvos`` (shared with the benchmarks); this adapter turns its tracks into
training tracks at the processing size: frames resized with OpenCV-style ``INTER_LINEAR`` and masks resized the
same way on 0/1 values (rounding keeps them binary), as the authors' loader does (reference §4.1). Entries whose
visible or full mask is empty in every frame are skipped (the authors' loader would crash on them).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..datasets.annotations import empty_reason
from ..datasets.resize import resize_linear
from ..datasets.sailvos import read_sailvos
from .data import DepthCache, Track, TrackSource
from .occluders import mean_visible_iou

logger = logging.getLogger(__name__)


class SailVosSource(TrackSource):
    """One track per usable JSON entry (25 frames in the authors' files)."""

    def __init__(self, json_path: str, data_root: str | None, size, depth: DepthCache | None, need_depth: bool):
        super().__init__(size, depth, need_depth)
        if not data_root:
            raise ValueError(f"--data {json_path} is a SAIL-VOS JSON: also pass --data-root (the folder the JSON's "
                             f"image_file_names are relative to).")
        self.annotations = read_sailvos(json_path, data_root)
        self.entries: list[int] = []
        self._facts: dict[int, tuple[int, float]] = {}
        for index in range(len(self.annotations)):
            clip = self.annotations.clip(index)
            reason = empty_reason(clip)
            if reason:
                logger.warning("%s: skipped for training, %s.", self.annotations.where(index), reason)
                continue
            self._facts[len(self.entries)] = (clip.num_frames, mean_visible_iou(clip.modal, clip.amodal))
            self._register(len(self.entries), [f"entry{index:06d}_obj{clip.object_id}"])
            self.entries.append(index)
        if not self.entries:
            raise ValueError(f"--data {json_path}: no usable track (every entry has an empty mask).")

    def identity(self, track: Track) -> str:
        return f"sailvos:{self.annotations.file}:{track.key}"

    def describe(self, index: int) -> tuple[int, float, bool]:
        frames, iou = self._facts[self._clip_of[index]]
        return frames, iou, False

    def _load_clip(self, clip_index: int) -> list[Track]:
        clip = self.annotations.clip(self.entries[clip_index])
        rgb = clip.read_frames(self.size).float() / 255
        return [Track(key=self.keys[clip_index], clip=self.keys[clip_index], rgb=rgb,
                      modal=_resize_mask(clip.modal, self.size), amodal=_resize_mask(clip.amodal, self.size))]


def _resize_mask(masks: torch.Tensor, size) -> torch.Tensor:
    """``[T, H, W]`` bool -> ``[T, h, w]`` bool, OpenCV INTER_LINEAR on 0/1 uint8 (rounded), as the authors."""
    arrays = [resize_linear(m.numpy().astype(np.uint8), tuple(size)) for m in masks]
    return torch.from_numpy(np.stack(arrays)) > 0
