"""Where each object is processed: the whole frame, or a zoomed crop around the object (``region="object"``).

The model works at one processing size (256x512 as trained). A small object in 1080p or 4K footage covers a few
processing pixels in ``frame`` mode; in ``object`` mode it is processed in a crop around its visible extent over
the whole clip, enlarged by a context margin (``context=1.0`` adds 100% of the extent, as in the paper's MOVi
setting) and widened to the processing size's aspect ratio (2:1), so the model sees the object large and at the
aspect it was trained on. Results are pasted back at the input size.

Crops are never stretched: a box that reaches past the frame's edge is padded (masks and colours with 0, depth
by repeating the edge), and the padded part is dropped again when pasting back. A box is at least
``1 / max_zoom`` of the processing size, so a tiny object is not blown up beyond what the model can use.

Shapes: masks ``[T, H, W]`` (any mask format), boxes in input pixels; `Box.crop` and `Box.paste` work on the last
two axes (``spatial="last"``) or on ``[..., H, W, C]`` (``spatial="channels_last"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

REGIONS = ("frame", "object")
DEFAULT_REGION = "frame"  # the whole frame, as trained
DEFAULT_CONTEXT = 1.0  # context margin: 100% of the object's extent, as in the paper's MOVi setting
DEFAULT_MAX_ZOOM = 4.0  # a crop is at least 1/4 of the processing size (in input pixels)


@dataclass(frozen=True)
class Box:
    """A crop ``[top, top + height) x [left, left + width)`` in input pixels; it may reach past the frame."""

    top: int
    left: int
    height: int
    width: int

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def inside(self, frame: tuple[int, int]) -> tuple[slice, slice, slice, slice]:
        """``(frame rows, frame cols, crop rows, crop cols)``: the part of the box inside a frame ``(H, W)``."""
        h, w = frame
        y0, y1 = max(self.top, 0), min(self.top + self.height, h)
        x0, x1 = max(self.left, 0), min(self.left + self.width, w)
        if y0 >= y1 or x0 >= x1:
            raise ValueError(f"crop box {self} does not overlap the {w}x{h} frame.")
        return (slice(y0, y1), slice(x0, x1),
                slice(y0 - self.top, y1 - self.top), slice(x0 - self.left, x1 - self.left))

    def crop(self, x: torch.Tensor, pad: str = "zeros", spatial: str = "last") -> torch.Tensor:
        """The box's pixels of ``x`` (``[..., H, W]`` or, with ``spatial="channels_last"``, ``[..., H, W, C]``).

        Outside the frame: 0 (``pad="zeros"``) or the nearest edge pixel (``pad="replicate"``, for depth).
        """
        last = spatial == "last"
        frame = tuple(x.shape[-2:]) if last else tuple(x.shape[-3:-1])
        rows, cols, crop_rows, crop_cols = self.inside(frame)
        inner = x[..., rows, cols] if last else x[..., rows, cols, :]
        if tuple(inner.shape[-2:] if last else inner.shape[-3:-1]) == self.size:
            return inner
        if pad == "replicate":
            if not last:
                raise ValueError("replicate padding is for [..., H, W] tensors (depth).")
            pads = (crop_cols.start, self.width - crop_cols.stop, crop_rows.start, self.height - crop_rows.stop)
            flat = inner.reshape(-1, 1, *inner.shape[-2:]).float()
            return F.pad(flat, pads, mode="replicate").reshape(*inner.shape[:-2], *self.size)
        if pad != "zeros":
            raise ValueError(f"pad must be 'zeros' or 'replicate', got {pad!r}.")
        shape = (*inner.shape[:-2], *self.size) if last else (*inner.shape[:-3], *self.size, inner.shape[-1])
        out = inner.new_zeros(shape)
        if last:
            out[..., crop_rows, crop_cols] = inner
        else:
            out[..., crop_rows, crop_cols, :] = inner
        return out

    def paste(self, crop: torch.Tensor, into: torch.Tensor, spatial: str = "last") -> torch.Tensor:
        """Writes the in-frame part of ``crop`` (box-sized) into ``into`` (frame-sized) and returns ``into``."""
        last = spatial == "last"
        frame = tuple(into.shape[-2:]) if last else tuple(into.shape[-3:-1])
        rows, cols, crop_rows, crop_cols = self.inside(frame)
        if last:
            into[..., rows, cols] = crop[..., crop_rows, crop_cols]
        else:
            into[..., rows, cols, :] = crop[..., crop_rows, crop_cols, :]
        return into


def frame_box(frame: tuple[int, int]) -> Box:
    """The whole frame ``(H, W)`` as a box (``region="frame"``)."""
    return Box(0, 0, int(frame[0]), int(frame[1]))


def visible_extent(visible_rows: torch.Tensor, visible_cols: torch.Tensor) -> tuple[int, int, int, int] | None:
    """``(top, left, bottom, right)`` (exclusive ends) of the True entries of a row profile ``[H]`` and a column
    profile ``[W]`` (any frame, any time), or None when nothing is visible."""
    rows, cols = visible_rows.nonzero(), visible_cols.nonzero()
    if rows.numel() == 0 or cols.numel() == 0:
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def object_box(extent: tuple[int, int, int, int], processing: tuple[int, int], context: float = DEFAULT_CONTEXT,
               max_zoom: float = DEFAULT_MAX_ZOOM) -> Box:
    """The crop for an object whose visible extent over the clip is ``extent = (top, left, bottom, right)``.

    The extent grows by ``context`` (1.0 doubles its height and width), then the shorter side grows to the
    processing aspect ratio ``processing = (h, w)`` exactly (integer sizes in that ratio, so the resize to the
    processing size never stretches); the box is at least ``processing / max_zoom`` and is centred on the extent
    (it may reach past the frame: `Box.crop` pads there).
    """
    if context < 0:
        raise ValueError(f"context must be >= 0 (a fraction of the object's extent), got {context}.")
    if max_zoom <= 0:
        raise ValueError(f"max_zoom must be > 0, got {max_zoom}.")
    top, left, bottom, right = extent
    ph, pw = processing
    height = max((bottom - top) * (1 + context), ph / max_zoom)
    width = max((right - left) * (1 + context), pw / max_zoom)
    unit = math.gcd(ph, pw)  # whole multiples of (ph, pw) / gcd keep the aspect exactly
    steps = math.ceil(max(height / (ph // unit), width / (pw // unit)) - 1e-9)
    height, width = steps * (ph // unit), steps * (pw // unit)
    centre_y, centre_x = (top + bottom) / 2, (left + right) / 2
    return Box(math.floor(centre_y - height / 2 + 0.5), math.floor(centre_x - width / 2 + 0.5), height, width)
