"""Annotation files as sequences of clips: loading, field checks, and skipping empty entries.

Every reader (`sailvos`, `tao_amodal`, `movi`) parses one JSON list whose elements are object tracks. The file is
parsed once; each entry is checked and its masks decoded only when that clip is asked for, so a large training
file costs little memory. Errors name the file, the entry index and the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from .clip import AmodalClip

log = logging.getLogger(__name__)


def load_entries(file) -> tuple[Path, list]:
    """Reads a JSON file whose top level is a list of entries (dicts)."""
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"Annotation file {path} does not exist. Pass the curated JSON with --annotations.")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}).") from error
    if not isinstance(data, list):
        raise ValueError(f"{path}: the top level must be a list of object tracks; got {type(data).__name__}.")
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}, entry {index}: each entry must be an object (dict); got "
                             f"{type(entry).__name__}.")
    return path, data


def field(entry: dict, key: str, kind, where: str):
    """``entry[key]`` checked against ``kind`` (a type or tuple of types)."""
    if key not in entry:
        raise ValueError(f"{where}: missing field '{key}'. Fields present: {sorted(entry)}.")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ValueError(f"{where}: field '{key}' must be {names}; got {type(value).__name__}.")
    return value


def per_frame(entry: dict, key: str, length: int | None, where: str) -> list:
    """A per-frame list field, non-empty, of ``length`` items when given."""
    values = field(entry, key, list, where)
    if not values:
        raise ValueError(f"{where}: field '{key}' is empty; an entry needs at least one frame.")
    if length is not None and len(values) != length:
        raise ValueError(f"{where}: field '{key}' has {len(values)} items, but the track has {length} frames.")
    return values


def join(root: Path | None, name: str) -> Path:
    """Frame path: the annotation's file name under ``root`` (the authors concatenate strings; a leading '/' on
    the name is treated as relative)."""
    if root is None:
        return Path(name)
    return Path(root) / name.lstrip("/")


class AnnotationFile:
    """A parsed annotation file: ``len()``, ``clip(i)`` (decoded), iteration over usable clips.

    Subclasses set ``dataset`` and implement ``_parse(index, entry) -> AmodalClip``.
    """

    dataset = ""

    def __init__(self, file, data_root=None):
        self.file, self.entries = load_entries(file)
        self.data_root = Path(data_root) if data_root is not None else None
        self.skipped: list[tuple[int, str]] = []  # (entry index, reason) of entries `clips` left out

    def __len__(self) -> int:
        return len(self.entries)

    def where(self, index: int) -> str:
        return f"{self.file}, entry {index}"

    def clip(self, index: int) -> AmodalClip:
        """Entry ``index`` as a clip (checked and decoded); raises ValueError naming the file and entry."""
        if not 0 <= index < len(self.entries):
            raise IndexError(f"{self.file} has {len(self.entries)} entries; asked for entry {index}.")
        return self._parse(index, self.entries[index])

    def clips(self, indices=None) -> Iterator[AmodalClip]:
        """Usable clips in file order (or of ``indices``). An entry whose visible mask is empty in every frame,
        or whose full mask / boxes are empty in every frame, has nothing to predict or score: it is logged as a
        warning, recorded in ``skipped`` and left out."""
        for index in range(len(self.entries)) if indices is None else indices:
            clip = self.clip(index)
            reason = empty_reason(clip)
            if reason:
                log.warning("%s: skipped, %s.", self.where(index), reason)
                self.skipped.append((index, reason))
                continue
            yield clip

    def __iter__(self) -> Iterator[AmodalClip]:
        return self.clips()

    def _parse(self, index: int, entry: dict) -> AmodalClip:
        raise NotImplementedError


def empty_reason(clip: AmodalClip) -> str | None:
    """Why a clip cannot be used (None when it can)."""
    if not bool(clip.modal.any()):
        return "the visible mask is empty in every frame"
    if clip.amodal is not None and not bool(clip.amodal.any()):
        return "the full (amodal) mask is empty in every frame"
    if clip.amodal_boxes is not None and not bool(((clip.amodal_boxes[:, 2] > 0) & (clip.amodal_boxes[:, 3] > 0)).any()):
        return "every full (amodal) box has zero area"
    return None
