"""Training samples: conditions and target of one object-track window, drawn deterministically from an index.

**Epochs.** As in the authors' loader (a shuffled pass over the targets, sharded by accelerate), every epoch
visits each target once in a fresh random order: epoch ``e`` shuffles the targets with a seed of
``(seed, e)`` shared by all processes, cuts the order into batches of ``batch_size`` and gives process ``r`` the
batches ``r, r + P, r + 2P, ...`` (``P`` processes); the last batches are filled from the start of the order, as
accelerate pads an uneven split. One epoch is `steps_per_epoch` optimiser steps.

Sample ``i`` of process ``rank`` depends only on ``(seed, rank, i)``: which track (its epoch and place in that
epoch's order), which window of ``num_frames`` frames and (stage 2) which occluders. Resuming at step ``s``
therefore redraws exactly the samples an uninterrupted run would have drawn, and different processes draw
different samples (the authors seed every process alike).

Per stage (all ``[T, 3, h, w]`` float32 in [-1, 1]):

* ``amodal``: ``cond_a`` visible mask (+1 on, -1 off), ``cond_b`` depth min-max normalised over the window,
  ``target`` full mask (reference §2.4);
* ``content``: occluders pasted (`synthesize_occlusion`), ``cond_a`` the visible colours on white, ``cond_b``
  the full mask (+1/-1), ``target`` the object's colours inside its full mask on white (reference §3.2). Colours
  of hidden parts come from ``amodal_rgb`` when the data has it; otherwise they are the frame's colours there,
  as in the authors' training, which takes every entry of its file as a target. ``complete_iou`` (off by
  default) keeps only the tracks that are (almost) fully visible as targets (`TrainingSamples.targets`).
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

PURPOSE_DATA, PURPOSE_NOISE, PURPOSE_GLOBAL, PURPOSE_VALIDATION, PURPOSE_EPOCH = 0, 1, 2, 3, 4


def derived_seed(seed: int, rank: int, index: int, purpose: int) -> int:
    """A 63-bit seed from ``(seed, rank, index, purpose)`` (NumPy ``SeedSequence`` mixing)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(rank), int(index), int(purpose)]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


def signed(mask: torch.Tensor) -> torch.Tensor:
    """``[T, h, w]`` bool -> ``[T, 3, h, w]`` +1 inside / -1 outside."""
    return torch.where(mask.bool(), 1.0, -1.0).unsqueeze(1).repeat(1, 3, 1, 1)


def steps_per_epoch(targets: int, batch_size: int, processes: int, accumulation: int) -> int:
    """Optimiser steps per epoch: ``ceil(ceil(ceil(targets / batch_size) / processes) / accumulation)``.

    The authors' ``ceil(len(train_dataloader) / gradient_accumulation_steps)`` after ``accelerator.prepare``,
    whose sharded loader gives each process ``ceil(batches / processes)`` batches (reference §2.3); with their
    batch 1 on 8 GPUs, ``ceil(targets / 8)``.
    """
    batches = -(-targets // batch_size)
    per_process = -(-batches // processes)
    return -(-per_process // accumulation)


class TrainingSamples(Dataset):
    """Map-style dataset: index ``i`` -> the ``i``-th sample of process ``rank`` of ``processes`` (see the module
    docstring). ``targets`` are the usable track indices, ``steps_per_epoch`` the optimiser steps of one epoch."""

    def __init__(self, source: TrackSource, config: TrainingConfig, rank: int = 0, processes: int = 1):
        self.source, self.config, self.rank, self.processes = source, config, rank, processes
        self.frames = config.num_frames
        self.targets = self._eligible_targets()
        self.steps_per_epoch = steps_per_epoch(len(self.targets), config.batch_size, processes,
                                               config.gradient_accumulation_steps)
        self.per_epoch = self.steps_per_epoch * config.gradient_accumulation_steps * config.batch_size
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return 2**62  # an endless stream; the sampler decides which indices are drawn

    def target_of(self, index: int) -> int:
        """The track index sample ``index`` of this process trains on (module docstring, *Epochs*)."""
        epoch, place = divmod(int(index), self.per_epoch)
        micro, within = divmod(place, self.config.batch_size)
        position = ((micro * self.processes + self.rank) * self.config.batch_size + within) % len(self.targets)
        return self.targets[int(self.epoch_order(epoch)[position])]

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Epoch ``epoch``'s shuffled order of ``range(len(targets))``, the same in every process."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng(derived_seed(self.config.seed, 0, epoch, PURPOSE_EPOCH))
            self._order = (epoch, rng.permutation(len(self.targets)))
        return self._order[1]

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng(derived_seed(self.config.seed, self.rank, index, PURPOSE_DATA))
        track = self.source.track(self.target_of(index))
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
        """Track indices long enough to sample and, for stage 2 with ``complete_iou`` set, visible enough (or
        with true hidden colours)."""
        limit = self.config.complete_iou if self.config.stage == "content" else None
        long_enough, skipped_short, skipped_hidden = [], 0, 0
        for i in range(len(self.source)):
            frames, visible_iou, has_colours = self.source.describe(i)
            if frames < self.frames:
                skipped_short += 1
                continue
            if limit is not None and not has_colours and not visible_iou >= limit:
                skipped_hidden += 1
                continue
            long_enough.append(i)
        if skipped_short:
            logger.warning("%d tracks have fewer than %d frames and are not used as targets", skipped_short, self.frames)
        if skipped_hidden:
            logger.warning("--complete-iou %s: %d of %d tracks are more hidden than that (mean visible/amodal IoU "
                           "below %s) and have no amodal_rgb/: not used as stage-2 targets (still used as "
                           "occluders)", limit, skipped_hidden, len(self.source), limit)
        if not long_enough:
            reasons = [f"shorter than {self.frames} frames (lower --frames)"] if skipped_short else []
            if skipped_hidden:
                reasons.append(f"below --complete-iou {limit} (lower it or leave it out: then every track is a "
                               f"target, as the authors train)")
            raise ValueError(f"No usable training track in --data: of {len(self.source)} tracks, every one is "
                             + " or ".join(reasons) + ".")
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
