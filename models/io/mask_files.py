"""Mask image folders as people save them: one reader for binary masks and label/palette images.

``mask_format`` says how pixel values become objects (`MASK_FORMATS`):

* ``binary``: one object, visible where the grey level is above 128, as the authors read every mask (PIL
  ``convert("L")``, ``> 128``). The grey level is the luminance after the palette lookup (palette PNGs), of the
  RGB colour (RGB, JPEG), or the value itself (grey PNGs). Three departures, each where the authors' reading would
  return nothing useful: an alpha channel that is used (some pixel not opaque, in any file of the folder) is the
  mask instead (``alpha > 128``: cut-outs and alpha-matte exports, whose colour under transparency is arbitrary);
  a folder whose grey levels are only 0 and 1 is a 0/1 mask (1 is on); 16-bit images whose values exceed 255
  are scaled to 8 bits (``round(v / 257)``) where Pillow would clip them.
* ``labels``: several objects, the value is the object id (0 = background): the palette index (DAVIS, YouTube-VOS,
  SAM2 multi-object exports), the grey value (8/16-bit label images), or for RGB images the colour (the DAVIS/VOC
  palette index when every colour is one of its entries, else 1, 2, ... in the order of the packed colour value).
* ``auto`` (default): decided per folder from evidence, never from the file mode alone. Labels need

  1. evidence that the values are ids, not grey levels: some object colour is not a shade of grey (a label
     palette), or nothing at all would be visible as a grey-level mask (dark ids 1, 2, 3 ...);
  2. few ids (at most `MAX_LABEL_OBJECTS` that cover a real region), and
  3. each id covering a real region: at least `MIN_OBJECT_FRACTION` of the frame in some frame. Smaller ids (edge
     fringes of anti-aliased exports, stray pixels) are reported and left out of `MaskFolder.ids`; they are
     still read and can be selected by id.

  Anything else is binary: a palette that is a ramp of greys (anti-aliased masks saved with an adaptive palette,
  whatever the order of its entries), 0/1 and 0/255 masks, JPEG noise. The choice and its reason are logged.

Arrays: ``values`` is ``[T, H, W]``; uint16 ids (labels) or bool (binary). Ids are at most 65535.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

import torch

from ..base.packed_masks import PackedMasks
from ..base.threads import thread_map
from ..base.chunking import MASK_THRESHOLD_U8
from ..stages.conditions import resize_masks_nearest
from ..base.sequences import check_parts
from .media import IMAGE_EXTENSIONS, image_files, select_range

logger = logging.getLogger(__name__)

MASK_FORMATS = ("auto", "binary", "labels")
MIN_OBJECT_FRACTION = 0.001  # an id is a real object when it covers >= 0.1% of the frame in some frame
MAX_LABEL_OBJECTS = 32  # more real ids than this is not a label image (DAVIS has at most ~10 objects per clip)
RECENT_PIXELS = 1 << 25  # mask pixels of recently read frames kept (16 frames at 1080p, 4 at 4K)
MAX_COLOURS = 256  # RGB images with more distinct colours than this are grey-level/colour images, not labels
GREY_TOLERANCE = 12  # a colour is a shade of grey when max(R, G, B) - min(R, G, B) <= this
LABEL_MODES = ("P", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # modes whose values can be ids


@dataclass
class MaskObject:
    """One object id of a folder: ``pixels`` in all frames, ``frames`` it appears in, its largest share of a
    frame (``max_fraction``, 0..1) and its colour in the file (RGB, for the log)."""

    id: int
    pixels: int
    frames: int
    max_fraction: float
    colour: tuple[int, int, int] | None = None

    @property
    def tiny(self) -> bool:
        return self.max_fraction < MIN_OBJECT_FRACTION

    def describe(self) -> str:
        colour = f", colour {self.colour}" if self.colour is not None else ""
        return (f"id {self.id}: {self.pixels} pixels in {self.frames} frames (at most {100 * self.max_fraction:.2f}% "
                f"of a frame{colour})")


@dataclass
class MaskFolder:
    """The masks of one folder, scanned in one format; each frame is read again from its file when asked for, so a
    shot of minutes at 4K is never held (`sequence` hands one object's masks over part by part).

    ``objects``: every id present with its pixel counts (binary: one object with id 0, when any pixel is on).
    ``ids``: the objects to process by default (labels: the ids that cover a real region, `MIN_OBJECT_FRACTION`;
    tiny ids are left out with a warning). `frame` gives one file's values: ``[H, W]`` bool (binary) or uint16 ids
    (labels).
    """

    folder: Path
    files: list[Path]
    format: str
    reason: str
    objects: list[MaskObject] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    rule: "_Rule | None" = None
    _recent: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)

    @property
    def ids(self) -> list[int]:
        """Ids to process by default: labels covering a real region; binary: ``[0]`` unless every mask is empty
        (a tiny binary mask is kept, with a warning)."""
        return [o.id for o in self.objects if self.format == "binary" or not o.tiny]

    @property
    def tiny_ids(self) -> list[int]:
        return [o.id for o in self.objects if o.tiny]

    @property
    def count(self) -> int:
        return len(self.files)

    def frame(self, index: int) -> np.ndarray:
        """File ``index``'s values, read again: ``[H, W]`` bool (binary) or uint16 ids (labels). The last few
        frames read are kept (`RECENT_PIXELS`): the stages read an object's masks in step from two places."""
        values = self._recent.get(index)
        if values is not None:
            self._recent.move_to_end(index)
            return values
        image = _MaskImage.read(self.files[index])
        if image.shape != self.size:
            raise ValueError(f"Mask {image.file.name} is now {image.shape[1]}x{image.shape[0]}, not the "
                             f"{self.size[1]}x{self.size[0]} it had when the folder {self.folder} was read; do not "
                             "change the masks during a run.")
        values = self.rule.values(image)
        values.setflags(write=False)
        self._recent[index] = values
        while len(self._recent) > max(1, RECENT_PIXELS // values.size):
            self._recent.popitem(last=False)
        return values

    @property
    def values(self) -> np.ndarray:
        """``[T, H, W]`` every frame's values (bool or uint16), read now."""
        return np.stack([self.frame(i) for i in range(self.count)])

    def check_id(self, object_id: int) -> None:
        """Raises, naming what to change, when ``object_id`` cannot be selected."""
        if self.format == "binary":
            if object_id:
                raise ValueError(f"object_id {object_id}: the masks in {self.folder} are read as binary (one "
                                 f"object; {self.reason}). Set object_id to 0, or mask_format to 'labels' if the "
                                 "pixel values are object ids.")
        elif object_id and object_id not in {o.id for o in self.objects}:
            present = [o.id for o in self.objects] or "none (all masks are empty)"
            raise ValueError(f"object_id {object_id} appears in none of the selected masks in {self.folder}; ids "
                             f"present: {present}.")

    def select_frame(self, values: np.ndarray, object_id: int) -> np.ndarray:
        """One frame's values -> ``[H, W]`` bool of ``object_id`` (0 = every object pixel, or the binary mask)."""
        if self.format == "binary":
            return values
        return values > 0 if object_id == 0 else values == object_id

    def select(self, object_id: int = 0) -> np.ndarray:
        """``[T, H, W]`` bool mask of ``object_id``; 0 = every object pixel (labels) or the mask (binary)."""
        self.check_id(object_id)
        return np.stack([self.select_frame(self.frame(i), object_id) for i in range(self.count)])

    def sequence(self, object_id: int = 0, size: tuple[int, int] | None = None, name: str | None = None):
        """Object ``object_id``'s masks as a `base.sequences.MaskSequence`, read part by part from the files;
        resized to ``size`` ``(H, W)`` by nearest neighbour (OpenCV-exact) when given and different."""
        self.check_id(object_id)
        return MaskFileSequence(self, object_id, size, name or f"masks {self.folder} (id {object_id})")

    def describe(self) -> str:
        """One line per object, for logs and the CLI's listing."""
        lines = [f"{self.folder}: {len(self.files)} masks of {self.size[1]}x{self.size[0]}, read as {self.format} "
                 f"({self.reason})"]
        lines += [f"  {o.describe()}{'  [tiny: left out unless selected]' if o.tiny else ''}" for o in self.objects]
        if not self.objects:
            lines.append("  no object pixel in any mask")
        return "\n".join(lines)


class MaskFileSequence:
    """One object of a `MaskFolder` as a `MaskSequence`: ``[t, H, W]`` bool parts read from the files.

    The files are decoded on the first pass only: what was read is kept packed (`base.packed_masks`, about 12 KB
    a 1080p frame for a clean mask) and every later pass (the stages read the visible masks three or four times)
    unpacks it, some thirty times faster than decoding a PNG again."""

    def __init__(self, folder: MaskFolder, object_id: int, size: tuple[int, int] | None, name: str):
        self.masks, self.object_id, self.name = folder, object_id, name
        self.count = folder.count
        self.size = tuple(size) if size is not None else folder.size
        self.kept = PackedMasks(folder.size)

    def read(self, parts):
        for part in check_parts(parts, self.count, self.name):
            if self.kept.holds(part):
                masks = self.kept.get_part(part)
            else:
                frames = [self.masks.select_frame(self.masks.frame(i), self.object_id)
                          for i in range(part.start, part.stop)]
                masks = torch.from_numpy(np.stack(frames))
                self.kept.put_part(part, masks)
            if tuple(masks.shape[-2:]) != self.size:
                masks = resize_masks_nearest(masks, self.size)
            yield masks


def read_mask_folder(folder, mask_format: str = "auto", start: int = 0, count: int = 0, every: int = 1,
                     log_level: int = logging.INFO) -> MaskFolder:
    """The mask images of ``folder`` in natural name order, ``[start::every]`` limited to ``count`` (0 = all).

    The format chosen, its reason and the objects found are logged at ``log_level``; tiny objects always warn."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise ValueError(f"Mask folder {path} does not exist; check the path (a folder of mask images, one per "
                         "frame).")
    if not path.is_dir():
        raise ValueError(f"Mask folder {path} is a file, not a folder; give the folder that holds the mask images.")
    files = image_files(path)
    if not files:
        raise ValueError(f"Mask folder {path} has no mask images ({', '.join(IMAGE_EXTENSIONS)}).")
    return read_mask_files(select_range(files, start, count, every, f"masks in {path}"), mask_format, path,
                           log_level)


def read_mask_files(files: list[Path], mask_format: str = "auto", folder: Path | None = None,
                    log_level: int = logging.INFO) -> MaskFolder:
    """Reads ``files`` (one mask per frame, all of one size) in ``mask_format``; logs the format and why."""
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format {mask_format!r}: use one of {', '.join(MASK_FORMATS)}.")
    if not files:
        raise ValueError("No mask files to read; check the folder and the start/count/every settings.")
    folder = Path(folder) if folder is not None else Path(files[0]).parent
    # one read per file, nothing kept; files in parallel (PIL's decoding and NumPy's counts release the GIL)
    stats = thread_map(lambda f: _FileStats.of(_MaskImage.read(Path(f))), files)
    _check_sizes(stats, folder)
    uses_alpha = any(stat.alpha_used for stat in stats)
    scale16 = max(stat.max_value for stat in stats) > 255 and any(stat.wide for stat in stats)
    colour_ids = _colour_ids(stats) if mask_format != "binary" and not uses_alpha else None
    zero_one = max(stat.grey[scale16][0] for stat in stats) == 1

    if mask_format == "auto":
        chosen, reason = _decide(stats, uses_alpha, scale16, zero_one, colour_ids)
    elif mask_format == "binary":
        chosen, reason = "binary", _binary_reason(uses_alpha, zero_one)
    else:
        if uses_alpha:
            raise ValueError(f"mask_format 'labels': the masks in {folder} have transparency (an alpha mask, one "
                             "object); use mask_format 'binary' or 'auto'.")
        if colour_ids is None:
            raise ValueError(f"mask_format 'labels': the colour masks in {folder} have more than {MAX_COLOURS} "
                             "colours, so the colours cannot be object ids; use 'binary' or 'auto'.")
        chosen, reason = "labels", "asked for labels: " + _label_source(stats)
    if chosen == "binary" and scale16 and not uses_alpha:
        reason += "; 16-bit values scaled to 8 bits"
    rule = _Rule(chosen, uses_alpha, scale16, zero_one, colour_ids or {})
    if chosen == "binary":
        objects = [MaskObject(0, o.pixels, o.frames, o.max_fraction)
                   for o in _objects([{1: stat.binary_on(uses_alpha, scale16, zero_one)} for stat in stats],
                                     stats[0].pixels, lambda i: None)]
    else:
        objects = _objects([stat.label_counts(rule.colour_ids) for stat in stats], stats[0].pixels,
                           lambda i: _id_colour(stats, i, rule.colour_ids))
    result = MaskFolder(folder, [stat.file for stat in stats], chosen, reason, objects, stats[0].shape, rule)
    _log(result, log_level)
    return result


# -- one file ----------------------------------------------------------------------------------------------------

@dataclass
class _MaskImage:
    """One decoded mask file: its grey levels, its label values and their colours, its alpha."""

    file: Path
    mode: str
    grey: np.ndarray            # [H, W] uint8 luminance (PIL "L"), or uint16 values of a 16/32-bit image
    labels: np.ndarray | None   # [H, W] ids (palette index / grey value), None for RGB(A) colour images
    rgb: np.ndarray | None      # [H, W, 3] uint8 for colour images (labels by colour), else None
    palette: np.ndarray | None  # [256, 3] uint8 for palette images
    alpha: np.ndarray | None    # [H, W] uint8 when the file has an alpha channel / transparent palette entry
    wide: bool                  # 16/32-bit values

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.grey.shape)

    @property
    def pixels(self) -> int:
        return self.grey.shape[0] * self.grey.shape[1]

    @property
    def alpha_used(self) -> bool:
        return self.alpha is not None and bool((self.alpha < 255).any())

    @property
    def max_value(self) -> int:
        return int(self.grey.max())

    @classmethod
    def read(cls, file: Path) -> "_MaskImage":
        try:
            with Image.open(file) as image:
                image.load()
                return cls._decode(file, image)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
            raise ValueError(f"Cannot read mask file {file} ({err}); replace it or remove it from the folder.") from err

    @classmethod
    def _decode(cls, file: Path, image: Image.Image) -> "_MaskImage":
        mode = image.mode
        alpha = None
        if "A" in image.getbands():
            alpha = np.asarray(image.getchannel("A"))
        elif mode == "P" and "transparency" in image.info:
            alpha = np.asarray(image.convert("RGBA").getchannel("A"))
        if mode == "P":
            palette = np.zeros((256, 3), np.uint8)
            entries = np.frombuffer(image.palette.tobytes(), np.uint8)
            channels = len(image.palette.mode)
            entries = entries[: entries.size - entries.size % channels].reshape(-1, channels)[:256, :3]
            palette[: len(entries)] = entries
            index = np.asarray(image)
            return cls(file, mode, np.asarray(image.convert("L")), index, None, palette, alpha, False)
        if mode in LABEL_MODES:  # 16/32-bit grey: the values themselves (ids, or grey levels on a wider scale)
            values = np.asarray(image)
            if values.dtype.kind == "f":
                if not np.isfinite(values).all() or (values < 0).any() or (values != np.round(values)).any():
                    raise ValueError("floating-point mask with negative or fractional values; save masks as 8-bit "
                                     "or 16-bit integer PNGs")
            values = values.astype(np.int64)
            if values.min() < 0 or values.max() > 65535:
                raise ValueError(f"values {values.min()}..{values.max()} are outside 0..65535")
            values = values.astype(np.uint16)
            return cls(file, mode, values, values, None, None, alpha, True)
        if mode in ("1", "L", "LA"):
            grey = np.asarray(image.convert("L"))
            return cls(file, mode, grey, grey, None, None, alpha, False)
        rgb = np.asarray(image.convert("RGB"))
        return cls(file, mode, np.asarray(image.convert("L")), None, rgb, None, alpha, False)


@dataclass
class _FileStats:
    """What the format decision needs of one file, computed in one read; the pixels are not kept.

    ``grey[scale16]`` is ``(max grey level, pixels == 1, pixels > 128)`` of the grey levels as the authors read
    them, with 16-bit values scaled (True) or clipped (False) (the folder decides which); ``labels``: the label
    values' ``{value: pixels}`` (palette/grey images); ``colours``: ``{packed RGB: pixels}`` (colour images; None
    when the file alone has more than `MAX_COLOURS` colours)."""

    file: Path
    shape: tuple[int, int]
    kind: str
    wide: bool
    alpha_used: bool
    alpha_on: int
    max_value: int
    palette: np.ndarray | None
    grey: dict
    labels: dict[int, int] | None
    colours: dict[int, int] | None

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    @classmethod
    def of(cls, image: _MaskImage) -> "_FileStats":
        grey = {}
        for scale16 in (False, True):
            levels = _grey_levels(image, scale16)
            grey[scale16] = (int(levels.max()), int(np.count_nonzero(levels == 1)),
                             int(np.count_nonzero(levels > MASK_THRESHOLD_U8)))
        labels = colours = None
        if image.labels is not None:
            counts = np.bincount(image.labels.ravel())
            labels = {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
        if image.rgb is not None:
            values, counts = np.unique(_pack(image.rgb), return_counts=True)
            colours = dict(zip(values.tolist(), counts.tolist())) if len(values) <= MAX_COLOURS else None
        kind = "palette indices" if image.palette is not None else "colours" if image.rgb is not None else "grey values"
        alpha_on = image.pixels if image.alpha is None else int(np.count_nonzero(image.alpha > MASK_THRESHOLD_U8))
        return cls(image.file, image.shape, kind, image.wide, image.alpha_used, alpha_on, image.max_value,
                   image.palette, grey, labels, colours)

    def binary_on(self, uses_alpha: bool, scale16: bool, zero_one: bool) -> int:
        """Pixels on under the folder's binary rule (`_Rule.values`)."""
        if uses_alpha:
            return self.alpha_on
        return self.grey[scale16][1 if zero_one else 2]

    def label_counts(self, colour_ids: dict[int, int]) -> dict[int, int]:
        """``{id: pixels}`` of this file's labels (`_label_values`)."""
        if self.labels is not None:
            return self.labels
        counts: dict[int, int] = {}
        for colour, pixels in (self.colours or {}).items():
            object_id = colour_ids.get(colour, 0)
            counts[object_id] = counts.get(object_id, 0) + pixels
        return counts


@dataclass
class _Rule:
    """How a file's pixels become the folder's values, decided once for the folder."""

    format: str
    uses_alpha: bool
    scale16: bool
    zero_one: bool
    colour_ids: dict[int, int]

    def values(self, image: _MaskImage) -> np.ndarray:
        """``[H, W]`` bool (binary: alpha > 128, 1 in 0/1 masks, else grey level > 128) or uint16 ids (labels)."""
        if self.format == "labels":
            return _label_values(image, self.colour_ids)
        if self.uses_alpha:
            if image.alpha is None:
                return np.ones(image.shape, dtype=bool)
            return image.alpha > MASK_THRESHOLD_U8
        grey = _grey_levels(image, self.scale16)
        return grey == 1 if self.zero_one else grey > MASK_THRESHOLD_U8


def _check_sizes(stats: list[_FileStats], folder: Path) -> None:
    first = stats[0]
    for stat in stats[1:]:
        if stat.shape != first.shape:
            raise ValueError(f"Mask {stat.file.name} is {stat.shape[1]}x{stat.shape[0]} but {first.file.name} is "
                             f"{first.shape[1]}x{first.shape[0]} (WxH, in {folder}); all masks of a clip must have "
                             "one size: re-export them at the frame size.")


# -- grey levels (binary) ----------------------------------------------------------------------------------------

def _grey_levels(image: _MaskImage, scale16: bool) -> np.ndarray:
    """``[H, W]`` uint8 grey levels as the authors read them (16-bit values above 255 scaled, not clipped)."""
    if image.wide:
        values = image.grey.astype(np.float64)
        return (np.round(values / 257) if scale16 else np.minimum(values, 255)).astype(np.uint8)
    return image.grey


def _binary_reason(uses_alpha: bool, zero_one: bool) -> str:
    if uses_alpha:
        return "the alpha channel is the mask (alpha > 128)"
    if zero_one:
        return "0/1 mask (1 is on)"
    return f"grey level > {MASK_THRESHOLD_U8} as the authors read masks"


# -- labels ------------------------------------------------------------------------------------------------------

def voc_palette() -> np.ndarray:
    """``[256, 3]`` uint8: the PASCAL VOC / DAVIS label palette (index bits spread over R, G, B from the top)."""
    palette = np.zeros((256, 3), np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def _colour_ids(stats: list[_FileStats]) -> dict[int, int] | None:
    """RGB colour images: packed colour -> id (black = 0), or None when there are too many colours to be labels.
    Images that carry labels already (palette, grey) need no table: returns ``{}``."""
    colour_stats = [stat for stat in stats if stat.kind == "colours"]
    if not colour_stats:
        return {}
    colours: set[int] = set()
    for stat in colour_stats:
        if stat.colours is None:
            return None
        colours.update(stat.colours)
        if len(colours) > MAX_COLOURS:
            return None
    colours.discard(0)
    voc = {int(c): i for i, c in enumerate(_pack(voc_palette()[None])[0]) if i}
    if all(c in voc for c in colours):
        return {c: voc[c] for c in colours}
    return {c: i + 1 for i, c in enumerate(sorted(colours))}


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _label_values(image: _MaskImage, colour_ids: dict[int, int]) -> np.ndarray:
    """``[H, W]`` uint16 ids of one file."""
    if image.labels is not None:
        return image.labels.astype(np.uint16)
    packed = _pack(image.rgb)
    ids = np.zeros(packed.shape, np.uint16)
    for colour, object_id in colour_ids.items():
        ids[packed == colour] = object_id
    return ids


def _id_colour(stats: list[_FileStats], object_id: int, colour_ids: dict[int, int]) -> tuple[int, int, int]:
    for stat in stats:
        if stat.palette is not None:
            return tuple(int(v) for v in stat.palette[object_id])
    for colour, value in (colour_ids or {}).items():
        if value == object_id:
            return (colour >> 16) & 255, (colour >> 8) & 255, colour & 255
    return (object_id, object_id, object_id) if object_id < 256 else (255, 255, 255)


def _objects(per_frame: list[dict[int, int]], frame_pixels: int, colours) -> list[MaskObject]:
    """Every non-zero id of per-frame ``{id: pixels}`` counts, with its totals (ascending ids)."""
    ids = sorted({i for counts in per_frame for i, pixels in counts.items() if i and pixels})
    objects = []
    for object_id in ids:
        column = [counts.get(object_id, 0) for counts in per_frame]
        objects.append(MaskObject(int(object_id), int(sum(column)), sum(1 for c in column if c > 0),
                                  max(column) / frame_pixels, colours(int(object_id))))
    return objects


def _is_grey(colour: tuple[int, int, int]) -> bool:
    return max(colour) - min(colour) <= GREY_TOLERANCE


def _label_source(stats: list[_FileStats]) -> str:
    return " and ".join(sorted({stat.kind for stat in stats})) + " are object ids"


# -- auto --------------------------------------------------------------------------------------------------------

def _decide(stats: list[_FileStats], uses_alpha: bool, scale16: bool, zero_one: bool,
            colour_ids) -> tuple[str, str]:
    """``auto``: ("labels" | "binary", reason) from the evidence described in the module docstring."""
    if uses_alpha:
        return "binary", "transparency is used, so the alpha channel is the mask (alpha > 128)"
    if colour_ids is None:
        return "binary", (f"more than {MAX_COLOURS} distinct colours (grey levels, anti-aliasing or compression "
                          f"noise), so grey level > {MASK_THRESHOLD_U8} as the authors read masks")
    if zero_one:
        return "binary", "0/1 mask (1 is on)"
    objects = _objects([stat.label_counts(colour_ids) for stat in stats], stats[0].pixels,
                       lambda i: _id_colour(stats, i, colour_ids))
    real = [o for o in objects if not o.tiny]
    if not real:
        return "binary", (f"no label value covers {100 * MIN_OBJECT_FRACTION:g}% of a frame, so grey level > "
                          f"{MASK_THRESHOLD_U8} as the authors read masks")
    coloured = [o for o in real if not _is_grey(o.colour)]
    nothing_visible = not any(stat.grey[scale16][2] for stat in stats)
    if not coloured and not nothing_visible:
        what = "palette colours" if any(stat.palette is not None for stat in stats) else "values"
        levels = ("one grey level besides the background" if len(objects) == 1 else
                  f"{len(objects)} shades of grey, not label colours")
        return "binary", (f"the {what} in use are {levels}, so grey level > {MASK_THRESHOLD_U8} as the authors "
                          "read masks")
    if len(real) > MAX_LABEL_OBJECTS:
        return "binary", (f"{len(real)} label values cover a real region, more than the {MAX_LABEL_OBJECTS} "
                          f"objects a label image holds, so grey level > {MASK_THRESHOLD_U8}")
    evidence = (f"{len(coloured)} distinct label colours" if coloured else
                f"no pixel is brighter than {MASK_THRESHOLD_U8}, so the values are ids")
    tiny = len(objects) - len(real)
    extra = f", {tiny} tiny ids left out" if tiny else ""
    return "labels", f"{_label_source(stats)}: {evidence}, {len(real)} objects{extra}"


def _log(result: MaskFolder, level: int) -> None:
    logger.log(level, "%s", result.describe())
    if result.tiny_ids:
        small = [o for o in result.objects if o.tiny]
        tiny = "; ".join(o.describe() for o in small[:8]) + (f"; and {len(small) - 8} more" if len(small) > 8 else "")
        if result.format == "binary":
            logger.warning("The mask in %s covers less than %g%% of the frame in every frame (%s); check that "
                           "this is the object you mean (mask_format %s: %s).", result.folder,
                           100 * MIN_OBJECT_FRACTION, tiny, result.format, result.reason)
        else:
            logger.warning("Label ids in %s cover less than %g%% of the frame in every frame and are not taken as "
                           "objects (edge fringes or stray pixels?): %s. Select one by its id to use it anyway.",
                           result.folder, 100 * MIN_OBJECT_FRACTION, tiny)
