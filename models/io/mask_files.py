"""Mask image folders: binary masks and label/palette images (DAVIS, YouTube-VOS, SAM2 exports).

* palette PNGs and 16/32-bit label images: the pixel value is the object id;
* 8-bit grayscale, RGB and 1-bit images: binary masks, on above 127 (a pixel is on when any colour channel is;
  an alpha channel that is not fully opaque is used instead) — unless the brightest value in the whole folder
  is below 128, which marks a grayscale label image (ids 1, 2, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

LABEL_MODES = ("P", "I", "I;16", "I;16B", "I;16L", "F")


def read_mask_file(file: Path) -> tuple[np.ndarray, bool]:
    """One mask image -> (``[H, W]`` int64 values, whether the values are object ids)."""
    try:
        with Image.open(file) as image:
            image.load()
            mode = image.mode
            if mode in LABEL_MODES:
                return np.asarray(image).astype(np.int64), True
            if mode == "1":
                return np.asarray(image).astype(np.int64) * 255, False
            if "A" in image.getbands():
                alpha = np.asarray(image.getchannel("A"))
                if alpha.min() < 255:
                    return alpha.astype(np.int64), False
            if mode in ("L", "LA"):
                return np.asarray(image.getchannel("L")).astype(np.int64), False
            return np.asarray(image.convert("RGB")).max(axis=-1).astype(np.int64), False
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise ValueError(f"Cannot read mask file {file} ({err}); replace it or remove it from the folder.") from err


def load_mask_values(folder: Path, files: list[Path]) -> tuple[np.ndarray, bool]:
    """Reads ``files`` into ``[T, H, W]`` values; raises naming the first file whose size differs."""
    arrays, label_files = [], []
    for file in files:
        values, labels = read_mask_file(file)
        if arrays and values.shape != arrays[0].shape:
            raise ValueError(f"Mask {file.name} is {values.shape[1]}x{values.shape[0]} but {files[0].name} is "
                             f"{arrays[0].shape[1]}x{arrays[0].shape[0]} (in {folder}); all masks must have one size.")
        arrays.append(values)
        label_files.append(labels)
    return np.stack(arrays), any(label_files)


def is_binary(values: np.ndarray, labels: bool) -> bool:
    """True for binary masks (one object), False for object-id labels."""
    return not labels and values.max() >= 128


def object_ids(values: np.ndarray, labels: bool) -> list[int]:
    """The object ids present (``[0]`` for binary masks)."""
    if is_binary(values, labels):
        return [0]
    return [int(v) for v in np.unique(values) if v]


def select_object(values: np.ndarray, labels: bool, object_id: int, folder: Path) -> np.ndarray:
    """``[T, H, W]`` mask values -> bool masks of ``object_id`` (0: every object / the binary mask)."""
    if is_binary(values, labels):
        if object_id:
            raise ValueError(f"object_id {object_id}: the masks in {folder} are binary (one object); set object_id "
                             "to 0.")
        return values > 127
    if object_id == 0:
        return values > 0
    selected = values == object_id
    if not selected.any():
        ids = object_ids(values, labels)
        raise ValueError(f"object_id {object_id} appears in none of the selected masks in {folder}; ids present: "
                         f"{ids or 'none (all masks are empty)'}.")
    return selected
