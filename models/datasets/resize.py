"""OpenCV's ``cv2.resize(..., INTER_LINEAR)`` in NumPy, for the authors' dataset and metric resizes.

The authors resize masks and frames with OpenCV's default bilinear filter (no antialiasing, half-pixel centres).
OpenCV is not a dependency of this package, so this module reproduces its arithmetic:

* source coordinate per output pixel ``fx = float32((x + 0.5) * (src / dst) - 0.5)``, ``sx = floor(fx)``, weights
  ``1 - (fx - sx)`` and ``fx - sx``; at the borders the two source indices are clamped into the image (the
  weights are kept, which matters for the rounding below);
* **uint8** input: 11-bit fixed-point weights ``round(2048 * (1 - fx))`` and ``round(2048 * fx)``, a horizontal
  pass into int32, then OpenCV's vectorised vertical pass
  ``((((S0 >> 4) * b0) >> 16) + (((S1 >> 4) * b1) >> 16) + 2) >> 2`` (this is what makes a {0, 1} mask stay
  binary and decides its exact edge); bit-exact with OpenCV for the sizes the authors use (tests cross-check);
* **float** input: the same coordinates with float weights (``1 - fx``, ``fx``), computed in float32.

Exactly-2x downscales in both axes are not emulated (OpenCV switches to its area filter there).
"""

from __future__ import annotations

import numpy as np

COEF_BITS = 11
COEF_SCALE = 1 << COEF_BITS


def _axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sx [dst] int64, fx [dst] float32)``: left source index and right weight per output pixel."""
    scale = 1.0 / (dst / src)  # OpenCV: scale = 1 / inv_scale, both double
    fx = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    sx = np.floor(fx).astype(np.int64)
    fx = fx - sx.astype(np.float32)
    return sx, fx


def resize_linear(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes ``[H, W]`` or ``[H, W, C]`` (uint8 or float) to ``size = (height, width)`` like OpenCV INTER_LINEAR.

    Returns the same dtype (uint8 stays uint8; float becomes float32).
    """
    if array.ndim not in (2, 3):
        raise ValueError(f"resize_linear takes [H, W] or [H, W, C] arrays; got shape {array.shape}.")
    height, width = int(size[0]), int(size[1])
    src_h, src_w = array.shape[:2]
    if (src_h, src_w) == (height, width):
        return array.copy() if array.dtype == np.uint8 else array.astype(np.float32)
    sy, fy = _axis(src_h, height)
    sx, fx = _axis(src_w, width)
    sx, sx1 = np.clip(sx, 0, src_w - 1), np.clip(sx + 1, 0, src_w - 1)
    sy, sy1 = np.clip(sy, 0, src_h - 1), np.clip(sy + 1, 0, src_h - 1)
    extra = (None,) * (array.ndim - 2)
    if array.dtype == np.uint8:
        ax0 = np.round(COEF_SCALE * (1 - fx)).astype(np.int64)[(slice(None),) + extra]
        ax1 = np.round(COEF_SCALE * fx).astype(np.int64)[(slice(None),) + extra]
        by0 = np.round(COEF_SCALE * (1 - fy)).astype(np.int64)[(slice(None), None) + extra]
        by1 = np.round(COEF_SCALE * fy).astype(np.int64)[(slice(None), None) + extra]
        a = array.astype(np.int64)
        rows = a[:, sx] * ax0 + a[:, sx1] * ax1  # [src_h, width(, C)], weights sum to 2048
        top, bottom = rows[sy], rows[sy1]
        out = ((((top >> 4) * by0) >> 16) + (((bottom >> 4) * by1) >> 16) + 2) >> 2
        return np.clip(out, 0, 255).astype(np.uint8)
    a = array.astype(np.float32)
    wx1 = fx[(slice(None),) + extra]
    rows = a[:, sx] * (1 - wx1) + a[:, sx1] * wx1
    wy1 = fy[(slice(None), None) + extra]
    return (rows[sy] * (1 - wy1) + rows[sy1] * wy1).astype(np.float32)


def resize_linear_stack(arrays: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`resize_linear` over the first axis: ``[T, H, W(, C)]`` -> ``[T, height, width(, C)]``."""
    return np.stack([resize_linear(a, size) for a in arrays]) if len(arrays) else \
        np.zeros((0, *size, *arrays.shape[3:]), arrays.dtype)
