"""Synthetic amodal benchmark: textured objects moving behind occluders, with exact ground truth.

A clip is drawn back to front: a static textured background plate, the objects (object 1 farthest, each nearer
object in front of the previous ones), then the occluders (nearest of all). Everything is deterministic by seed.

* Objects have a shape (``SHAPES``: disk, ellipse, rectangle, star, hexagon), a texture defined in the object's
  own coordinates (stripes, checker or rings in two colours, with shading), and move across the frame:
  translation with a vertical sway, a change of scale, a slow rotation and a non-rigid deformation
  (area-preserving squash and stretch plus a bend), so the texture moves and deforms with the shape.
* Occluders (vertical bars or large disks, textured) slide across an object's path and cross it around the middle
  of the clip; a wide or slow occluder hides the object completely for some frames.
* Ground truth per object: the amodal mask (the full shape inside the frame), the modal mask (the amodal mask
  minus the occluders and nearer objects), and the amodal RGB (the object's own colours everywhere inside the
  amodal mask, hidden part included; 0 outside). Per clip: the occluder mask (all occluders united), the
  background plate, and a pseudo-depth map from the true layer order.
* Pseudo-depth mimics relative inverse depth (near = large, as Depth Anything V2 returns): the background ramps
  from 0.10 (top) to 0.30 (bottom), object ``i`` of ``N`` sits at ``0.45 + 0.30 * i / N``, occluders at 0.90.
  Stage 1 of the real pipeline gets its depth from Depth Anything V2 (`models.depth`); on synthetic clips this
  exact layer depth stands in for it.
* Every colour and depth value is a multiple of 1/255, so writing a clip as 8-bit PNGs and reading it back
  returns identical tensors.

Random draws come from independent streams per part (background, object ``i``, occluders), so a clip generated
with fewer occluders or more objects keeps the same background and the same first objects.

Folder layout (`write_clip`, `read_clip`); frames are ``00000.png``, ``00001.png``, ...::

    <clip>/meta.json           generator, seed, spec, object and occluder descriptions
    <clip>/rgb/                RGB frames
    <clip>/modal/              visible mask, grayscale 0/255
    <clip>/amodal/             full mask, grayscale 0/255
    <clip>/amodal_rgb/         the object's true colours inside its full mask, black outside (RGB)
    <clip>/occluder/           all occluders united, grayscale 0/255
    <clip>/background/         the background plate (RGB)
    <clip>/depth/              pseudo-depth, grayscale, near = bright

With one object, ``modal/``, ``amodal/`` and ``amodal_rgb/`` hold the frames directly. With several objects each
of them holds one sub-folder per object, ``obj1/``, ``obj2/``, ... (back to front), with the frames inside.
`read_clip` reads folders made elsewhere too: only ``rgb/``, ``modal/`` and ``amodal/`` are required; masks are
read by `models.io.mask_files` (any format it reads; binary masks are on above 128, as the authors read them).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..io.frame_source import read_frames
from ..io.mask_files import read_mask_folder
from ..stages.conditions import to_uint8

SHAPES = ("disk", "ellipse", "rectangle", "star", "hexagon")
PATTERNS = ("stripes", "checker", "rings")
OCCLUDER_SHAPES = ("bar", "disk")
MASK_FOLDERS = ("modal", "amodal")
OBJECT_FOLDERS = ("modal", "amodal", "amodal_rgb")
CLIP_FOLDERS = ("rgb", "modal", "amodal", "amodal_rgb", "occluder", "background", "depth")
LAYOUT_VERSION = 1

BACKGROUND_DEPTH = (0.10, 0.30)  # top, bottom
OBJECT_DEPTH = (0.45, 0.75)  # farthest object, span to the nearest
OCCLUDER_DEPTH = 0.90


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate.

    frames, height, width: clip size ``[T, H, W]``.
    objects: objects per clip (object 1 farthest). occluders: occluders per clip (may be 0).
    shapes: the shapes objects are drawn from.
    object_size: object radius range as a fraction of ``height``.
    occluder_width: occluder width (bar) or diameter (disk) range as a multiple of the object's diameter;
        above 1 with a slow crossing gives fully occluded frames.
    deformation: strength of the non-rigid deformation (0 = rigid shapes).
    motion: scales every path (objects and occluders) about its midpoint: 1 = objects cross most of the frame
        during the clip, 0.5 = half as far (slower, as in most real footage), 0 = nothing moves (occlusions
        then never change). Other random draws are unaffected.
    """

    frames: int = 25
    height: int = 128
    width: int = 256
    objects: int = 1
    occluders: int = 1
    shapes: tuple[str, ...] = SHAPES
    object_size: tuple[float, float] = (0.22, 0.34)
    occluder_width: tuple[float, float] = (0.5, 1.5)
    deformation: float = 0.15
    motion: float = 1.0

    def __post_init__(self):
        for name in ("frames", "height", "width", "objects"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SyntheticSpec.{name} must be at least 1, got {getattr(self, name)}.")
        if self.height < 8 or self.width < 8:
            raise ValueError(f"SyntheticSpec height/width must be at least 8 pixels; got {self.height}x{self.width}.")
        if self.occluders < 0:
            raise ValueError(f"SyntheticSpec.occluders must be >= 0, got {self.occluders}.")
        unknown = [s for s in self.shapes if s not in SHAPES]
        if not self.shapes or unknown:
            raise ValueError(f"SyntheticSpec.shapes must be a non-empty subset of {SHAPES}; got {self.shapes}.")
        for name in ("object_size", "occluder_width"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"SyntheticSpec.{name} must be a range (low, high) with 0 < low <= high; "
                                 f"got {(lo, hi)}.")
        for name in ("deformation", "motion"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyntheticSpec.{name} must be >= 0, got {getattr(self, name)}.")


@dataclass
class BenchmarkClip:
    """One clip with ground truth. ``N`` objects, ``T`` frames of ``H x W``; colours float32 in 0..1.

    rgb: ``[T, H, W, 3]`` the video.
    modal: ``[N, T, H, W]`` bool, each object's visible part.
    amodal: ``[N, T, H, W]`` bool, each object's full shape (inside the frame).
    amodal_rgb: ``[N, T, H, W, 3]`` each object's own colours inside ``amodal``, 0 outside; or None.
    occluder: ``[T, H, W]`` bool, the occluders united; or None.
    background: ``[T, H, W, 3]`` the plate without objects or occluders; or None.
    depth: ``[T, H, W]`` pseudo-depth, near = large; or None.
    meta: description (``meta.json``); ``name`` is the folder name when written.
    """

    rgb: torch.Tensor
    modal: torch.Tensor
    amodal: torch.Tensor
    amodal_rgb: torch.Tensor | None = None
    occluder: torch.Tensor | None = None
    background: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "clip"))


def generate_clip(spec: SyntheticSpec | None = None, seed: int = 0, name: str | None = None) -> BenchmarkClip:
    """Generates one clip (see the module docstring). The same ``spec`` and ``seed`` give identical tensors."""
    spec = spec or SyntheticSpec()
    t_count, h, w = spec.frames, spec.height, spec.width
    root = np.random.SeedSequence(int(seed))
    bg_seq, obj_seq, occ_seq = root.spawn(3)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5, torch.arange(w, dtype=torch.float32) + 0.5,
                            indexing="ij")
    s = torch.linspace(0, 1, t_count) if t_count > 1 else torch.full((1,), 0.5)

    plate = _background(np.random.default_rng(bg_seq), xs, ys)
    objects = [_draw_object(np.random.default_rng(child), spec) for child in obj_seq.spawn(spec.objects)]
    occ_rng = np.random.default_rng(occ_seq)
    occluders = [_draw_occluder(occ_rng, spec, objects[k % spec.objects]) for k in range(spec.occluders)]

    amodal, amodal_rgb = [], []
    for obj in objects:
        inside, colour = _render_object(obj, xs, ys, s, spec)
        amodal.append(inside)
        amodal_rgb.append(_quantize(colour) * inside[..., None])
    amodal, amodal_rgb = torch.stack(amodal), torch.stack(amodal_rgb)

    rgb = plate.expand(t_count, h, w, 3).clone()
    depth_levels = [OBJECT_DEPTH[0] + (OBJECT_DEPTH[1] - OBJECT_DEPTH[0]) * i / spec.objects
                    for i in range(spec.objects)]
    depth = (BACKGROUND_DEPTH[0] + (BACKGROUND_DEPTH[1] - BACKGROUND_DEPTH[0]) * ys / h).expand(t_count, h, w).clone()
    for i in range(spec.objects):
        rgb[amodal[i]] = amodal_rgb[i][amodal[i]]
        depth[amodal[i]] = depth_levels[i]
    occluder = torch.zeros(t_count, h, w, dtype=torch.bool)
    for occ in occluders:
        inside, colour = _render_occluder(occ, xs, ys, s)
        rgb[inside] = _quantize(colour)[inside]
        depth[inside] = OCCLUDER_DEPTH
        occluder |= inside

    modal = amodal.clone()
    for i in range(spec.objects):
        modal[i] &= ~occluder
        for j in range(i + 1, spec.objects):
            modal[i] &= ~amodal[j]

    meta = {
        "generator": "diffusion_vas.models.evaluation.synthetic", "layout_version": LAYOUT_VERSION, "seed": int(seed),
        "name": name or f"synthetic_{int(seed):05d}", "frames": t_count, "height": h, "width": w,
        "spec": _spec_dict(spec),
        "objects": [{"name": f"obj{i + 1}", "shape": o["shape"], "pattern": o["pattern"],
                     "depth": round(depth_levels[i], 4)} for i, o in enumerate(objects)],
        "occluders": [{"shape": o["shape"]} for o in occluders],
        "depth": "pseudo-depth from the true layer order, near = bright",
    }
    return BenchmarkClip(rgb=rgb, modal=modal, amodal=amodal, amodal_rgb=amodal_rgb, occluder=occluder,
                         background=plate.expand(t_count, h, w, 3).clone(), depth=_quantize(depth), meta=meta)


def generate_benchmark(count: int, spec: SyntheticSpec | None = None, seed: int = 0) -> list[BenchmarkClip]:
    """``count`` clips; clip ``k`` is ``generate_clip(spec, seed + k)``."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}.")
    return [generate_clip(spec, seed + k) for k in range(count)]


# -- folders ----------------------------------------------------------------------------------------------------

def write_clip(clip: BenchmarkClip, folder) -> Path:
    """Writes ``clip`` in the folder layout of the module docstring (creating ``folder``); returns it."""
    root = Path(folder)
    n = clip.modal.shape[0]
    _write_frames(root / "rgb", clip.rgb)
    for name in OBJECT_FOLDERS:
        tensor = getattr(clip, name)
        if tensor is None:
            continue
        for i in range(n):
            _write_frames(root / name / f"obj{i + 1}" if n > 1 else root / name, tensor[i])
    for name in ("occluder", "background", "depth"):
        if getattr(clip, name) is not None:
            _write_frames(root / name, getattr(clip, name))
    meta = dict(clip.meta, name=root.name, frames=clip.rgb.shape[0], height=clip.rgb.shape[1],
                width=clip.rgb.shape[2], object_folders=[f"obj{i + 1}" for i in range(n)] if n > 1 else None)
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return root


def read_clip(folder, mask_format: str = "auto") -> BenchmarkClip:
    """Reads a clip written by `write_clip`, or any folder in that layout (``rgb/``, ``modal/``, ``amodal/``
    required; the other folders optional; ``meta.json`` optional).

    Mask folders go through the one mask reader (`models.io.mask_files`, ``mask_format`` auto/binary/labels);
    each object folder gives every object pixel it holds (a binary mask, or all ids of a label image).

    Raises:
        ValueError: a required folder is missing or empty, or folders disagree in frame count or size.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"Clip folder {root} does not exist; pass a folder with rgb/, modal/ and amodal/.")
    meta_file = root / "meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    meta["name"] = root.name
    rgb = _read_frames(root / "rgb", colour=True)
    objects = object_subfolders(root)
    data = {}
    for name in OBJECT_FOLDERS:
        if name not in MASK_FOLDERS and not (root / name).is_dir():
            continue
        if name in MASK_FOLDERS:
            data[name] = torch.stack([_read_mask(root / name / sub, mask_format) for sub in objects])
        else:
            data[name] = torch.stack([_read_frames(root / name / sub, colour=True) for sub in objects])
    for name in ("occluder", "background", "depth"):
        if (root / name).is_dir():
            data[name] = (_read_mask(root / name, mask_format) if name == "occluder"
                          else _read_frames(root / name, colour=name == "background"))
    clip = BenchmarkClip(rgb=rgb, meta=meta, **data)
    _check_clip(clip, root)
    return clip


def read_clips(folder, mask_format: str = "auto") -> list[BenchmarkClip]:
    """Reads one clip folder, or every clip folder (a sub-folder with ``rgb/``) inside ``folder``, sorted by name."""
    root = Path(folder)
    if (root / "rgb").is_dir():
        return [read_clip(root, mask_format)]
    clips = sorted(p for p in root.iterdir() if (p / "rgb").is_dir()) if root.is_dir() else []
    if not clips:
        raise ValueError(f"No clip found in {root}: pass a clip folder (with rgb/, modal/, amodal/) or a folder "
                         f"of such clip folders.")
    return [read_clip(p, mask_format) for p in clips]


def object_subfolders(root: Path) -> list[str]:
    """Per object, its sub-folder inside ``modal/`` (``""`` when ``modal/`` holds the frames of one object)."""
    modal = root / "modal"
    if not modal.is_dir():
        raise ValueError(f"{root} has no modal/ folder; the clip layout needs rgb/, modal/ and amodal/.")
    if any(modal.glob("*.png")):
        return [""]
    subfolders = sorted(d.name for d in modal.iterdir() if d.is_dir() and any(d.glob("*.png")))
    if not subfolders:
        raise ValueError(f"{modal} holds no PNG frames and no per-object folders with PNG frames.")
    return subfolders


def _check_clip(clip: BenchmarkClip, root: Path) -> None:
    t, h, w = clip.rgb.shape[:3]
    for name in ("modal", "amodal", "amodal_rgb", "occluder", "background", "depth"):
        tensor = getattr(clip, name)
        if tensor is None:
            continue
        frames = tensor.shape[1:4] if name in OBJECT_FOLDERS else tensor.shape[:3]
        if tuple(frames) != (t, h, w):
            raise ValueError(f"{root / name} has frames {list(frames)} [T, H, W]; rgb/ has {[t, h, w]}. "
                             f"Every folder needs the same number of frames at the same size.")
    if clip.modal.shape[0] != clip.amodal.shape[0]:
        raise ValueError(f"{root} has {clip.modal.shape[0]} objects in modal/ but {clip.amodal.shape[0]} in amodal/.")


def _write_frames(folder: Path, frames: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = to_uint8(frames).numpy()
    for k, array in enumerate(arrays):
        Image.fromarray(array).save(folder / f"{k:05d}.png")


def _read_frames(folder: Path, colour: bool) -> torch.Tensor:
    """``[T, H, W, 3]`` (colour) or ``[T, H, W]`` (grey: the generator writes those as one-channel PNGs, read back
    as their first channel) float32 0..1 from the PNGs of ``folder``, in name order."""
    if not any(folder.glob("*.png")):
        raise ValueError(f"{folder} holds no PNG frames; write one PNG per frame (00000.png, 00001.png, ...).")
    frames = read_frames(folder).float() / 255
    return frames if colour else frames[..., 0].contiguous()


def _read_mask(folder: Path, mask_format: str) -> torch.Tensor:
    """``[T, H, W]`` bool: every object pixel of the mask images in ``folder`` (format and objects logged at DEBUG)."""
    return torch.from_numpy(read_mask_folder(folder, mask_format, log_level=logging.DEBUG).select(0))


# -- drawing ----------------------------------------------------------------------------------------------------

def _quantize(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def _colour(rng: np.random.Generator, lightness: tuple[float, float]) -> torch.Tensor:
    """A random saturated colour (HSV with random hue) scaled into ``lightness``."""
    hue, value = rng.uniform(0, 1), rng.uniform(*lightness)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    rgb = value * (1 - 0.7 * np.clip(np.minimum(k, 4 - k), 0, 1))
    return torch.tensor(rgb, dtype=torch.float32)


def _background(rng: np.random.Generator, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``[H, W, 3]`` static plate: a vertical gradient between two muted colours with large, slightly tilted,
    low-contrast tiles (flat areas keep the PNGs small)."""
    h, w = xs.shape
    top, bottom = _colour(rng, (0.35, 0.6)), _colour(rng, (0.45, 0.75))
    ramp = (ys / h)[..., None]
    tile = rng.uniform(0.15, 0.25) * h
    angle = rng.uniform(-0.3, 0.3)
    u, v = xs * math.cos(angle) - ys * math.sin(angle), xs * math.sin(angle) + ys * math.cos(angle)
    checker = (torch.floor(u / tile) + torch.floor(v / tile)) % 2
    plate = top * (1 - ramp) + bottom * ramp + 0.07 * (checker[..., None] - 0.5)
    return _quantize(plate)


def _draw_object(rng: np.random.Generator, spec: SyntheticSpec) -> dict:
    h, w = spec.height, spec.width
    radius = rng.uniform(*spec.object_size) * h
    margin = min(radius * 1.1, w / 2 - 1)
    direction = rng.choice([-1.0, 1.0])
    x0, x1 = rng.uniform(margin, margin + 0.15 * w), rng.uniform(w - margin - 0.15 * w, w - margin)
    if direction < 0:
        x0, x1 = x1, x0
    shrink = (1 - spec.motion) * (x1 - x0) / 2
    x0, x1 = x0 + shrink, x1 - shrink
    return {
        "shape": str(rng.choice(spec.shapes)), "pattern": str(rng.choice(PATTERNS)),
        "radius": radius, "x": (x0, x1), "y": rng.uniform(0.35, 0.65) * h,
        "sway": (rng.uniform(0.02, 0.08) * h, rng.uniform(0.5, 1.5), rng.uniform(0, 2 * math.pi)),
        "scale": (rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.2)), "angle": (rng.uniform(0, 2 * math.pi),
                                                                          rng.uniform(-1.0, 1.0)),
        "wobble": (spec.deformation * rng.uniform(0.5, 1.0), rng.uniform(1.0, 2.5), rng.uniform(0, 2 * math.pi)),
        "colours": (_colour(rng, (0.6, 0.95)), _colour(rng, (0.15, 0.45))),
        "frequency": rng.uniform(2.5, 4.5), "texture_angle": rng.uniform(0, math.pi),
    }


def _draw_occluder(rng: np.random.Generator, spec: SyntheticSpec, target: dict) -> dict:
    """An occluder that crosses ``target``'s path at a random time around the middle of the clip."""
    h, w = spec.height, spec.width
    crossing = rng.uniform(0.35, 0.65)
    target_x = target["x"][0] + (target["x"][1] - target["x"][0]) * crossing
    size = rng.uniform(*spec.occluder_width) * 2 * target["radius"]
    velocity = rng.uniform(-0.3, 0.3) * w * spec.motion  # pixels over the whole clip
    shape = str(rng.choice(OCCLUDER_SHAPES))
    return {
        "shape": shape, "size": size, "x": (target_x - velocity * crossing, target_x + velocity * (1 - crossing)),
        "y": target["y"] + rng.uniform(-0.1, 0.1) * h, "tilt": rng.uniform(-0.15, 0.15),
        "extent": rng.uniform(0.7, 1.0) * h if shape == "bar" else size / 2,
        "colours": (_colour(rng, (0.3, 0.6)), _colour(rng, (0.1, 0.3))), "frequency": rng.uniform(0.05, 0.1),
    }


def _render_object(obj: dict, xs: torch.Tensor, ys: torch.Tensor, s: torch.Tensor, spec: SyntheticSpec):
    """``([T, H, W] bool, [T, H, W, 3] float)``: the object's full shape and its colours (everywhere)."""
    s = s.view(-1, 1, 1)
    cx = obj["x"][0] + (obj["x"][1] - obj["x"][0]) * s
    amp, cycles, phase = obj["sway"]
    cy = obj["y"] + amp * torch.sin(2 * math.pi * cycles * s + phase)
    radius = obj["radius"] * (obj["scale"][0] + (obj["scale"][1] - obj["scale"][0]) * s)
    angle = obj["angle"][0] + obj["angle"][1] * s
    dx, dy = (xs - cx) / radius, (ys - cy) / radius
    u = dx * torch.cos(angle) + dy * torch.sin(angle)
    v = -dx * torch.sin(angle) + dy * torch.cos(angle)
    strength, speed, wphase = obj["wobble"]
    stretch = torch.exp(strength * torch.sin(2 * math.pi * speed * s + wphase))  # area-preserving squash/stretch
    u, v = u / stretch, v * stretch
    u = u - strength * torch.sin(2.0 * v + 2 * math.pi * speed * s)  # bend
    inside = _inside_shape(obj["shape"], u, v)

    a = obj["texture_angle"]
    along = u * math.cos(a) + v * math.sin(a)
    f = obj["frequency"]
    if obj["pattern"] == "stripes":
        mix = 0.5 + 0.5 * torch.sin(math.pi * f * along)
    elif obj["pattern"] == "checker":
        across = -u * math.sin(a) + v * math.cos(a)
        mix = ((torch.floor(f * along / 2) + torch.floor(f * across / 2)) % 2).float()
    else:
        mix = 0.5 + 0.5 * torch.cos(math.pi * f * torch.sqrt(u * u + v * v))
    light, dark = obj["colours"]
    shade = (1.0 - 0.18 * (u + v)).clamp(0.6, 1.2)
    colour = (dark + (light - dark) * mix[..., None]) * shade[..., None]
    return inside, colour


def _render_occluder(occ: dict, xs: torch.Tensor, ys: torch.Tensor, s: torch.Tensor):
    """``([T, H, W] bool, [T, H, W, 3] float)``: the occluder's shape and colours."""
    s = s.view(-1, 1, 1)
    cx = occ["x"][0] + (occ["x"][1] - occ["x"][0]) * s
    dx, dy = xs - cx, ys - occ["y"]
    if occ["shape"] == "bar":
        across = dx - occ["tilt"] * dy
        inside = (across.abs() <= occ["size"] / 2) & (dy.abs() <= occ["extent"])
        grain = torch.sin(2 * math.pi * occ["frequency"] * (dy + 3 * torch.sin(0.2 * across)))
    else:
        across = torch.sqrt(dx * dx + dy * dy)
        inside = across <= occ["size"] / 2
        grain = torch.sin(2 * math.pi * occ["frequency"] * (dx + dy))
    light, dark = occ["colours"]
    colour = dark + (light - dark) * (0.5 + 0.5 * grain)[..., None]
    return inside, colour


def _inside_shape(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Membership in the canonical shape (radius about 1, centred at the origin) in object coordinates."""
    if shape == "disk":
        return u * u + v * v <= 1.0
    if shape == "ellipse":
        return u * u + (v / 0.6) ** 2 <= 1.0
    if shape == "rectangle":
        return (u.abs() <= 0.95) & (v.abs() <= 0.65)
    if shape == "star":
        return _inside_polygon(_star(5, 1.0, 0.45), u, v)
    return _inside_polygon(_star(3, 1.0, 1.0), u, v)  # hexagon: 6 vertices at radius 1


def _star(points: int, outer: float, inner: float) -> list[tuple[float, float]]:
    vertices = []
    for k in range(2 * points):
        r, a = (outer if k % 2 == 0 else inner), -math.pi / 2 + math.pi * k / points
        vertices.append((r * math.cos(a), r * math.sin(a)))
    return vertices


def _inside_polygon(vertices: list[tuple[float, float]], u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Even-odd rule: a ray to the right of the point crosses the outline an odd number of times."""
    inside = torch.zeros_like(u, dtype=torch.bool)
    for (x1, y1), (x2, y2) in zip(vertices, vertices[1:] + vertices[:1]):
        if y1 == y2:
            continue
        straddles = (y1 > v) != (y2 > v)
        inside ^= straddles & (u < (x2 - x1) * (v - y1) / (y2 - y1) + x1)
    return inside


def _spec_dict(spec: SyntheticSpec) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()}
