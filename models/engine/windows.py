"""Temporal windows for clips longer than the model's training length.

A clip of ``T`` frames is covered by windows of ``window`` frames that start every ``window - overlap`` frames;
the last window is aligned to the clip's end. Each frame's predictions from the windows that contain it are
blended with weights that ramp linearly over the overlap, so no window's edge frame dominates a join.
"""

from __future__ import annotations

import torch


def window_starts(num_frames: int, window: int, overlap: int) -> list[int]:
    """First frame of every window; ``[0]`` when the clip fits one window."""
    if num_frames <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


def window_weights(num_frames: int, span: int, starts: list[int], overlap: int) -> torch.Tensor:
    """Blend weights ``[len(starts), num_frames]``; each frame's weights sum to 1.

    Inside a window the weight rises linearly over its first ``overlap`` frames and falls over its last ones,
    except at the clip's own first and last frame, where no other window takes over.
    """
    ramp = torch.ones(span)
    if overlap > 0:
        pos = torch.arange(span, dtype=torch.float64)
        ramp = torch.minimum((pos + 1) / (overlap + 1), (span - pos) / (overlap + 1)).clamp(max=1).float()
    weights = torch.zeros(len(starts), num_frames)
    for k, s in enumerate(starts):
        local = ramp.clone()
        if s == 0:
            local[: span // 2] = 1
        if s + span == num_frames:
            local[span // 2:] = 1
        weights[k, s:s + span] = local
    return weights / weights.sum(dim=0, keepdim=True)
