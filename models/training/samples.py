"""Training samples: conditions and target of one object-track window, drawn deterministically from an index.

Sample ``i`` of process ``rank`` depends only on ``(seed, rank, i)``: which track, which window of
``num_frames`` frames and (stage 2) which occluders. Resuming at step ``s`` therefore redraws exactly the samples
an uninterrupted run would have drawn, and different processes draw different samples (the authors seed every
process alike, quirk Q7).

Per stage (all ``[T, 3, h, w]`` float32 in [-1, 1]):

* ``amodal``: ``cond_a`` visible mask (+1 on, -1 off), ``cond_b`` depth min-max normalised over the window,
  ``target`` full mask (reference §2.4);
* ``content``: occluders pasted (`synthesize_occlusion`), ``cond_a`` the visible colours on white, ``cond_b``
  the full mask (+1/-1), ``target`` the object's colours inside its full mask on white (reference §3.2). Colours
  of hidden parts come from ``amodal_rgb`` when the data has it; otherwise only tracks that are (almost) fully
  visible are targets (`TrainingSamples.targets`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from ..stages.conditions import depth_condition
from .config import TrainingConfig
from .data import Track, TrackSource
from .occluders import on_white, synthesize_occlusion

logger = logging.getLogger(__name__)

PURPOSE_DATA, PURPOSE_NOISE, PURPOSE_GLOBAL, PURPOSE_VALIDATION = 0, 1, 2, 3


def derived_seed(seed: int, rank: int, index: int, purpose: int) -> int:
    """A 63-bit seed from ``(seed, rank, index, purpose)`` (NumPy ``SeedSequence`` mixing)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(rank), int(index), int(purpose)]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


def signed(mask: torch.Tensor) -> torch.Tensor:
    """``[T, h, w]`` bool -> ``[T, 3, h, w]`` +1 inside / -1 outside."""
    return torch.where(mask.bool(), 1.0, -1.0).unsqueeze(1).repeat(1, 3, 1, 1)


class TrainingSamples(Dataset):
    """Map-style dataset: index ``i`` -> the ``i``-th sample of process ``rank`` (see the module docstring)."""

    def __init__(self, source: TrackSource, config: TrainingConfig, rank: int = 0):
        self.source, self.config, self.rank = source, config, rank
        self.frames = config.num_frames
        self.targets = self._eligible_targets()

    def __len__(self) -> int:
        return 2**62  # an endless stream; the sampler decides which indices are drawn

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng(derived_seed(self.config.seed, self.rank, index, PURPOSE_DATA))
        target_index = self.targets[int(rng.integers(len(self.targets)))]
        track = self.source.track(target_index)
        start = int(rng.integers(track.frames - self.frames + 1))
        return self.make(track, start, rng)

    def make(self, track: Track, start: int, rng: np.random.Generator) -> dict:
        """The sample for ``track``'s window at ``start``: ``cond_a``, ``cond_b``, ``target`` (+ diagnostics)."""
        window = slice(start, start + self.frames)
        modal, amodal = track.modal[window], track.amodal[window]
        if self.config.stage == "amodal":
            return {"cond_a": signed(modal), "cond_b": depth_condition(track.depth[window], self.config.size),
                    "target": signed(amodal)}
        occlusion = synthesize_occlusion(
            modal, amodal, track.key, self.source.keys,
            lambda key: self.occluder_window(key, start, rng), rng,
            threshold=self.config.occlusion_iou, max_occluders=self.config.max_occluders)
        colours = track.amodal_rgb if track.amodal_rgb is not None else track.rgb
        return {"cond_a": on_white(track.rgb[window], occlusion.modal), "cond_b": signed(amodal),
                "target": on_white(colours[window], amodal), "visible_iou": torch.tensor(occlusion.iou),
                "occluders": torch.tensor(len(occlusion.occluders))}

    def occluder_window(self, key: str, start: int, rng: np.random.Generator) -> torch.Tensor:
        """The occluder's full mask over ``num_frames`` frames: the target's window when the occluder is long
        enough (same clip: frame-aligned, as the authors paste), else a random window of it."""
        occluder = self.source.track(self.source.index_of(key))
        if occluder.frames < self.frames:
            return torch.zeros(self.frames, *self.config.size, dtype=torch.bool)
        if start + self.frames > occluder.frames:
            start = int(rng.integers(occluder.frames - self.frames + 1))
        return occluder.amodal[start:start + self.frames]

    def _eligible_targets(self) -> list[int]:
        """Track indices long enough to sample and, for stage 2, with known colours in the hidden part."""
        long_enough, skipped_short, skipped_hidden = [], 0, 0
        for i in range(len(self.source)):
            frames, visible_iou, has_colours = self.source.describe(i)
            if frames < self.frames:
                skipped_short += 1
                continue
            if (self.config.stage == "content" and not has_colours
                    and not visible_iou >= self.config.complete_object_iou):
                skipped_hidden += 1
                continue
            long_enough.append(i)
        if skipped_short:
            logger.warning("%d tracks have fewer than %d frames and are not used as targets", skipped_short, self.frames)
        if skipped_hidden:
            logger.warning("%d tracks are partly hidden and have no amodal_rgb/ (true hidden colours): not used as "
                           "stage-2 targets (still used as occluders)", skipped_hidden)
        if not long_enough:
            raise ValueError(f"No usable training track in --data: every track is shorter than {self.frames} frames"
                             + (" or partly hidden without amodal_rgb/" if self.config.stage == "content" else "")
                             + ". Lower --frames or add data.")
        return long_enough


def collate(items: list[dict]) -> dict:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class IndexRange(torch.utils.data.Sampler):
    """Indices ``first, first + 1, ..., first + count - 1`` (the samples a run or a resumed run draws)."""

    def __init__(self, first: int, count: int):
        self.first, self.count = first, count

    def __iter__(self):
        return iter(range(self.first, self.first + self.count))

    def __len__(self) -> int:
        return self.count
