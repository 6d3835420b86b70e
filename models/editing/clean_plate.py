"""A clean background plate built from the clip itself: what each pixel shows when nothing covers it.

For every pixel, the temporal median of its colour over the frames in which no mask covers it. Pixels that are
covered in every frame were never seen; they are filled smoothly from the seen pixels around them with a
push-pull pyramid (average down to coarser scales where the gap closes, interpolate back up), then relaxed with
diffusion passes (3x3 means) so the fill has no pyramid blocks and joins its edges smoothly. A static camera is
assumed (one plate for the clip).

Only the pixels an edit repaints need the plate: given ``needed`` (the union over the clip of what the edit
covers, e.g. the occluder), the median is taken only there (plus a margin, so never-seen pixels are filled from
their real surroundings), which is most of the cost at HD sizes; the plate elsewhere is 0 and must not be used.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn.functional as F

from ..base.chunking import bounding_box, dilate
from ..base.threads import thread_map

logger = logging.getLogger(__name__)

DIFFUSION_PASSES = 64  # 3x3 mean passes over the never-seen pixels after the pyramid fill
BAND_ELEMENTS = 1 << 22  # the median is taken over bands of rows holding about this many values (16 MB as float)
NEEDED_MARGIN = 16  # pixels around never-seen ``needed`` ones whose median is taken too, as context for their fill


def clean_plate(images: torch.Tensor, covered: torch.Tensor | Callable[[slice, slice], torch.Tensor],
                needed: torch.Tensor | None = None) -> torch.Tensor:
    """Background plate of a clip.

    Args:
        images: ``[T, H, W, 3]`` float frames, or `SelectedFrames` (some frames of a long shot, read when asked).
        covered: ``[T, H, W]`` bool, True where something other than background (object, occluder) is; or a
            function ``(rows, cols) -> [T, h, w]`` bool giving it in a box, so a caller that builds it from its
            masks builds only the box around ``needed`` (the whole frame when nothing near is ever background).
        needed: optional ``[H, W]`` bool, the pixels the caller will draw the plate at; the plate is computed
            there, and `NEEDED_MARGIN` pixels around the never-seen ones as context for their fill (in spans of
            rows; 0 elsewhere). None: everywhere.

    Returns:
        ``[H, W, 3]`` float32: the median over the uncovered frames of each pixel (exact when a pixel is seen in
        one frame only); a smooth, finite fill where a pixel is covered in every frame.

    Raises:
        ValueError: when ``covered`` hides every pixel in every frame (then there is no background to use).
    """
    t, h, w = images.shape[:3]
    if callable(covered):
        read = covered
    elif covered.shape != images.shape[:3]:
        raise ValueError(f"covered must be [T, H, W] = {tuple(images.shape[:3])}, got {tuple(covered.shape)}.")
    else:
        def read(rows: slice, cols: slice) -> torch.Tensor:
            return covered[:, rows, cols]
    plate = torch.zeros(h, w, 3, dtype=torch.float32, device=images.device)
    box = None if needed is None or bool(needed.all()) else bounding_box(needed, margin=NEEDED_MARGIN)
    if box is not None:
        near = _plate_where_needed(images[:, box[0], box[1]], read(*box), needed[box])
        if near is not None:
            plate[box] = near
            return plate
        # nothing near the needed pixels is ever background: the plate of the whole frame
    covered = read(slice(0, h), slice(0, w))
    if isinstance(images, SelectedFrames):
        images = images[:, :, :]  # the whole frames of the selected frames, read once
    seen = _seen(covered)
    if not bool(seen.any()):
        raise ValueError(
            "No background pixel is visible in any frame (the masks cover the whole clip): "
            "pass a `background` plate, e.g. from an inpainting or object-removal node."
        )
    if needed is not None and not bool(needed.any()):
        return plate  # nothing is drawn with it
    median, _ = _uncovered_median(images, covered)
    _log_unseen(seen)
    return fill_unseen(median, seen)


def _seen(covered: torch.Tensor) -> torch.Tensor:
    """``[T, h, w]`` bool -> ``[h, w]``: not covered in some frame (amin of the uint8 view: faster than bool all)."""
    return covered.view(torch.uint8).amin(dim=0) == 0


def _plate_where_needed(images, covered, needed) -> torch.Tensor | None:
    """The plate in the box around the needed pixels (``images``, ``covered`` and ``needed`` cut to that box) at
    the pixels of ``needed`` and `NEEDED_MARGIN` pixels around the never-seen ones among them (the context of their
    fill), 0 elsewhere; None when none of those pixels is ever background (the caller takes the whole frame).

    Rows are walked in bands and each band's median covers only the columns its wanted pixels span (contiguous
    slices: a gather of scattered pixels costs more than the median it saves), so an object moving diagonally
    costs its path, not its box."""
    seen = _seen(covered)
    if not bool(seen.any()):
        return None
    wanted = needed | dilate(needed & ~seen, NEEDED_MARGIN)
    median, computed = _uncovered_median(images, covered, wanted)
    known = seen & computed
    if not bool(known.any()):  # the background near the needed pixels lies outside their rows' spans
        return None
    _log_unseen(seen | ~computed)
    filled = fill_unseen(median, known, smooth=computed)
    return torch.where(computed.unsqueeze(-1), filled, 0.0)


def _log_unseen(seen: torch.Tensor) -> None:
    unseen = int((~seen).sum())
    if unseen:
        logger.info("Clean plate: %d pixels are never background; filling them from their surroundings.", unseen)


def _uncovered_median(images: torch.Tensor, covered: torch.Tensor, wanted: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``[T, h, w, 3]`` (float 0..1, or uint8), ``[T, h, w]`` -> ``[h, w, 3]`` float32 0..1: per pixel and channel
    the median of the values of the uncovered frames (the lower one of an even count, as ``torch.nanmedian``); unspecified where a pixel is
    covered in every frame (the caller fills those).

    Returns ``(median, computed)``: with ``wanted`` (``[h, w]`` bool) each band of rows is computed over the
    columns its wanted pixels span only, and ``computed`` (``[h, w]`` bool) says where (the median is 0
    elsewhere); without it, everywhere.

    On the CPU the clip is walked in bands of rows of about `BAND_ELEMENTS` values, on all of torch's threads:
    each band is laid out time-last, covered values are set to +inf (they sort last), NumPy's vectorised sort
    orders every pixel's values and the ``(n - 1) // 2``-th of the ``n`` uncovered ones is taken. This equals
    ``masked_fill(nan).nanmedian(dim=0)`` exactly (tested) at about half its cost on 2 cores: the median is most
    of the clean plate's time at HD sizes. Other devices use ``nanmedian`` itself.
    """
    t, h, w = covered.shape
    median = torch.zeros(h, w, 3, dtype=torch.float32, device=images.device)
    computed = torch.zeros(h, w, dtype=torch.bool, device=images.device)
    rows = max(1, BAND_ELEMENTS // (t * w * 3))
    # uint8 frames (a long shot's selected frames): the median value is taken, then divided, which is what the
    # median of the frames converted to 0..1 (value / 255) gives, since the order is the same
    scale = 255 if images.dtype == torch.uint8 else 1

    def band(top: int) -> None:
        part = slice(top, min(top + rows, h))
        cols = slice(0, w)
        if wanted is not None:
            span = bounding_box(wanted[part])
            if span is None:
                return
            cols = span[1]
        computed[part, cols] = True
        if images.device.type != "cpu":
            values = images[:, part, cols].float().masked_fill(covered[:, part, cols].unsqueeze(-1), float("nan"))
            median[part, cols] = values.nanmedian(dim=0).values / scale
            return
        values = torch.empty(part.stop - part.start, cols.stop - cols.start, 3, t)  # time last, a copy
        values.copy_(images[:, part, cols].permute(1, 2, 3, 0))
        hidden = covered[:, part, cols].permute(1, 2, 0)
        values.masked_fill_(hidden.unsqueeze(2), float("inf"))
        values.numpy().sort(axis=-1)  # in place; NumPy releases the GIL, so bands sort in parallel
        middle = ((t - 1 - hidden.sum(dim=-1)).clamp_min(0) // 2)[..., None, None].expand(-1, -1, 3, 1)
        median[part, cols] = values.gather(-1, middle)[..., 0] / scale

    if images.device.type != "cpu":
        for top in range(0, h, rows):
            band(top)
    else:
        thread_map(band, range(0, h, rows))
    return median, computed


def fill_unseen(plate: torch.Tensor, seen: torch.Tensor, smooth: torch.Tensor | None = None) -> torch.Tensor:
    """Fills the pixels of ``plate`` ``[H, W, C]`` where ``seen`` ``[H, W]`` (bool) is False; seen pixels are kept.

    The fill is smooth and finite whatever ``plate`` holds at unseen pixels (NaN included). ``seen`` must have at
    least one True pixel. ``smooth`` (``[H, W]`` bool, optional): only the unseen pixels there are relaxed after
    the pyramid fill (the others are not used by the caller); default all.
    """
    if bool(seen.all()):
        return plate.float().clone()
    known = seen.float()[None, None]
    values = torch.where(seen.unsqueeze(-1), plate.float(), 0.0).permute(2, 0, 1).unsqueeze(0)
    filled = _push_pull(values, known)
    box = bounding_box(~seen if smooth is None else ~seen & smooth, margin=1)
    if box is not None:  # only unseen pixels change: relax around them alone
        window = (..., *box)
        filled[window] = _relax(filled[window], known[window])
    return filled[0].permute(1, 2, 0).contiguous()


def _relax(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``DIFFUSION_PASSES`` Jacobi steps of the heat equation on the unknown pixels of ``values`` ``[1, C, h, w]``:
    each takes the mean of its 3x3 neighbourhood, known pixels stay fixed."""
    keep = known > 0
    for _ in range(DIFFUSION_PASSES):
        padded = F.pad(values, (1, 1, 1, 1), mode="replicate")
        rows = padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]  # a 3x3 mean as two 1-D sums
        relaxed = (rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]) / 9
        values = torch.where(keep, values, relaxed)
    return values


def _push_pull(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``values`` ``[1, C, h, w]`` (0 where unknown), ``known`` ``[1, 1, h, w]`` in {0, 1}, at least one 1.

    Known pixels keep their value; unknown ones get the bilinear upsampling of the same fill one octave coarser,
    where each coarse pixel is the mean of the known pixels under it. The recursion ends at the first scale with
    no unknown pixel, which a 1x1 scale always is.
    """
    if bool((known > 0).all()):
        return values
    coarse_known = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse_values = F.avg_pool2d(values * known, 2, ceil_mode=True) / coarse_known.clamp_min(1e-12)
    coarse = _push_pull(coarse_values, (coarse_known > 0).float())
    upsampled = F.interpolate(coarse, size=values.shape[-2:], mode="bilinear", align_corners=False)
    return torch.where(known > 0, values, upsampled)


PLATE_FRAMES = 96  # a long shot's clean plate takes the median over at most this many frames spread over it
PLATE_BYTES = 1 << 30  # and at most this much of them (uint8) when it needs whole frames


class SelectedFrames:
    """Some frames of a `FrameSequence` (a long shot), read when indexed: ``x[:, rows, cols]`` decodes them once and
    gives ``[T', h, w, 3]`` uint8 (what `clean_plate` reads, in the box it needs). Frames are spread evenly over the
    shot: all of them up to `PLATE_FRAMES` (then the plate is the whole clip's), else that many, and fewer at 4K
    (`PLATE_BYTES` for whole frames). A static camera is assumed, as for every clean plate."""

    def __init__(self, frames, max_frames: int = PLATE_FRAMES):
        height, width = frames.size
        limit = max(1, min(max_frames, PLATE_BYTES // (height * width * 3)))
        count = frames.count
        chosen = range(count) if count <= limit else sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})
        self.frames, self.indices = frames, list(chosen)
        self.shape = (len(self.indices), height, width, 3)
        self.device = torch.device("cpu")

    def __getitem__(self, key) -> torch.Tensor:
        _, rows, cols = key
        height, width = self.shape[1:3]
        box = (len(range(*rows.indices(height))), len(range(*cols.indices(width))))
        out = None
        for k, frame in enumerate(self.frames.read([slice(i, i + 1) for i in self.indices])):
            if out is None:  # uint8 frames stay uint8 (a quarter of the memory); float ones float32
                dtype = torch.uint8 if frame.dtype == torch.uint8 else torch.float32
                out = torch.empty(len(self.indices), *box, 3, dtype=dtype)
            out[k] = frame[0, rows, cols]
        return out
