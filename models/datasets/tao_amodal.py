"""TAO-Amodal in the authors' curated JSON format.

The file is a JSON list; one entry is one track clip:

================= =====================================================================================
``track_id``      int, absolute track id
``video_id``      int
``category_id``   int (optional, 0 when absent)
``file_names``    per frame, the frame path relative to the data root; its last path part keys the result
``rles``          per frame, the compressed COCO RLE **count string** of the **modal** (visible) mask
``height``        int, frame height (the RLE size is ``[height, width]``)
``width``         int
``amodal_bboxes`` per frame, the true full (amodal) box ``[x, y, w, h]`` in pixels (may leave the frame)
================= =====================================================================================

Result keys use a track id relative to its video: ``rel = track_id - offsets[str(video_id)] + 1`` with the
authors' ``tao_amodal_track_ids_abs2rel_val.json`` (``--track-offsets``). Without that file the absolute
``track_id`` is used as is (results are then keyed differently from the authors').
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from . import rle
from .annotations import AnnotationFile, field, join, per_frame
from .clip import AmodalClip
from .sailvos import _boxes


class TaoAmodalAnnotations(AnnotationFile):
    """A TAO-Amodal curated file: ``len()``, ``clip(i)``, iteration over usable clips (see `AnnotationFile`)."""

    dataset = "tao-amodal"

    def __init__(self, file, data_root=None, track_offsets=None):
        super().__init__(file, data_root)
        self.offsets = read_track_offsets(track_offsets) if track_offsets is not None else None
        self.offsets_file = Path(track_offsets) if track_offsets is not None else None

    def _parse(self, index: int, entry: dict) -> AmodalClip:
        where = self.where(index)
        names = per_frame(entry, "file_names", None, where)
        t = len(names)
        counts = per_frame(entry, "rles", t, where)
        boxes = _boxes(per_frame(entry, "amodal_bboxes", t, where), f"{where}, amodal_bboxes")
        height, width = field(entry, "height", int, where), field(entry, "width", int, where)
        if height <= 0 or width <= 0:
            raise ValueError(f"{where}: height and width must be positive; got {height} x {width}.")
        track_id, video_id = field(entry, "track_id", int, where), field(entry, "video_id", int, where)
        category = field(entry, "category_id", int, where) if "category_id" in entry else 0
        rel = self._relative(track_id, video_id, where)
        modal = []
        for k, c in enumerate(counts):
            if not isinstance(c, str):
                raise ValueError(f"{where}: rles[{k}] must be an RLE count string; got {type(c).__name__}.")
            modal.append(rle.decode({"size": [height, width], "counts": c}, f"{where}, rles[{k}]"))
        for k, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise ValueError(f"{where}: file_names[{k}] must be a non-empty string; got {name!r}.")
        return AmodalClip(
            dataset=self.dataset, index=index, source=self.file,
            frame_files=[join(self.data_root, n) for n in names],
            frame_keys=[result_key(video_id, n, rel) for n in names],
            modal=torch.from_numpy(np.stack(modal)), amodal=None, amodal_boxes=boxes,
            object_id=track_id, category_id=category,
            info={"video_id": video_id, "rel_track_id": rel, "height": height, "width": width},
        )

    def _relative(self, track_id: int, video_id: int, where: str) -> int:
        if self.offsets is None:
            return track_id
        if str(video_id) not in self.offsets:
            raise ValueError(f"{where}: video_id {video_id} is not in the track-offset file {self.offsets_file}.")
        return track_id - self.offsets[str(video_id)] + 1


def read_tao_amodal(annotations, data_root=None, track_offsets=None) -> TaoAmodalAnnotations:
    """Opens a TAO-Amodal curated JSON (module docstring); ``track_offsets`` is the authors'
    ``tao_amodal_track_ids_abs2rel_val.json``."""
    return TaoAmodalAnnotations(annotations, data_root, track_offsets)


def read_track_offsets(file) -> dict[str, int]:
    """``{str(video_id): offset}`` from the authors' abs-to-rel track id file."""
    path = Path(file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read the track-offset file {path} ({error}).") from error
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise ValueError(f"{path}: expected an object mapping video ids (strings) to integer offsets.")
    return data


def result_key(video_id: int, file_name: str, rel_track_id: int) -> str:
    """Key of one frame's result in the authors' TAO-Amodal result JSON: ``str((video_id, basename, str(rel)))``."""
    return str((int(video_id), PurePosixPath(file_name).name, str(int(rel_track_id))))
