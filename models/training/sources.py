"""The training data's source for ``--data``: a clip folder or a folder of them, ``synthetic[:N]``, or a SAIL-VOS
``.json`` (see `training.data`)."""

from __future__ import annotations

from .data import DepthCache, FolderSource, SYNTHETIC_PREFIX, SyntheticSource, TrackSource
from .sailvos_source import SailVosSource


def open_source(data: str, size, frames: int, seed: int, need_depth: bool, depth: DepthCache | None,
                data_root: str | None = None, synthetic_clips: int = 64) -> TrackSource:
    """The track source for ``--data`` (see the module docstring)."""
    text = str(data)
    if text == SYNTHETIC_PREFIX or text.startswith(SYNTHETIC_PREFIX + ":"):
        count = synthetic_clips
        if ":" in text:
            try:
                count = int(text.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"--data {text!r}: write synthetic or synthetic:N with N clips.") from None
        if count < 1:
            raise ValueError(f"--data {text!r}: N must be at least 1.")
        return SyntheticSource(count, frames, size, seed, need_depth)
    if text.lower().endswith(".json"):
        return SailVosSource(text, data_root, size, depth, need_depth)
    return FolderSource(text, size, depth, need_depth)
