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

from .chunking import bounding_box, dilate

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
    """Fills ``out`` ``[t, H, W, 3]`` (float32) with footage where visible, matched render where hidden, white
    elsewhere, and returns it. Work beyond the white fill is limited to the box around the object's pixels.

    The box is composed in place in ``out`` in a fixed number of passes over its pixels (render times gain, the
    blend, the visible footage, white outside), so the cost depends on the box's area only, never on how ragged
    the masks are: fragmented masks (hair, foliage, a noisy matte) cost what a clean shape of the same extent does.

    Args:
        render: ``[t, H, W, 3]`` the model's colours at this size (uint8 or float 0..1).
        footage: ``[t, H, W, 3]`` float 0..1 frames.
        visible, amodal: ``[t, H, W]`` bool (the object is ``amodal | visible``).
        gains: ``[t, 3]`` from `colour_gains`.
    """
    shape = amodal | visible
    rows_cols = bounding_box(shape, margin=blend)
    if rows_cols is None:
        return out.fill_(1.0)
    _fill_outside(out, rows_cols)
    box = (slice(None), *rows_cols)
    target = out[box]
    target.fill_(1.0)  # white; the render goes only where a hidden pixel needs it, the footage where visible
    vis = visible[box]
    hidden = amodal[box] & ~vis
    # every step of the render and the blend happens in the box the blend reads around the hidden pixels (the
    # same box `_blend_from_visible` takes, so the same numbers): a large object mostly visible costs its hidden part
    inner = bounding_box(hidden, margin=2 * (blend + 1) if blend > 0 else 0)
    if inner is not None:
        part = (slice(None), *inner)
        drawn = target[part]
        scale = gains.to(torch.float32)[:, None, None, :] / (255 if render.dtype == torch.uint8 else 1)
        drawn.copy_(render[box][part]).mul_(scale).clamp_(0, 1)  # the gain-matched render, 0..1
        if blend > 0:
            seen = footage[box][part]
            _blend_from_visible(drawn, seen.float().div_(255) if footage.dtype == torch.uint8 else seen,
                                vis[part], hidden[part], blend)
        drawn.masked_fill_(~shape[box][part].unsqueeze(-1), 1.0)  # what the box holds outside the object
    # the footage where visible: converted at those pixels only when they are few (a scatter costs more per pixel
    # than a pass over the box)
    if int(vis.view(torch.uint8).sum()) * 4 < vis.numel():
        seen = footage[box][vis]
        target[vis] = seen.float().div_(255) if footage.dtype == torch.uint8 else seen.float()
    else:
        seen = footage[box].float().div_(255) if footage.dtype == torch.uint8 else footage[box]
        torch.where(vis.unsqueeze(-1), seen, target, out=target)
    return out


def _fill_outside(out: torch.Tensor, box: tuple[slice, slice]) -> None:
    """White in ``out`` ``[t, H, W, 3]`` outside ``box`` (the strips above, below, left and right of it)."""
    rows, cols = box
    out[:, :rows.start].fill_(1.0)
    out[:, rows.stop:].fill_(1.0)
    out[:, rows, :cols.start].fill_(1.0)
    out[:, rows, cols.stop:].fill_(1.0)


def _blend_from_visible(drawn: torch.Tensor, seen: torch.Tensor, visible: torch.Tensor, hidden: torch.Tensor,
                        blend: int) -> torch.Tensor:
    """Hidden pixels near the visible part: ``w * (mean visible colour nearby) + (1 - w) * drawn``, in place.

    Computed on a grid of ``cell = blend + 1`` px cells aligned with the box around the hidden pixels: per cell the
    mean visible colour and the visible share of its 3x3 cells, ``w = min(1, 2 * share)``, both upsampled
    bilinearly; ``w`` falls from about 1 next to the visible part to 0 some ``2 (blend + 1)`` px in. The cell
    means are taken over every other pixel of every other row when the cell is even (four samples per 4 px cell;
    the 3x3 mean then pools 36), so the footage is read once at a quarter of its pixels. Every pixel of that box is
    blended (visible and outside ones are overwritten by the caller): no per-pixel selection, so the cost is the
    box's area, however fragmented the masks."""
    cell = blend + 1
    rows_cols = bounding_box(hidden, margin=2 * cell)
    if rows_cols is None:
        return drawn
    box = (slice(None), *rows_cols)
    step = 2 if cell % 2 == 0 else 1
    vis = visible[box][:, ::step, ::step].unsqueeze(-1)
    stack = torch.empty(*vis.shape[:3], 4)  # visible colour (0 elsewhere) and visibility, [t, h/s, w/s, 4]
    torch.mul(seen[box][:, ::step, ::step], vis, out=stack[..., :3])
    stack[..., 3:] = vis
    cells = F.avg_pool2d(stack.permute(0, 3, 1, 2), cell // step, ceil_mode=True).contiguous()
    coarse = _mean_3x3(cells)  # 3x3 cells, zeros beyond the box
    share = coarse[:, 3:]
    weight = (2 * share).clamp_(max=1)
    # the weight once per colour channel: a lerp whose weight repeats along the innermost axis costs 4x one with a
    # weight of its own shape
    coarse = torch.cat([coarse[:, :3] / share.clamp_min(1e-12), weight, weight, weight], dim=1)
    region = drawn[box]
    for rows, values in upsampled_rows(coarse.permute(0, 2, 3, 1), cell, region.shape[1], region.shape[2]):
        region[:, rows].lerp_(values[..., :3], values[..., 3:])
    return drawn


def _mean_3x3(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, h, w]`` -> the mean over each 3x3 neighbourhood, zeros beyond the edges (as ``avg_pool2d(x, 3,
    stride=1, padding=1)``), as two 1-D sums of shifted slices: a third of the pooling kernel's time."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]
    return (rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]).div_(9)


def upsampled_rows(grid: torch.Tensor, cell: int, height: int, width: int):
    """The bilinear upsampling of ``grid`` ``[t, h, w, C]`` (values at cell centres) to ``[t, h * cell, w * cell,
    C]``, cropped to ``height`` x ``width``, handed out phase by phase: ``(rows, values)`` with ``rows`` the slice
    of output rows ``j, j + cell, ...`` and ``values`` ``[t, len(rows), width, C]`` (one buffer, reused: the next
    item overwrites it). Equal to ``F.interpolate(..., scale_factor=cell, mode="bilinear", align_corners=False)``
    (tested).

    The rows are interpolated at the cells' resolution (a ``cell``-th of the result), then each phase is one lerp of
    two whole row sets with a fixed weight: no full-size temporary (on a virtual machine a fresh 1080p buffer costs
    several passes in page faults alone) and about one write of the result in all."""
    t, h, w, c = grid.shape
    padded = torch.cat([grid[:, :1], grid, grid[:, -1:]], dim=1).float()  # a replicated edge row above and below
    wide = F.interpolate(padded.permute(0, 3, 1, 2), size=(h + 2, w * cell), mode="bilinear", align_corners=False)
    wide = wide.permute(0, 2, 3, 1)[:, :, :width].contiguous()  # [t, h + 2, width, C]: the same rows (scale 1)
    buffer = torch.empty(t, h, width, c)
    for j in range(cell):
        count = len(range(j, height, cell))
        if not count:
            continue
        # output row j of a cell lies (j + 0.5) / cell - 0.5 cells from the cell's centre: between the previous
        # and this centre in the first half, this and the next in the second (index 1 of `wide` is cell row 0)
        offset = (j + 0.5) / cell - 0.5
        lo = 1 if offset >= 0 else 0
        values = buffer[:, :count]
        torch.lerp(wide[:, lo:lo + count], wide[:, lo + 1:lo + 1 + count], offset + 1 - lo, out=values)
        yield slice(j, height, cell), values
