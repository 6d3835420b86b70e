"""COCO run-length encoding through ``pycocotools`` (optional extra: ``pip install .[datasets]``).

The authors' annotation and result files store masks as COCO RLE dicts ``{"size": [H, W], "counts": "<str>"}``
with the compressed counts as a UTF-8 string. pycocotools is imported only when a mask is read or written, so
the rest of the package works without it.
"""

from __future__ import annotations

import numpy as np

from ..base.errors import PackError

INSTALL_HINT = "pip install 'diffusion-vas[datasets]' (or: pip install pycocotools)"


def _mask_api():
    try:
        from pycocotools import mask
    except ImportError as error:
        raise PackError(f"Reading and writing COCO RLE masks needs pycocotools, which is not installed. "
                           f"Install it with: {INSTALL_HINT}.") from error
    return mask


def decode(rle, where: str) -> np.ndarray:
    """One RLE dict -> ``[H, W]`` bool. ``where`` names the file and entry for the error message."""
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise ValueError(f"{where}: expected a COCO RLE dict with 'size' and 'counts'; got {_short(rle)}.")
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ValueError(f"{where}: RLE 'size' must be [height, width] positive integers; got {_short(size)}.")
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE (COCO allows it)
        rle = _mask_api().frPyObjects(rle, size[0], size[1])
    elif isinstance(counts, str):
        rle = {"size": list(size), "counts": counts.encode("utf-8")}
    elif not isinstance(counts, bytes):
        raise ValueError(f"{where}: RLE 'counts' must be a string or a list of run lengths; got "
                         f"{type(counts).__name__}.")
    try:
        mask = _mask_api().decode(rle)
    except ValueError as error:
        raise ValueError(f"{where}: invalid COCO RLE ({error}). Check that the file is not truncated or edited.") \
            from error
    if mask.shape != tuple(size):
        raise ValueError(f"{where}: RLE decodes to {mask.shape}, not its declared size {list(size)}.")
    return mask.astype(bool)


def encode(mask: np.ndarray) -> dict:
    """``[H, W]`` bool-like -> ``{"size": [H, W], "counts": str}`` (the authors' JSON form)."""
    mask = np.asfortranarray(np.asarray(mask).astype(np.uint8))
    if mask.ndim != 2:
        raise ValueError(f"encode takes one [H, W] mask; got shape {mask.shape}.")
    rle = _mask_api().encode(mask)
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("utf-8")}


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
