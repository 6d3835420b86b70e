"""Training data: object tracks from clip folders, the synthetic generator or SAIL-VOS JSON, at the training size.

A *track* is one object over a clip: frames, its visible (modal) and full (amodal) masks, optionally its true
colours inside the full mask (``amodal_rgb/``, e.g. synthetic clips) and the clip's depth. Tracks are resized to
the processing size once when loaded (RGB bilinear like OpenCV ``INTER_LINEAR``; masks bilinear then >= 0.5, which
keeps them binary as the authors' ``cv2.resize`` of 0/1 masks does) and kept in a small per-process cache.

Sources (`training.sources.open_source`):

* a clip folder (``rgb/``, ``modal/``, ``amodal/``, optional ``amodal_rgb/``, ``depth/``; one object, or one
  sub-folder per object, as `models.evaluation.synthetic` writes them), or a folder of such clip folders;
* ``synthetic`` / ``synthetic:N``: N clips from the project's generator, made at the training size;
* a SAIL-VOS-format ``.json`` with ``data_root`` (the authors' curated files), read by
  ``models.datasets.sailvos``.

Depth for stage 1: a clip's ``depth/`` folder when present; otherwise Depth Anything V2 (``depth_model``) run once
per clip on the frames resized to the training size (as the authors' online depth does) and cached on disk
(`DepthCache`); the min-max normalisation over each training window happens per sample, as in training.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..evaluation.synthetic import SyntheticSpec, generate_clip, object_subfolders, read_clip
from ..stages.conditions import resize_frames_bilinear

logger = logging.getLogger(__name__)

CACHE_CLIPS = 32  # clips kept in memory per process
SYNTHETIC_PREFIX = "synthetic"


@dataclass
class Track:
    """One object track at the processing size ``(h, w)``.

    key: unique name (``<clip>/<object>``); clip: the clip's name.
    rgb: ``[T, h, w, 3]`` float 0..1. modal, amodal: ``[T, h, w]`` bool.
    amodal_rgb: ``[T, h, w, 3]`` float 0..1, the object's true colours inside ``amodal`` (hidden part included),
        or None. depth: ``[T, h, w]`` raw depth (near = large, any scale), or None.
    """

    key: str
    clip: str
    rgb: torch.Tensor
    modal: torch.Tensor
    amodal: torch.Tensor
    amodal_rgb: torch.Tensor | None = None
    depth: torch.Tensor | None = None

    @property
    def frames(self) -> int:
        return self.rgb.shape[0]


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[..., H, W]`` bool -> ``[..., h, w]`` bool: bilinear (no antialias) then >= 0.5."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks.bool()
    lead = masks.shape[:-2]
    x = masks.reshape(-1, 1, *masks.shape[-2:]).float()
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return (x >= 0.5).reshape(*lead, *size)


def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth.float()
    return F.interpolate(depth.float()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class DepthCache:
    """Depth Anything V2 run once per clip (on the frames at the training size), cached as safetensors files.

    The file name is a hash of the clip's identity, the size and the depth model, so changing any of them
    computes a new entry.
    """

    def __init__(self, folder: Path, model_path: str | None, device: str = "cpu"):
        self.folder, self.model_path, self.device = Path(folder), model_path, device
        self._estimator = None

    def file(self, identity: str, size: tuple[int, int]) -> Path:
        digest = hashlib.sha1(f"{identity}|{size[0]}x{size[1]}|{self.model_path}".encode()).hexdigest()[:20]
        return self.folder / f"{digest}.safetensors"

    def get(self, identity: str, rgb: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``[T, h, w]`` raw depth of ``rgb`` (``[T, h, w, 3]`` float 0..1 at ``size``), from the cache if there."""
        file = self.file(identity, size)
        if file.is_file():
            return load_file(str(file))["depth"]
        if not self.model_path:
            raise ValueError(f"Clip {identity} has no depth/ folder and no depth model was given: pass "
                             f"--depth-model (a Depth Anything V2 folder or file) or add depth/ frames.")
        if self._estimator is None:
            from ..depth.estimator import load_depth_model

            self._estimator = load_depth_model(self.model_path, self.device)
        depth = self._estimator.predict((rgb * 255).round().to(torch.uint8)).float()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        save_file({"depth": depth.contiguous()}, str(tmp), metadata={"clip": identity})
        tmp.replace(file)
        return depth


class TrackSource:
    """A list of tracks loaded on demand. Subclasses fill ``keys`` and implement ``_load_clip``."""

    def __init__(self, size: tuple[int, int], depth: DepthCache | None, need_depth: bool):
        self.size, self.depth, self.need_depth = tuple(size), depth, need_depth
        self.keys: list[str] = []
        self._clip_of: list[int] = []  # track index -> clip index
        self._object_of: list[int] = []  # track index -> object index within its clip
        self._index: dict[str, int] = {}
        self._cache: OrderedDict[int, list[Track]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.keys)

    def index_of(self, key: str) -> int:
        return self._index[key]

    def clip_count(self) -> int:
        return max(self._clip_of) + 1 if self._clip_of else 0

    def track(self, index: int) -> Track:
        return self._clip(self._clip_of[index])[self._object_of[index]]

    def _clip(self, clip_index: int) -> list[Track]:
        if clip_index in self._cache:
            self._cache.move_to_end(clip_index)
            return self._cache[clip_index]
        tracks = self._load_clip(clip_index)
        if self.need_depth:
            for t in tracks:
                if t.depth is None:
                    t.depth = self.depth_for(t) if self.depth else None
                if t.depth is None:
                    raise ValueError(f"Track {t.key} has no depth: pass --depth-model or add a depth/ folder.")
        self._cache[clip_index] = tracks
        if len(self._cache) > CACHE_CLIPS:
            self._cache.popitem(last=False)
        return tracks

    def depth_for(self, track: Track) -> torch.Tensor:
        return self.depth.get(self.identity(track), track.rgb, self.size)

    def identity(self, track: Track) -> str:
        return track.clip

    def describe(self, index: int) -> tuple[int, float, bool]:
        """``(frames, mean visible/amodal IoU, has amodal_rgb)`` of track ``index`` (loads its clip)."""
        from .occluders import mean_visible_iou

        track = self.track(index)
        return track.frames, mean_visible_iou(track.modal, track.amodal), track.amodal_rgb is not None

    def precompute_depth(self) -> int:
        """Loads every clip once so missing depth is estimated and cached; returns the number of clips."""
        for c in range(self.clip_count()):
            self._clip(c)
        return self.clip_count()

    def _register(self, clip_index: int, names: list[str]) -> None:
        for k, name in enumerate(names):
            if name in self._index:
                raise ValueError(f"Two tracks are named {name}: clip folder names must be unique.")
            self._index[name] = len(self.keys)
            self.keys.append(name)
            self._clip_of.append(clip_index)
            self._object_of.append(k)

    def _load_clip(self, clip_index: int) -> list[Track]:
        raise NotImplementedError


class FolderSource(TrackSource):
    """Clip folders in the ``example_clips/`` layout (one clip, or a folder of clips)."""

    def __init__(self, path, size, depth: DepthCache | None, need_depth: bool):
        super().__init__(size, depth, need_depth)
        root = Path(path).expanduser()
        if (root / "rgb").is_dir():
            self.folders = [root]
        elif root.is_dir():
            self.folders = sorted(p for p in root.iterdir() if (p / "rgb").is_dir())
        else:
            self.folders = []
        if not self.folders:
            raise ValueError(f"--data {root}: no clip found. Give a clip folder (rgb/, modal/, amodal/, optional "
                             f"depth/ and amodal_rgb/) or a folder of such clip folders.")
        self._paths = {folder.name: str(folder.resolve()) for folder in self.folders}
        for c, folder in enumerate(self.folders):
            self._register(c, [f"{folder.name}/{obj}" for obj in _object_names(folder)])

    def identity(self, track: Track) -> str:
        return self._paths[track.clip]

    def _load_clip(self, clip_index: int) -> list[Track]:
        folder = self.folders[clip_index]
        clip = read_clip(folder)
        return _tracks_from_clip(clip, folder.name, _object_names(folder), self.size)


class SyntheticSource(TrackSource):
    """``count`` clips of the project's synthetic generator, drawn directly at the training size."""

    def __init__(self, count: int, frames: int, size, seed: int, need_depth: bool):
        super().__init__(size, None, need_depth)
        self.spec = SyntheticSpec(frames=frames, height=size[0], width=size[1])
        self.seed = seed
        for c in range(count):
            self._register(c, [f"synthetic_{seed + c:05d}/obj1"])

    def _load_clip(self, clip_index: int) -> list[Track]:
        clip = generate_clip(self.spec, self.seed + clip_index)
        return _tracks_from_clip(clip, clip.name, ["obj1"], self.size)


def _object_names(folder: Path) -> list[str]:
    """Object names of a clip folder in the synthetic layout (``obj1`` when ``modal/`` holds one object's frames)."""
    return [name or "obj1" for name in object_subfolders(folder)]


def _tracks_from_clip(clip, clip_name: str, objects: list[str], size) -> list[Track]:
    rgb = resize_frames_bilinear(clip.rgb, size)
    depth = resize_depth(clip.depth, size) if clip.depth is not None else None
    tracks = []
    for i, obj in enumerate(objects):
        amodal_rgb = None
        if clip.amodal_rgb is not None:
            amodal_rgb = resize_frames_bilinear(clip.amodal_rgb[i], size)
        tracks.append(Track(key=f"{clip_name}/{obj}", clip=clip_name, rgb=rgb, modal=resize_masks(clip.modal[i], size),
                            amodal=resize_masks(clip.amodal[i], size), amodal_rgb=amodal_rgb, depth=depth))
    return tracks
