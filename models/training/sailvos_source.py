"""SAIL-VOS-format JSON (the authors' curated track files) as a training `TrackSource`.

The reader itself lives in ``models.datasets.sailvos`` (written for the benchmarks); this adapter only turns its
tracks into training tracks at the processing size.
"""

from __future__ import annotations

from .data import DepthCache, Track, TrackSource, resize_masks
from ..stages.conditions import resize_frames_bilinear


class SailVosSource(TrackSource):
    """One track per JSON entry (25 frames in the authors' files)."""

    def __init__(self, json_path: str, data_root: str | None, size, depth: DepthCache | None, need_depth: bool):
        super().__init__(size, depth, need_depth)
        try:
            from ..datasets import sailvos
        except ImportError as err:
            raise RuntimeError(
                f"--data {json_path}: reading SAIL-VOS JSON needs models/datasets/sailvos.py, which this "
                f"installation does not have yet ({err}). Convert the tracks to clip folders (rgb/, modal/, amodal/) "
                f"or use a version with the SAIL-VOS reader."
            ) from err
        if not data_root:
            raise ValueError(f"--data {json_path} is a SAIL-VOS JSON: also pass --data-root (the folder the JSON's "
                             f"image_file_names are relative to).")
        self.reader = sailvos.open_tracks(json_path, data_root)
        for c in range(len(self.reader)):
            self._register(c, [self.reader.key(c)])

    def identity(self, track: Track) -> str:
        return f"sailvos:{track.key}"

    def _load_clip(self, clip_index: int) -> list[Track]:
        item = self.reader.load(clip_index)
        return [Track(key=self.keys[clip_index], clip=self.keys[clip_index],
                      rgb=resize_frames_bilinear(item.rgb, self.size), modal=resize_masks(item.modal, self.size),
                      amodal=resize_masks(item.amodal, self.size))]
