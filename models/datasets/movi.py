"""MOVi-B / MOVi-D (Kubric) in a documented layout: the SAIL-VOS-2D schema, any clip length and size.

The authors publish no MOVi reader or curated MOVi file. This project reads MOVi as one JSON list in the
SAIL-VOS-2D schema (see `sailvos`): per entry ``segmentation`` (amodal RLE per frame), ``visible_mask`` (modal
RLE per frame), ``image_file_names`` (frame paths under ``--data-root``), ``image_ids`` (unique per frame of a
scene, e.g. ``scene * 1000 + frame``), ``obj_id`` and optional ``category_id``. Kubric exports MOVi scenes as 24
frames at 256x256 with per-object visible and full segmentations, which map one to one onto these fields: write
one entry per (scene, object). Results use the SAIL-VOS result format, keyed ``"(image_id, obj_id)"``.
"""

from __future__ import annotations

from .sailvos import SailVosAnnotations


class MoviAnnotations(SailVosAnnotations):
    """A MOVi file in the SAIL-VOS schema."""

    dataset = "movi"


def read_movi(annotations, data_root=None) -> MoviAnnotations:
    """Opens a MOVi annotation file (module docstring)."""
    return MoviAnnotations(annotations, data_root)
