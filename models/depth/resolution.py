"""At which resolution pseudo-depth is computed.

The authors run Depth Anything V2 on frames already resized to the processing size (128x256 in training,
256x512 in their demo and SAIL-VOS evaluation; `../shared/docs/reference-training-and-evaluation.md` 4.2 and 7),
so stage 1 learned the depth detail of small frames. ``depth_from="processing"`` (default) does the same: frames
are resized (bilinear, as OpenCV INTER_LINEAR) to the processing size, the network runs there, and the depth
comes back bilinearly at the input size. ``depth_from="input"`` runs the network on the frames as they are
(sharper depth than the model ever saw; slower at 1080p/4K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..stages.chunking import chunks
from .estimator import INPUT_SIZE, DepthEstimator

DEPTH_FROM = ("processing", "input")
DEFAULT_DEPTH_FROM = "processing"


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[T, H, W, 3]`` uint8 or float 0..1 -> ``[T, h, w, 3]`` float 0..1, bilinear without antialiasing (OpenCV
    INTER_LINEAR), a few frames at a time."""
    out = []
    for part in chunks(frames.shape[0]):
        x = frames[part].float()
        if frames.dtype == torch.uint8:
            x = x / 255
        x = F.interpolate(x.permute(0, 3, 1, 2), size=tuple(size), mode="bilinear", align_corners=False)
        out.append(x.clamp_(0, 1).permute(0, 2, 3, 1))
    return torch.cat(out)


def predict_depth(estimator: DepthEstimator, frames: torch.Tensor, depth_from: str = DEFAULT_DEPTH_FROM,
                  size: tuple[int, int] = (256, 512), batch_size: int = 4, callback=None,
                  input_size: int = INPUT_SIZE) -> torch.Tensor:
    """Raw relative depth ``[T, H, W]`` (larger = nearer) at the size of ``frames`` ``[T, H, W, 3]``.

    ``depth_from="processing"``: the network runs on the frames resized to ``size = (h, w)`` and its output is
    resized back bilinearly; ``"input"``: on the frames as given.
    """
    if depth_from not in DEPTH_FROM:
        raise ValueError(f"depth_from must be one of {DEPTH_FROM}, got {depth_from!r}.")
    height, width = frames.shape[1:3]
    if depth_from == "input" or tuple(size) == (height, width):
        return estimator.predict(frames, batch_size, callback, input_size)
    small = estimator.predict(resize_frames(frames, size), batch_size, callback, input_size)
    return F.interpolate(small[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
