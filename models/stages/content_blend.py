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

    Args:
        render: ``[t, H, W, 3]`` the model's colours at this size (uint8 or float 0..1).
        footage: ``[t, H, W, 3]`` float 0..1 frames.
        visible, amodal: ``[t, H, W]`` bool (the object is ``amodal | visible``).
        gains: ``[t, 3]`` from `colour_gains`.
    """
    out.fill_(1.0)
    rows_cols = bounding_box(amodal | visible, margin=blend)
    if rows_cols is None:
        return out
    box = (slice(None), *rows_cols)
    vis, hid = visible[box], amodal[box] & ~visible[box]
    seen = footage[box].float()
    if footage.dtype == torch.uint8:
        seen = seen / 255
    scale = gains.to(torch.float32)[:, None, None, :] / (255 if render.dtype == torch.uint8 else 1)
    drawn = render[box].float().mul_(scale).clamp_(0, 1)  # the gain-matched render, 0..1
    if blend > 0:
        drawn = _blend_from_visible(drawn, seen, vis, hid, blend)
    target = out[box]
    torch.where(hid.unsqueeze(-1), drawn, target, out=target)
    torch.where(vis.unsqueeze(-1), seen, target, out=target)
    return out


def _blend_from_visible(drawn: torch.Tensor, seen: torch.Tensor, visible: torch.Tensor, hidden: torch.Tensor,
                        blend: int) -> torch.Tensor:
    """Hidden pixels near the visible part: ``w * (mean visible colour nearby) + (1 - w) * drawn``.

    Computed on a grid of ``blend + 1`` px cells (a 1080p/4K frame costs a few passes, not a filter per pixel):
    per cell the mean visible colour and the visible share of its 3x3 cells, ``w = min(1, 2 * share)``, both
    upsampled bilinearly; ``w`` falls from about 1 next to the visible part to 0 some ``2 (blend + 1)`` px in.
    Only the box around the hidden pixels is touched."""
    cell = blend + 1
    rows_cols = bounding_box(hidden, margin=2 * cell)
    if rows_cols is None:
        return drawn
    box = (slice(None), *rows_cols)
    vis = visible[box].unsqueeze(-1).float()  # [t, h', w', 1]
    stack = torch.cat([seen[box] * vis, vis], dim=-1).permute(0, 3, 1, 2)  # [t, 4, h', w'] (channels-last)
    coarse = F.avg_pool2d(F.avg_pool2d(stack, cell, ceil_mode=True), 3, stride=1, padding=1)
    share = coarse[:, 3:]
    coarse = torch.cat([coarse[:, :3] / share.clamp_min(1e-12), (2 * share).clamp_(max=1)], dim=1)
    up = F.interpolate(coarse, size=hidden[box].shape[-2:], mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    weight = up[..., 3:] * hidden[box].unsqueeze(-1)
    drawn[box].lerp_(up[..., :3], weight)
    return drawn
