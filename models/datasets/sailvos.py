"""SAIL-VOS-2D in the authors' curated JSON format (also their "complete objects" occluder file).

The file is a JSON list; one entry is one object track (the authors' files hold exactly 25 frames; any length is
accepted here). Fields read (those of the authors' curated SAIL-VOS files):

=================== ===================================================================================
``segmentation``    per frame, COCO RLE ``{"size": [H, W], "counts": str}``: the **amodal** (full) mask
``visible_mask``    per frame, COCO RLE: the **modal** (visible) mask
``image_file_names`` per frame, the frame path relative to the data root (``--data-root``)
``image_ids``       per frame, int: with ``obj_id`` it keys the result JSON, ``"(image_id, obj_id)"``
``obj_id``          int
``category_id``     int (optional, 0 when absent)
``bbox``            per frame amodal ``[x, y, w, h]`` (optional; read into ``amodal_boxes`` when present)
=================== ===================================================================================

``sailvos_complete_objs_as_occluders.json`` (stage-2 fine-tuning occluders) has the same schema and is read with
`read_complete_objects`; the authors use only its ``segmentation`` masks.

Usage (also by fine-tuning)::

    data = read_sailvos("sailvos_seqs_val_len25_gap25_svd.json", data_root="/data/sailvos_cut_png")
    for clip in data:                      # usable clips; empty entries are logged and skipped
        clip.modal, clip.amodal            # [25, 800, 1280] bool
        clip.read_frames((256, 512))       # [25, 256, 512, 3] uint8, resized like the authors' loader
        clip.frame_keys, clip.object_id, clip.image_ids
"""

from __future__ import annotations

import numpy as np
import torch

from . import rle
from .annotations import AnnotationFile, field, join, per_frame
from .clip import AmodalClip


class SailVosAnnotations(AnnotationFile):
    """A SAIL-VOS-schema file: ``len()``, ``clip(i)``, iteration over usable clips (see `AnnotationFile`)."""

    dataset = "sailvos"

    def _parse(self, index: int, entry: dict) -> AmodalClip:
        where = self.where(index)
        amodal_rles = per_frame(entry, "segmentation", None, where)
        t = len(amodal_rles)
        modal_rles = per_frame(entry, "visible_mask", t, where)
        names = per_frame(entry, "image_file_names", t, where)
        image_ids = per_frame(entry, "image_ids", t, where)
        for k, value in enumerate(image_ids):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{where}: image_ids[{k}] must be an int; got {value!r}.")
        for k, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise ValueError(f"{where}: image_file_names[{k}] must be a non-empty string; got {name!r}.")
        obj_id = field(entry, "obj_id", int, where)
        category = field(entry, "category_id", int, where) if "category_id" in entry else 0
        amodal = _decode_all(amodal_rles, f"{where}, segmentation")
        modal = _decode_all(modal_rles, f"{where}, visible_mask")
        if amodal.shape != modal.shape:
            raise ValueError(f"{where}: segmentation masks are {list(amodal.shape[1:])} but visible_mask masks are "
                             f"{list(modal.shape[1:])}; both must have the frame size.")
        boxes = None
        if "bbox" in entry:
            boxes = _boxes(per_frame(entry, "bbox", t, where), f"{where}, bbox")
        return AmodalClip(
            dataset=self.dataset, index=index, source=self.file,
            frame_files=[join(self.data_root, n) for n in names],
            frame_keys=[result_key(i, obj_id) for i in image_ids],
            modal=modal, amodal=amodal, amodal_boxes=boxes, object_id=obj_id, category_id=category,
            image_ids=list(image_ids), info={"image_file_names": list(names)},
        )


def read_sailvos(annotations, data_root=None) -> SailVosAnnotations:
    """Opens a SAIL-VOS-2D curated JSON (module docstring). ``data_root`` is the folder the frame names are
    relative to (not needed for scoring)."""
    return SailVosAnnotations(annotations, data_root)


def read_complete_objects(annotations, data_root=None) -> SailVosAnnotations:
    """Opens the authors' complete-objects occluder file (same schema as SAIL-VOS-2D)."""
    return SailVosAnnotations(annotations, data_root)


def result_key(image_id: int, obj_id: int) -> str:
    """Key of one frame's result in the authors' SAIL-VOS result JSON: ``str((image_id, obj_id))``."""
    return str((int(image_id), int(obj_id)))


def _decode_all(rles: list, where: str) -> torch.Tensor:
    masks = [rle.decode(r, f"{where}[{k}]") for k, r in enumerate(rles)]
    shapes = {m.shape for m in masks}
    if len(shapes) != 1:
        raise ValueError(f"{where}: frames have different mask sizes {sorted(shapes)}.")
    return torch.from_numpy(np.stack(masks))


def _boxes(values: list, where: str) -> torch.Tensor:
    try:
        boxes = torch.tensor(values, dtype=torch.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: boxes must be [x, y, w, h] numbers per frame ({error}).") from error
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}: boxes must be [x, y, w, h] per frame; got shape {list(boxes.shape)}.")
    return boxes
