"""Scene edits with recovered objects: reveal them, x-ray them, remove what hides them, lift them out, move them.

Inputs (float, colours in 0..1; any device, the result is float32 on ``images``' device):

- ``images`` ``[T, H, W, 3]``: the original frames.
- ``amodal_rgb`` ``[N, T, H, W, 3]`` (``[T, H, W, 3]`` for one object): each object's completed colours.
- ``amodal_masks`` ``[N, T, H, W]`` (``[T, H, W]``): each object's full shape, visible and hidden.
- ``modal_masks`` ``[N, T, H, W]`` (``[T, H, W]``), optional: each object's visible part.
- ``occluder_masks`` ``[T, H, W]`` or ``[K, T, H, W]`` (K occluders, united), optional: what hides the objects.
- ``background`` ``[T, H, W, 3]``, ``[1, H, W, 3]`` or ``[H, W, 3]``, optional: the scene without occluders
  or objects (e.g. from an inpainting node); without it a clean plate is built from the clip (``clean_plate``).

Masks may be soft: their values are the alpha. Where a yes/no answer is needed (which pixels are background
for the clean plate, where the outline runs) a pixel is covered when its mask value is above 0.5.

Depth order: objects are composited in the order given, back to front: the first object is the farthest, the
last one is drawn over all others. Every mode draws the objects in front of the original frame.

Modes (``MODES``); each returns ``(image [T, H, W, 3], mask [T, H, W])``:

- ``reveal``: the objects' amodal RGB inside their amodal masks over the frames. Mask: the objects' alpha.
- ``xray``: the hidden part of each object (amodal minus modal) blended over the frames at ``opacity``, and the
  outline of its full shape drawn in ``outline_color``; visible pixels are untouched. Mask: the hidden parts.
- ``remove_occluder``: the occluder's pixels replaced by the background plate, then the objects on top.
  Mask: every pixel repainted (occluder and objects).
- ``layer``: the objects alone for compositing elsewhere. Image: the amodal RGB (several objects over each other
  in depth order); mask: the alpha (amodal masks, feathered, united).
- ``move``: the objects shifted by ``offset = (x, y)`` pixels (right, down), drawn in front; the visible pixels
  they leave are filled from the background plate. Mask: the hole and the moved objects.

``feather`` (pixels) softens every alpha with a Gaussian blur reaching about that far: across the edge for what
is drawn (objects, hidden parts), outward for what is removed (the occluder, the hole a moved object leaves), so
no fringe of it stays. 0 keeps edges hard and the arithmetic exact (``image = frame * (1 - alpha) + colour *
alpha`` with alpha 0 or 1).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import kornia
import torch

from ..base.chunking import all_finite, bounding_box, chunks, dilate, footprint
from .clean_plate import PLATE_FRAMES, SelectedFrames, clean_plate

logger = logging.getLogger(__name__)

MODES = ("reveal", "xray", "remove_occluder", "layer", "move")
COVERED_THRESHOLD = 0.5  # a mask pixel counts as covered above this value
OUTLINE_SHIFTS = 16  # outlines up to this width grow by shifted ORs (4 x width passes over bools), wider by `dilate`


def composite_edit(
    images: torch.Tensor,
    amodal_rgb: torch.Tensor,
    amodal_masks: torch.Tensor,
    mode: str,
    *,
    modal_masks: torch.Tensor | None = None,
    occluder_masks: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
    opacity: float = 0.5,
    feather: float = 0.0,
    offset: tuple[int, int] = (0, 0),
    outline_color: tuple[float, float, float] = (0.0, 1.0, 0.0),
    outline_width: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs one edit ``mode`` (see the module docstring) and returns ``(image [T,H,W,3], mask [T,H,W])``.

    ``opacity``, ``outline_color`` (RGB 0..1) and ``outline_width`` (pixels, 0 = none) apply to ``xray``;
    ``offset`` (x, y in whole pixels) to ``move``; ``background`` to ``remove_occluder`` and ``move``.
    ``xray`` needs ``modal_masks`` or ``occluder_masks`` (the hidden part is then amodal within the occluders);
    ``remove_occluder`` needs ``occluder_masks``.

    Raises:
        ValueError: unknown mode, a missing input the mode needs, or inputs whose shapes, frame counts or
            object counts do not match ``images``.
    """
    _check_edit(mode, opacity, feather)
    whole = _Scene.build(images, amodal_rgb, amodal_masks, modal_masks, occluder_masks, background)
    if mode in ("remove_occluder", "move") and whole.background is None:
        if mode == "remove_occluder" and whole.occluder is None:
            raise ValueError("mode 'remove_occluder' needs occluder_masks: connect the masks of what hides the object.")
        whole.background = whole.plate(whole.repainted(mode, feather))[:1]  # the one step that needs the whole clip
    t, h, w = whole.images.shape[:3]
    image = torch.empty(t, h, w, 3, dtype=torch.float32, device=whole.images.device)
    mask = torch.empty(t, h, w, dtype=torch.float32, device=whole.images.device)
    for part in chunks(t, frame_pixels=h * w):  # every mode but the clean plate is per frame: bounded memory
        _edit(whole.frames(part), mode, opacity, feather, offset, outline_color, outline_width, image[part],
              mask[part])
    return image, mask


def composite_stream(frames, colours, amodal_masks: torch.Tensor, mode: str, *, modal_masks=None,
                     occluder_masks=None, background=None, opacity: float = 0.5, feather: float = 0.0,
                     offset: tuple[int, int] = (0, 0), outline_color: tuple[float, float, float] = (0.0, 1.0, 0.0),
                     outline_width: int = 2, parts: list[slice] | None = None, plate_frames: int = PLATE_FRAMES):
    """`composite_edit` part by part, for a long shot whose frames and colours are never held whole.

    Args:
        frames: a `base.sequences.FrameSequence` of the original frames (e.g. a video decoded as it is read).
        colours: ``colours(parts)`` -> an iterator of the objects' colours ``[N, t, H, W, 3]`` (float 0..1) for
            those parts (e.g. `stages.run.ContentStream.parts`' first field), or a ``[N, T, H, W, 3]`` tensor.
        amodal_masks, modal_masks, occluder_masks, background, ...: as `composite_edit` (MASKs are tensors).
        parts: increasing slices of the frames to give (default: every frame, a few at a time).
        plate_frames: without ``background``, remove_occluder and move paint a clean plate: the median over at
            most this many frames spread over the shot (every frame of a shorter clip: then each part is exactly
            `composite_edit`'s).

    Yields ``(part, image [t, H, W, 3] float32, mask [t, H, W] float32)``.
    """
    _check_edit(mode, opacity, feather)
    t, (h, w) = frames.count, tuple(frames.size)
    scene = _Scene.build_masks((t, h, w), torch.device("cpu"), amodal_masks, modal_masks, occluder_masks, background)
    if torch.is_tensor(colours):
        rgb = _objects(colours, "amodal_rgb", (t, h, w), torch.device("cpu"), colour=True)
        if rgb.shape[0] != scene.amodal.shape[0]:
            raise ValueError(f"amodal_masks has {scene.amodal.shape[0]} object(s) but amodal_rgb has {rgb.shape[0]}.")
        colours = lambda chosen: (rgb[:, part].float() for part in chosen)  # noqa: E731
    _plate_of_shot(scene, frames, mode, feather, plate_frames)
    parts = list(parts) if parts is not None else chunks(t, frame_pixels=h * w)
    frame_reader, colour_reader = frames.read(parts), colours(parts)
    for part in parts:
        part_scene = scene.frames(part)
        rgb = next(frame_reader)
        part_scene.images = rgb.float() / 255 if rgb.dtype == torch.uint8 else rgb.float()
        part_scene.rgb = next(colour_reader)
        image = torch.empty(part.stop - part.start, h, w, 3)
        mask = torch.empty(part.stop - part.start, h, w)
        _edit(part_scene, mode, opacity, feather, offset, outline_color, outline_width, image, mask)
        yield part, image, mask


def composite_masks(shape: tuple[int, int, int], amodal_masks: torch.Tensor, mode: str, *, modal_masks=None,
                    occluder_masks=None, feather: float = 0.0, offset: tuple[int, int] = (0, 0),
                    parts: list[slice] | None = None):
    """The ``mask`` of `composite_edit` alone, part by part: no frames, colours or plate are read. ``shape`` is the
    clip's ``(T, H, W)``. Yields ``(part, mask [t, H, W] float32)``."""
    _check_edit(mode, 0.5, feather)
    t, h, w = shape
    scene = _Scene.build_masks(shape, torch.device("cpu"), amodal_masks, modal_masks, occluder_masks, None)
    if mode == "remove_occluder" and scene.occluder is None:
        raise ValueError("mode 'remove_occluder' needs occluder_masks: connect the masks of what hides the object.")
    for part in (list(parts) if parts is not None else chunks(t, frame_pixels=h * w)):
        mask = torch.empty(part.stop - part.start, h, w)
        _edit(scene.frames(part), mode, 0.5, feather, offset, (0.0, 0.0, 0.0), 0, None, mask)
        yield part, mask


def _check_edit(mode: str, opacity: float, feather: float) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in 0..1, got {opacity}.")
    if feather < 0:
        raise ValueError(f"feather must be >= 0 pixels, got {feather}.")


def shot_background(frames, amodal_masks: torch.Tensor, mode: str, *, modal_masks=None, occluder_masks=None,
                    feather: float = 0.0, plate_frames: int = PLATE_FRAMES) -> torch.Tensor | None:
    """The clean plate ``[1, H, W, 3]`` `composite_stream` paints for ``mode`` (None when the mode paints none), to
    compute once and pass as its ``background`` when the same edit is run again (a preview, then the video)."""
    t, (h, w) = frames.count, tuple(frames.size)
    scene = _Scene.build_masks((t, h, w), torch.device("cpu"), amodal_masks, modal_masks, occluder_masks, None)
    _plate_of_shot(scene, frames, mode, feather, plate_frames)
    return scene.background


def _plate_of_shot(scene: "_Scene", frames, mode: str, feather: float, plate_frames: int) -> None:
    """Sets ``scene.background`` to the clean plate of ``frames`` where ``mode`` needs one and none is given."""
    if mode not in ("remove_occluder", "move") or scene.background is not None:
        return
    if mode == "remove_occluder" and scene.occluder is None:
        raise ValueError("mode 'remove_occluder' needs occluder_masks: connect the masks of what hides the object.")
    selected = SelectedFrames(frames, plate_frames)
    if len(selected.indices) < frames.count:
        logger.info("Clean plate: the median over %d of the %d frames, spread over the shot.", len(selected.indices),
                    frames.count)

    def covered(rows: slice, cols: slice) -> torch.Tensor:
        return scene._covered(rows, cols, selected.indices)

    scene.background = clean_plate(selected, covered, scene.repainted(mode, feather))[None]


def _edit(scene: "_Scene", mode, opacity, feather, offset, outline_color, outline_width, image, mask) -> None:
    """One mode on a few frames (float32 chunks), written into the output views ``image`` ``[t,H,W,3]`` and
    ``mask`` ``[t,H,W]``: the frames are copied once and every layer is blended in place in its bounding box (no
    whole-frame temporaries: at 1080p a fresh frame-sized buffer costs more than the blend). ``image=None``: the
    mask alone (no colours, frames or plate are read)."""
    alpha = _alpha(scene.amodal, feather)
    if mode == "layer":
        if image is not None:
            image.copy_(scene.rgb[0])
            _paint(image, scene.rgb[1:], alpha[1:])
        _union(mask, alpha)
    elif mode == "xray":
        _xray(scene, feather, opacity, outline_color, outline_width, image, mask)
    else:
        if image is not None:
            image.copy_(scene.images)
        if mode == "reveal":
            if image is not None:
                _paint(image, scene.rgb, alpha)
            _union(mask, alpha)
        elif mode == "remove_occluder":
            _remove_occluder(scene, alpha, feather, image, mask)
        else:
            _move(scene, alpha, feather, offset, image, mask)


def _alpha(masks: torch.Tensor, feather: float, outward: bool = False) -> torch.Tensor:
    """`feather_alpha` for the blends here: with ``feather = 0`` the masks as they are (no whole-frame copy to
    clamp them; `_over` and `_union` clamp what they read to 0..1, in the box they touch)."""
    return masks.float() if feather <= 0 else feather_alpha(masks, feather, outward)


def feather_alpha(masks: torch.Tensor, feather: float, outward: bool = False) -> torch.Tensor:
    """Soft alpha ``[..., H, W]`` from masks ``[..., H, W]``: a Gaussian blur (sigma = feather / 3, kernel
    ``2 * ceil(feather) + 1``, replicated borders) so edges fade over about ``feather`` pixels; values in 0..1.

    ``outward=True`` first grows the masks by ``ceil(feather)`` pixels, so the alpha stays 1 over the whole mask
    and fades outside it (for regions to be removed, where a half-kept edge would leave a fringe).
    ``feather = 0`` returns the masks unchanged (clamped to 0..1)."""
    masks = masks.float().clamp(0, 1)
    if feather <= 0:
        return masks
    radius = math.ceil(feather)
    flat = masks.reshape(-1, 1, *masks.shape[-2:])
    if outward:
        flat = dilate(flat, radius)
    size = 2 * radius + 1
    blurred = kornia.filters.gaussian_blur2d(flat, (size, size), (feather / 3, feather / 3), border_type="replicate")
    return blurred.reshape(masks.shape).clamp(0, 1)


def outline(masks: torch.Tensor, width: int) -> torch.Tensor:
    """Inner outline ``[..., H, W]`` bool of masks ``[..., H, W]``: covered pixels within ``width`` pixels
    (chessboard distance) of an uncovered one. The frame's border does not count as uncovered."""
    covered = masks > COVERED_THRESHOLD
    lines = torch.zeros_like(covered)
    box = bounding_box(covered, margin=width) if width > 0 else None
    if box is None:
        return lines
    # only the box around the covered pixels (widened by the outline width) is filtered
    inside = covered[..., box[0], box[1]]
    lines[..., box[0], box[1]] = inside & _near(~inside, width)
    return lines


def _near(masks: torch.Tensor, width: int) -> torch.Tensor:
    """``masks`` ``[..., H, W]`` bool grown by ``width`` pixels (chessboard), as `dilate` does, by shifted ORs per
    axis: for an outline's few pixels a hundred times faster than `dilate`'s cumulative sums, whose cost (a
    gather per pixel and axis) does not depend on the radius; fragmented masks at 1080p make it the whole frame."""
    if width > OUTLINE_SHIFTS:
        return dilate(masks, width)
    grown = masks.clone()
    for d in range(1, width + 1):
        grown[..., d:] |= masks[..., :-d]
        grown[..., :-d] |= masks[..., d:]
    rows = grown.clone()
    for d in range(1, width + 1):
        grown[..., d:, :] |= rows[..., :-d, :]
        grown[..., :-d, :] |= rows[..., d:, :]
    return grown


def _xray(scene: "_Scene", feather, opacity, color, width, image, mask) -> None:
    if scene.modal is None and scene.occluder is None:
        raise ValueError(
            "mode 'xray' needs modal_masks (the visible part) or occluder_masks to know which part is hidden."
        )
    hidden = _alpha((scene.amodal - scene.visible()).clamp(0, 1), feather)
    if image is not None:
        image.copy_(scene.images)
        _paint(image, scene.rgb, hidden * opacity)
        image[outline(scene.amodal, width).any(dim=0)] = image.new_tensor(color)
    _union(mask, hidden)


def _remove_occluder(scene: "_Scene", alpha, feather, image, mask) -> None:
    if scene.occluder is None:
        raise ValueError("mode 'remove_occluder' needs occluder_masks: connect the masks of what hides the object.")
    occluder = _alpha(scene.occluder, feather, outward=True)
    if image is not None:
        _over(image, scene.plate(), occluder)
        _paint(image, scene.rgb, alpha)
    _union(mask, [occluder, *alpha])


def _move(scene: "_Scene", alpha, feather, offset: tuple[int, int], image, mask) -> None:
    hole = _alpha(scene.visible(), feather, outward=True)
    _union(mask, hole)  # the hole first (the objects' holes united), then the moved objects over it
    if image is not None:
        _over(image, scene.plate(), mask)
    for k, layer in enumerate(alpha):  # each object's box found once, for its colours and its mask
        box = bounding_box(layer)
        if box is not None:
            if image is not None:
                _over(image, scene.rgb[k], layer, offset, box)
            _over(mask, None, layer, offset, box)


def _over(base: torch.Tensor, rgb: torch.Tensor | None, alpha: torch.Tensor, offset: tuple[int, int] = (0, 0),
          box: tuple[slice, slice] | None = None) -> None:
    """Draws ``rgb`` ``[T,H,W(,C)]`` at ``alpha`` ``[T,H,W]`` over ``base`` ``[T,H,W(,C)]`` in place, both
    moved by ``offset = (x, y)`` pixels (right, down; what leaves the frame is dropped). ``rgb=None`` draws 1
    (the union of alphas: ``base + alpha * (1 - base)``, as ``alpha + base * (1 - alpha)``).

    ``alpha`` is clamped to 0..1 as it is read. Exact at alpha 0 and 1 (``lerp`` returns the ends there). Only
    the bounding box of ``alpha > 0`` is touched: at 1080p an object or occluder covers a small part of the frame,
    and a broadcast blend of every pixel costs more than the edit itself. ``box``: `bounding_box` of ``alpha``
    when the caller has it (not None)."""
    box = box or bounding_box(alpha)
    if box is None:
        return
    h, w = alpha.shape[-2:]
    dx, dy = offset
    top, bottom = max(box[0].start, -dy), min(box[0].stop, h - dy)  # source rows that land in the frame
    left, right = max(box[1].start, -dx), min(box[1].stop, w - dx)
    if top >= bottom or left >= right:
        return
    source = (slice(None), slice(top, bottom), slice(left, right))
    target = base[:, top + dy:bottom + dy, left + dx:right + dx]
    weight = alpha[source].to(base.dtype).clamp(0, 1)
    if rgb is None:
        target.mul_(1 - weight).add_(weight)
    else:
        target.lerp_(rgb[source].to(base.dtype), weight.unsqueeze(-1))


def _paint(base: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor, offset: tuple[int, int] = (0, 0)) -> None:
    """Draws objects ``rgb`` ``[N,T,H,W,3]`` at ``alpha`` ``[N,T,H,W]`` over ``base`` in place, first object
    first, moved by ``offset``."""
    for object_rgb, object_alpha in zip(rgb, alpha):
        _over(base, object_rgb, object_alpha, offset)


def _union(out: torch.Tensor, alpha) -> None:
    """Writes into ``out`` ``[T,H,W]`` the alpha of layers (``[N,T,H,W]`` or a sequence of ``[T,H,W]``, each
    clamped to 0..1) stacked with "over" (the first layer itself when N = 1)."""
    torch.clamp(alpha[0], 0, 1, out=out)
    for layer in alpha[1:]:
        _over(out, None, layer)


@dataclass
class _Scene:
    """Validated inputs on one device (as given: float, uint8 or bool; `frames` gives float32 chunks), see the
    module docstring for the shapes."""

    images: torch.Tensor  # [T,H,W,3]
    rgb: torch.Tensor  # [N,T,H,W,3]
    amodal: torch.Tensor  # [N,T,H,W]
    modal: torch.Tensor | None  # [N,T,H,W]
    occluder: torch.Tensor | None  # [T,H,W], all occluders united
    background: torch.Tensor | None  # [T,H,W,3]

    @classmethod
    def build(cls, images, amodal_rgb, amodal_masks, modal_masks, occluder_masks, background) -> "_Scene":
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be RGB frames [T, H, W, 3], got shape {tuple(images.shape)}.")
        images = images.float()
        rgb = _objects(amodal_rgb, "amodal_rgb", images.shape[:3], images.device, colour=True)
        scene = cls.build_masks(images.shape[:3], images.device, amodal_masks, modal_masks, occluder_masks,
                                background, rgb.shape[0])
        scene.images, scene.rgb = images, rgb
        return scene

    @classmethod
    def build_masks(cls, shape: tuple[int, int, int], device, amodal_masks, modal_masks, occluder_masks, background,
                    objects: int | None = None) -> "_Scene":
        """The masks and background of a clip of ``shape`` ``(T, H, W)``, checked, without frames or colours
        (a long shot's come part by part); ``objects``: the number of colour sequences, when known."""
        t, h, w = shape
        amodal = _objects(amodal_masks, "amodal_masks", shape, device, colour=False)
        if objects is not None and amodal.shape[0] != objects:
            raise ValueError(
                f"amodal_masks has {amodal.shape[0]} object(s) but amodal_rgb has {objects}: "
                "give one amodal mask sequence per amodal RGB sequence, in the same order."
            )
        modal = None
        if modal_masks is not None:
            modal = _objects(modal_masks, "modal_masks", shape, device, colour=False)
            if modal.shape[0] != amodal.shape[0]:
                raise ValueError(
                    f"modal_masks has {modal.shape[0]} object(s) but amodal_masks has {amodal.shape[0]}: "
                    "give one modal mask sequence per object, in the same order."
                )
        occluder = None
        if occluder_masks is not None:
            occluder = _objects(occluder_masks, "occluder_masks", shape, device, colour=False)
            occluder = occluder[0] if occluder.shape[0] == 1 else occluder.amax(dim=0)
        if background is not None:
            if background.dim() == 3:
                background = background.unsqueeze(0)
            if background.dim() != 4 or background.shape[-1] != 3:
                raise ValueError(f"background must be RGB [T, H, W, 3] or [1, H, W, 3], got {tuple(background.shape)}.")
            _check_size(background, "background", h, w, spatial=(1, 2))
            if background.shape[0] not in (1, t):
                raise ValueError(
                    f"background has {background.shape[0]} frames but images has {t}: "
                    "give one plate for the whole clip or one per frame."
                )
            background = background.to(device)
        return cls(None, None, amodal, modal, occluder, background)

    def frames(self, part: slice) -> "_Scene":
        """Frames ``part`` as float32 (0..1; uint8 colours are divided by 255, bool masks are 0/1)."""
        t = self.amodal.shape[1]

        def f(x, colour=False):
            if x is None:
                return None
            x = x[..., part, :, :, :] if colour else x[..., part, :, :]
            if x.dtype == torch.uint8 and (colour or x.max() > 1):
                return x.float() / 255
            return x.float()

        background = None
        if self.background is not None:  # one plate for the clip, or one per frame
            plate = self.background if self.background.shape[0] == 1 else self.background[part]
            plate = plate.float() / 255 if plate.dtype == torch.uint8 else plate.float()
            background = plate.expand(len(range(t)[part]), -1, -1, -1)
        return _Scene(f(self.images, True), f(self.rgb, True), f(self.amodal), f(self.modal), f(self.occluder),
                      background)

    def visible(self) -> torch.Tensor:
        """``[N,T,H,W]``: the modal masks; without them, amodal outside the occluders; without those, amodal."""
        if self.modal is not None:
            return self.modal
        if self.occluder is not None:
            return self.amodal * (1 - self.occluder)
        return self.amodal

    def repainted(self, mode: str, feather: float) -> torch.Tensor:
        """``[H, W]`` bool: every pixel where ``mode`` draws the background plate in some frame (the occluder for
        remove_occluder, the objects' visible part for move), grown by the reach of `feather_alpha` (outward growth
        plus blur kernel, ``2 * ceil(feather)``) and a pixel of safety."""
        source = self.occluder if mode == "remove_occluder" else self.visible()
        t = self.amodal.shape[1]
        union = torch.zeros(self.amodal.shape[2:4], dtype=torch.bool, device=self.amodal.device)
        for part in chunks(t):
            union |= footprint(source[..., part, :, :])
        grow = 2 * math.ceil(feather) + 1
        return dilate(union, grow)

    def plate(self, needed: torch.Tensor | None = None) -> torch.Tensor:
        """``[T,H,W,3]``: the given background, or the clean plate of what neither objects nor occluders cover
        (computed where ``needed`` ``[H, W]`` says the edit draws it; everywhere when None). The covered masks are
        built only in the box the clean plate asks for: a small object in a 4K clip costs its box, not the frame."""
        if self.background is not None:
            return self.background
        return clean_plate(self.images, self._covered, needed).expand_as(self.images)

    def _covered(self, rows: slice, cols: slice, frames: list[int] | None = None) -> torch.Tensor:
        """``[T, h, w]`` bool in the box ``rows`` x ``cols``: where an object or an occluder is (built a few frames
        at a time); of the frames ``frames`` only when given (a long shot's plate frames)."""
        indices = list(range(self.amodal.shape[1])) if frames is None else list(frames)
        covered = torch.empty(len(indices), rows.stop - rows.start, cols.stop - cols.start, dtype=torch.bool,
                              device=self.amodal.device)
        start = 0
        while start < len(indices):  # runs of up to 8 consecutive frames
            stop = start + 1
            while stop < len(indices) and stop - start < 8 and indices[stop] == indices[stop - 1] + 1:
                stop += 1
            chunk = self.frames(slice(indices[start], indices[stop - 1] + 1))
            amodal = chunk.amodal[..., rows, cols]
            amodal = amodal[0] if len(amodal) == 1 else amodal.amax(dim=0)  # any object
            out = covered[start:stop]
            torch.gt(amodal, COVERED_THRESHOLD, out=out)
            if chunk.occluder is not None:
                out |= chunk.occluder[..., rows, cols] > COVERED_THRESHOLD
            start = stop
        return covered


def _objects(x: torch.Tensor, name: str, shape: tuple[int, int, int], device, colour: bool) -> torch.Tensor:
    """``[N,T,H,W(,3)]`` on ``device`` from ``x`` with or without the object dimension, checked against the clip's
    ``shape`` ``(T, H, W)``."""
    t, h, w = shape
    per_object = 4 if colour else 3
    if x.dim() == per_object:
        x = x.unsqueeze(0)
    expected = "[N, T, H, W, 3] or [T, H, W, 3]" if colour else "[N, T, H, W] or [T, H, W]"
    if x.dim() != per_object + 1 or (colour and x.shape[-1] != 3):
        raise ValueError(f"{name} must be {expected}, got shape {tuple(x.shape)}.")
    _check_size(x, name, h, w, spatial=(2, 3))
    if x.shape[1] != t:
        raise ValueError(
            f"{name} has {x.shape[1]} frames per object but images has {t}: give one frame per video frame "
            "(trim or resample the sequences to the same length)."
        )
    if x.is_floating_point() and not all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values; check the node that made it.")
    return x.to(device)


def _check_size(x: torch.Tensor, name: str, h: int, w: int, spatial: tuple[int, int]) -> None:
    got = (x.shape[spatial[0]], x.shape[spatial[1]])
    if got != (h, w):
        raise ValueError(
            f"{name} is {got[0]}x{got[1]} (HxW) but images are {h}x{w}: resize {name} to the frames' size first."
        )
