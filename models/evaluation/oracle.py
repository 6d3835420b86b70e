"""An oracle sampler: the ground truth at the processing size, behind the pipeline's ``sample`` interface.

The stage functions accept any object with ``sample(cond_a, cond_b, options=None, callback=None, **changes)``.
An `OracleSampler` returns a perfect model's output, so what is measured with it is only the pack's handling of
resolution (conditions, upscaling, zoom crops, colour matching), never the model's quality.

`oracle_mask_frames` renders what a perfect stage-1 model decodes: its training target, the true amodal mask
resized to the processing size as the authors' data loader does (``cv2.resize`` INTER_LINEAR on a {0, 1} uint8
mask: bilinear without antialiasing, rounded, so the mask stays binary), white on black in all three channels.
`oracle_rgb_frames` renders a perfect stage-2 output: the object's true colours inside its amodal mask, white
outside, at the processing size. Both take the crop boxes the stage function will use
(`stages.amodal_stage.object_boxes`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..stages.region import Box


class OracleSampler:
    """``sample`` returns fixed frames ``[N, T, 3, h, w]`` (float 0..1) checked against the conditions' shape."""

    def __init__(self, frames: torch.Tensor, device: str = "cpu"):
        self.frames = frames.float()
        self.device = torch.device(device)
        self.calls = 0

    def sample(self, cond_a, cond_b, options=None, callback=None, *, on_decoded=None, **changes):
        """As `DiffusionVASPipeline.sample` (tensors or `ConditionVideo` conditions, ``on_decoded`` pieces)."""
        expected = tuple(self.frames.shape) if cond_a.ndim == 5 else tuple(self.frames.shape[1:])
        if tuple(cond_a.shape) != expected or tuple(cond_a.shape) != tuple(cond_b.shape):
            raise ValueError(f"the oracle holds frames {tuple(self.frames.shape)}; the conditions are "
                             f"{tuple(cond_a.shape)} and {tuple(cond_b.shape)}.")
        self.calls += 1
        if on_decoded is None:
            return self.frames if cond_a.ndim == 5 else self.frames[0]
        for row, video in enumerate(self.frames):
            on_decoded(row, slice(0, video.shape[0]), video)
        return None


def _area(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[t, C, H, W]`` -> ``[t, C, h, w]``: area average downward, bilinear upward (the box is never stretched)."""
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def oracle_mask_frames(amodal: torch.Tensor, boxes: list[Box], size: tuple[int, int]) -> torch.Tensor:
    """True amodal masks ``[N, T, H, W]`` (bool) -> ``[N, T, 3, h, w]`` decoded frames of a perfect stage 1."""
    out = []
    for obj, box in zip(amodal, boxes):
        linear = F.interpolate(box.crop(obj.float())[:, None], size=size, mode="bilinear", align_corners=False)
        out.append((linear >= 0.5).float().expand(-1, 3, -1, -1))
    return torch.stack(out).clamp(0, 1)


def oracle_rgb_frames(rgb: torch.Tensor, amodal: torch.Tensor, boxes: list[Box], size: tuple[int, int],
                      gain: float = 1.0) -> torch.Tensor:
    """True object colours ``[N, T, H, W, 3]`` (0..1) inside the true amodal masks ``[N, T, H, W]`` -> a perfect
    stage 2's frames ``[N, T, 3, h, w]`` (white outside), with every colour times ``gain`` (a deliberate
    brightness error, to test colour matching)."""
    out = []
    for colours, obj, box in zip(rgb, amodal, boxes):
        inside = box.crop(obj)[..., None]
        layer = torch.where(inside, box.crop(colours.float(), spatial="channels_last") * gain, 1.0)
        out.append(_area(layer.permute(0, 3, 1, 2), size))
    return torch.stack(out).clamp(0, 1)
