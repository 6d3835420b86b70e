"""Stage-2 output back at the input size, keeping the footage's own pixels where the object is visible.

The model renders the whole object at the processing size (256x512): upsampled to 1080p or 4K, its visible part
is a blurry copy of what the footage shows sharply. With ``keep_visible_pixels=True`` (default) the result is

* the footage's pixels, exactly, wherever the object is visible (modal mask at the input size);
* the model's colours only in the hidden part (amodal minus modal), scaled by a per-object, per-frame colour gain
  so their brightness and tint meet the visible part without a seam: the gain per channel is
  ``sum(footage) / sum(render)`` over a band of visible pixels along the visible/hidden border, one pixel in
  from the visible edge (`colour_gains`, at the processing size, where both are at the same resolution). Frames without such a band (fully hidden or
  fully visible) use the object's mean gain over the clip (geometric), or 1;
* blended across the border: a hidden pixel near the visible part mixes the gain-matched render with the
  visible footage colours nearby (a normalized average on a grid of ``blend + 1`` px cells), from about 1 next
  to the border to 0 some ``2 (blend + 1)`` px in, so no edge is visible;
* white outside the object's full shape, as the model renders the background.

``keep_visible_pixels=False`` gives the model's render everywhere, as the authors' demo saves it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..base.chunking import bounding_box, dilate, to_float

DEFAULT_KEEP_VISIBLE_PIXELS = True
GAIN_BAND = 3  # processing pixels of visible part along the hidden border used for the colour gain
BLEND_PIXELS = 3  # input pixels over which the hidden part fades from the visible colours to the render
GAIN_LIMITS = (0.25, 4.0)  # a gain outside this range is a wrong match, not a colour shift


def colour_gains(footage: torch.Tensor, render: torch.Tensor, visible: torch.Tensor, hidden: torch.Tensor,
                 band: int = GAIN_BAND) -> torch.Tensor:
    """Per-frame, per-channel gain ``[T, 3]`` that maps the render's colours onto the footage's.

    Args:
        footage: ``[T, h, w, 3]`` the frames at the processing size (uint8 or float 0..1).
        render: ``[T, h, w, 3]`` the model's frames at the processing size (same scale as ``footage``).
        visible: ``[T, h, w]`` bool, the object's visible part at the processing size.
        hidden: ``[T, h, w]`` bool, its hidden part at the processing size.
        band: width in pixels of the band of visible pixels next to hidden ones.
    """
    near_hidden = dilate(hidden, band)
    # one pixel in from the visible edge: edge pixels of the resized footage mix in the occluder's colour
    core = F.max_pool2d((~visible)[:, None].float(), 3, stride=1, padding=1)[:, 0] == 0
    weight = (core & near_hidden).unsqueeze(-1).float()  # [T, h, w, 1]
    seen = footage.float().mul(weight).sum(dim=(1, 2))
    drawn = render.float().mul(weight).sum(dim=(1, 2))
    valid = (weight.sum(dim=(1, 2, 3)) > 0) & (drawn > 0).all(dim=-1)
    gains = torch.ones_like(seen)
    if bool(valid.any()):
        gains[valid] = (seen[valid] / drawn[valid]).clamp(*GAIN_LIMITS)
        gains[~valid] = gains[valid].log().mean(dim=0).exp()
    return gains


def compose_chunk(out: torch.Tensor, render: torch.Tensor, footage: torch.Tensor, visible: torch.Tensor,
                  amodal: torch.Tensor, gains: torch.Tensor, blend: int = BLEND_PIXELS) -> torch.Tensor:
    """Fills ``out`` ``[t, H, W, 3]`` (float32 0..1, or uint8 0..255: the rounded values, e.g. straight into a
    file's RGBA buffer) with footage where visible, matched render where hidden, white elsewhere, and returns it.
    Work beyond the white fill is limited to the box around the object's pixels.

    The box is composed in strips of `STRIP_ROWS` rows, each finished (render times gain, the blend, white outside
    the object, the visible footage) before the next, so a strip's temporaries stay in the processor's cache. The
    steps are the same fixed few per pixel whatever the masks look like: fragmented masks (hair, foliage, a noisy
    matte) cost what a clean shape of the same extent does.

    A strip is composed with its colours as planes (``[t, 3, rows, w]``) and interleaved into ``out`` at the end:
    PyTorch vectorizes an elementwise operation along the innermost axis only, and with interleaved colours a
    per-pixel mask or weight broadcast over them leaves an innermost run of 3 values (some ten times slower). The
    masks select by arithmetic with 0/1 weights (``lerp``, exact at 0 and 1); ``torch.where`` and ``masked_fill``
    are not vectorized here. uint8 is converted by ``copy_`` before any arithmetic (a mixed-dtype multiply costs
    seven times as much).

    Args:
        render: ``[t, H, W, 3]`` the model's colours at this size (uint8 or float 0..1).
        footage: ``[t, H, W, 3]`` frames, uint8 or float 0..1.
        visible, amodal: ``[t, H, W]`` bool (the object is ``amodal | visible``).
        gains: ``[t, 3]`` from `colour_gains`.
    """
    white = 255 if out.dtype == torch.uint8 else 1.0
    shape = amodal | visible
    rows_cols = bounding_box(shape, margin=blend)
    if rows_cols is None:
        return out.fill_(white)
    _fill_outside(out, rows_cols, white)
    box = (slice(None), *rows_cols)
    target, vis, shape, seen, render = out[box], visible[box], shape[box], footage[box], render[box]
    hidden = amodal[box] & ~vis
    # the render and the blend only where a hidden pixel is or the blend reads around one: a large object mostly
    # visible costs its hidden part
    inner = bounding_box(hidden, margin=2 * (blend + 1) if blend > 0 else 0)
    t, height, width = vis.shape
    # the footage only in the box around the visible pixels (a lerp by 0 leaves the rest exactly as it is)
    seen_rows, seen_cols = bounding_box(vis) or (slice(0, 0), slice(0, 0))
    if inner is None:
        rows_in, cols_in, cells = slice(0, 0), slice(0, 0), None
    else:
        rows_in, cols_in = inner
        within = (_shifted(seen_rows, rows_in), _shifted(seen_cols, cols_in))  # the visible box, in the region
        cells = (_CellBlend(seen[:, rows_in, cols_in], vis[:, rows_in, cols_in], blend, within) if blend > 0
                 else None)
    scale = gains.to(torch.float32)[:, :, None, None] / (255 if render.dtype == torch.uint8 else 1)  # [t, 3, 1, 1]
    size = -(-STRIP_ROWS // (blend + 1)) * (blend + 1)  # whole cells: each strip starts on the blend's cell grid
    for rows in [*_strips(0, rows_in.start, size), *_strips(rows_in.start, rows_in.stop, size),
                 *_strips(rows_in.stop, height, size)]:
        plane = torch.empty(t, 3, rows.stop - rows.start, width)
        if rows_in.start <= rows.start < rows_in.stop:
            plane[..., :cols_in.start].fill_(1.0)
            plane[..., cols_in.stop:].fill_(1.0)
            drawn = plane[..., cols_in]
            drawn.copy_(render[:, rows, cols_in].permute(0, 3, 1, 2)).mul_(scale).clamp_(0, 1)  # matched render
            if cells is not None:
                cells.blend(drawn, rows.start - rows_in.start, rows.stop - rows_in.start)
            on = to_float(shape[:, rows, cols_in])[:, None]
            torch.addcmul(1 - on, drawn, on, out=drawn)  # white outside the object
        else:
            plane.fill_(1.0)
        if seen_rows.start < rows.stop and rows.start < seen_rows.stop:  # the footage where visible
            within = slice(max(rows.start, seen_rows.start), min(rows.stop, seen_rows.stop))
            plane[:, :, within.start - rows.start:within.stop - rows.start, seen_cols].lerp_(
                _planes(seen[:, within, seen_cols]), to_float(vis[:, within, seen_cols])[:, None])
        if out.dtype == torch.uint8:
            plane.mul_(255).round_()  # whole numbers: the conversion below is exact
        target[:, rows].copy_(plane.permute(0, 2, 3, 1))
    return out


# rows composed at once: a 1080p strip of two frames is 6 MB of float colours. Narrower strips stay in a faster
# cache but cost more operations, and each operation hands the GIL back and forth: beside the writer threads of a
# long shot that cost more than the cache saved (32 rows were as fast alone and much slower there)
STRIP_ROWS = 128
WINDOW_CELLS = 3  # the blend's grid: cells around the visible pixels (None: the whole region, for tests)


def _shifted(span: slice, region: slice) -> slice:
    """``span`` clipped to ``region`` and counted from its start (empty when they do not meet)."""
    start, stop = max(span.start, region.start) - region.start, min(span.stop, region.stop) - region.start
    return slice(start, max(start, stop))


def _strips(start: int, stop: int, size: int = STRIP_ROWS) -> list[slice]:
    """``[start, stop)`` in slices of ``size`` rows, the first starting at ``start``."""
    return [slice(row, min(row + size, stop)) for row in range(start, stop, size)]


def _planes(frames: torch.Tensor) -> torch.Tensor:
    """``[t, h, w, 3]`` uint8 or float 0..1 -> ``[t, 3, h, w]`` float32 0..1, contiguous."""
    planes = torch.empty(frames.shape[0], 3, *frames.shape[1:3])
    planes.copy_(frames.permute(0, 3, 1, 2))
    return planes.div_(255) if frames.dtype == torch.uint8 else planes


def _fill_outside(out: torch.Tensor, box: tuple[slice, slice], white) -> None:
    """``white`` in ``out`` ``[t, H, W, 3]`` outside ``box`` (the strips above, below, left and right of it)."""
    rows, cols = box
    out[:, :rows.start].fill_(white)
    out[:, rows.stop:].fill_(white)
    out[:, rows, :cols.start].fill_(white)
    out[:, rows, cols.stop:].fill_(white)


class _CellBlend:
    """Hidden pixels near the visible part: ``w * (mean visible colour nearby) + (1 - w) * drawn``.

    Computed on a grid of ``cell = blend + 1`` px cells aligned with the region it is built on (the box around
    the hidden pixels, grown by two cells): per cell the mean visible colour and the visible share of its 3x3
    cells, ``w = min(1, 2 * share)``, both upsampled bilinearly; ``w`` falls from about 1 next to the visible part
    to 0 some ``2 (blend + 1)`` px in. Every pixel of the window around the visible pixels is blended (visible and
    outside ones are overwritten afterwards): no per-pixel selection, so the cost is the window's area, however
    fragmented the masks.

    Everything at the input size is done a band of rows at a time (`STRIP_ROWS`): the cells' sums band by band
    here, the upsampling strip by strip in `blend`. Whole-region temporaries at 1080p were some 100 MB per two
    frames, and on a fresh allocation the page faults cost more than the arithmetic.

    Args:
        seen: ``[t, h, w, 3]`` the footage in the region (uint8 or float 0..1).
        visible: ``[t, h, w]`` bool.
        visible_box: ``(rows, cols)`` of the region holding every visible pixel of it (the caller's box of the
            visible pixels, clipped to the region: a larger box only widens the window); empty slices for none.
    """

    def __init__(self, seen: torch.Tensor, visible: torch.Tensor, blend: int, visible_box: tuple[slice, slice]):
        self.cell = cell = blend + 1
        t, height, width = visible.shape
        rows, cols = -(-height // cell), -(-width // cell)
        # Only cells near a visible pixel can have a weight above 0: a cell's weight needs a visible pixel in its
        # 3x3 cells, and a pixel's weight is interpolated from the 2x2 cells around it. So the grid is built on a
        # window of whole cells around the visible pixels, `WINDOW_CELLS` cells wider on every side (clipped to the
        # region); cells beyond hold no visible pixel, so the zero sums beyond the window are exact, and its
        # outermost ring weighs 0 as everything outside does: blending only the window gives exactly what blending
        # the whole region gives (tested), at the cost of the visible part's surroundings rather than the hidden
        # part's extent (fragmented hidden masks spread over the frame).
        box = visible_box if WINDOW_CELLS is not None else (slice(0, height), slice(0, width))
        if box[0].start >= box[0].stop or box[1].start >= box[1].stop:  # nothing visible: every weight is 0
            self.rows = self.cols = slice(0, 0)
            return
        grow = WINDOW_CELLS or 0
        first_row, last_row = max(box[0].start // cell - grow, 0), min(-(-box[0].stop // cell) + grow, rows)
        first_col, last_col = max(box[1].start // cell - grow, 0), min(-(-box[1].stop // cell) + grow, cols)
        self.rows = slice(first_row * cell, min(last_row * cell, height))  # the window, pixels of the region
        self.cols = slice(first_col * cell, min(last_col * cell, width))
        seen, visible = seen[:, self.rows, self.cols], visible[:, self.rows, self.cols]
        height, self.width = visible.shape[1:]
        rows, cols = last_row - first_row, last_col - first_col
        colour = torch.empty(t, 3, rows, cols)  # per cell: the sum of the visible colours, and of visibility
        seen_on = torch.empty(t, 1, rows, cols)
        band = max(1, STRIP_ROWS // cell)
        for first in range(0, rows, band):
            cells = slice(first, min(first + band, rows))
            pixels = slice(first * cell, min(cells.stop * cell, height))
            colour[:, :, cells], seen_on[:, :, cells] = _cell_sums(seen[:, pixels], visible[:, pixels], cell)
        colour, seen_on = _sum_3x3(colour), _sum_3x3(seen_on)  # 3x3 cells, zeros beyond
        colour.div_(seen_on.clamp_min(1e-12))  # the mean visible colour nearby
        weight = seen_on.mul_(2 / (9 * cell * cell)).clamp_(max=1)  # twice the visible share, at most 1
        # planes [t, C, rows + 2, cols], the first and last cell rows repeated above and below (`upsampled_rows`)
        self.colour, self.weight = (torch.cat([grid[:, :, :1], grid, grid[:, :, -1:]], dim=2)
                                    for grid in (colour, weight))

    def blend(self, drawn: torch.Tensor, start: int, stop: int) -> None:
        """Blends ``drawn`` ``[t, 3, stop - start, w]`` (colour planes), rows ``start:stop`` of the region
        (``start`` a multiple of the cell), in place: the rows and columns of the window."""
        cell = self.cell
        first, last = max(start, self.rows.start), min(stop, self.rows.stop)
        if first >= last:
            return
        within = drawn[:, :, first - start:last - start, self.cols]
        first -= self.rows.start  # rows of the window from here on (a multiple of the cell: the window is whole cells)
        cells = slice(first // cell, first // cell + -(-(last - self.rows.start - first) // cell) + 2)
        colour, weight = (_columns_upsampled(grid[:, :, cells], cell, self.width)
                          for grid in (self.colour, self.weight))
        for (phase, colours), (_, weights) in zip(upsampled_rows(colour, cell, within.shape[2]),
                                                  upsampled_rows(weight, cell, within.shape[2])):
            within[:, :, phase].lerp_(colours, weights)  # weights [t, 1, n, w]: one per pixel, over the 3 planes


def _cell_sums(seen: torch.Tensor, visible: torch.Tensor, cell: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``seen`` ``[t, h, w, 3]``, ``visible`` ``[t, h, w]`` -> per ``cell`` x ``cell`` px cell (partial at the
    bottom and right) the sums of the visible colours ``[t, 3, h / cell, w / cell]`` and of visibility
    ``[t, 1, h / cell, w / cell]``."""
    t, height, width = visible.shape
    rows, cols = -(-height // cell), -(-width // cell)
    planes = _zero_padded((t, 4, rows * cell, cols * cell), (t, 4, height, width))  # colour planes, visibility
    planes[:, :3, :height, :width].copy_(seen.permute(0, 3, 1, 2))
    if seen.dtype == torch.uint8:
        planes[:, :3].div_(255)
    on = planes[:, 3:, :height, :width]
    on.copy_(visible.view(torch.uint8)[:, None])
    planes[:, :3].mul_(planes[:, 3:])
    # the rows of a cell (a sum over an outer axis: vectorized along the columns), then its columns (a sum of
    # `cell` neighbours by a matrix product: a reduction over an innermost axis of 4 is slow)
    sums = planes.view(t, 4, rows, cell, cols * cell).sum(dim=3)
    sums = (sums.view(-1, cell) @ torch.ones(cell, 1)).view(t, 4, rows, cols)
    return sums[:, :3], sums[:, 3:]


def _columns_upsampled(grid: torch.Tensor, cell: int, width: int) -> torch.Tensor:
    """``[t, C, h, w]`` values at cell centres -> ``[t, C, h, width]``: linear (half-pixel centres) along the
    columns at ``cell`` px per cell, cropped to ``width``; the rows stay as they are."""
    t, c, h, w = grid.shape
    wide = F.interpolate(grid.reshape(t * c * h, 1, w), size=w * cell, mode="linear", align_corners=False)
    return wide.view(t, c, h, w * cell)[..., :width]


def _zero_padded(shape: tuple, filled: tuple) -> torch.Tensor:
    """An empty float32 tensor of ``shape`` whose part beyond ``filled`` (the leading part, same rank) is zero."""
    out = torch.empty(shape)
    for dim, (size, used) in enumerate(zip(shape, filled)):
        if used < size:
            out.narrow(dim, used, size - used).zero_()
    return out


def _sum_3x3(x: torch.Tensor) -> torch.Tensor:
    """``[..., h, w]`` -> the sum over each 3x3 neighbourhood, zeros beyond the edges: sums of shifted slices."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]
    return rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]


def upsampled_rows(wide: torch.Tensor, cell: int, height: int):
    """The first ``height`` rows of the bilinear upsampling of a grid (values at cell centres) by ``cell`` px per
    cell, from ``wide`` ``[t, C, h + 2, w]``: the grid's rows already at the output's columns
    (`_columns_upsampled`), with one more row above and below (the first and last repeated at the grid's edges).
    Handed out phase by phase: ``(rows, values)`` with ``rows`` the slice ``j, j + cell, ...`` and ``values``
    ``[t, C, len(rows), w]`` (one buffer, reused: the next item overwrites it). Equal to ``F.interpolate(...,
    scale_factor=cell, mode="bilinear", align_corners=False)`` (tested).

    Each phase is one lerp of two whole row sets with a fixed weight: no temporary of the result's size."""
    t, c, _, w = wide.shape
    buffer = torch.empty(t, c, -(-height // cell), w)
    for j in range(cell):
        count = len(range(j, height, cell))
        if not count:
            continue
        # output row j of a cell lies (j + 0.5) / cell - 0.5 cells from the cell's centre: between the previous
        # and this centre in the first half, this and the next in the second (index 1 of `wide` is cell row 0)
        offset = (j + 0.5) / cell - 0.5
        lo = 1 if offset >= 0 else 0
        values = buffer[:, :, :count]
        torch.lerp(wide[:, :, lo:lo + count], wide[:, :, lo + 1:lo + 1 + count], offset + 1 - lo, out=values)
        yield slice(j, height, cell), values
