"""Pseudo-depth for stage 1: Depth Anything V2 run the way the authors ran it, and clip-level normalization.

Stage 1 of Diffusion-VAS was trained on Depth Anything V2 relative inverse depth (near = large), computed per frame
with the authors' ``infer_image`` and min-max normalized over the whole clip. This module reproduces that:

* models: transformers' ``DepthAnythingForDepthEstimation``, from a transformers folder (``config.json`` +
  ``model.safetensors``, e.g. ``depth-anything/Depth-Anything-V2-Large-hf``) or from the authors' single-file
  checkpoints (``depth_anything_v2_vitl.pth``, ``..._fp16.safetensors``; see `depth_checkpoint`);
* preprocessing as ``infer_image``: keep the aspect ratio, scale so the short side reaches ``input_size`` (518),
  round each side to a multiple of 14 (never below ``input_size``), bicubic, ImageNet mean/std; the prediction
  is resized back to the frame size bilinearly (``align_corners=True``, as the authors do);
* `normalize_depth`: min-max to 0..1 over the clip (the reference) or per frame.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors import SafetensorError

from .checkpoint import OFFICIAL_SUFFIXES, load_official_checkpoint
from ..base.errors import PackError

logger = logging.getLogger(__name__)

DepthCallback = Callable[[int, int], None]
"""Called after each batch with (frames done, total frames)."""

INPUT_SIZE = 518  # the authors' (and training) network input size
PATCH_SIZE = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("clip", "frame")


class DepthEstimator:
    """A loaded Depth Anything V2 model. Build it with `load_depth_model`."""

    def __init__(self, model: torch.nn.Module, name: str):
        self.model, self.name = model, name

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"depth": self.model}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.no_grad()
    def predict(self, frames, batch_size: int = 4, callback: DepthCallback | None = None,
                input_size: int = INPUT_SIZE) -> torch.Tensor:
        """Relative inverse depth of every frame.

        Args:
            frames: ``[T, H, W, 3]`` RGB, uint8 (0..255) or float (0..1), torch tensor or numpy array.
            batch_size: frames per network call.
            callback: ``callback(done, total)`` after each batch (progress, cancellation).
            input_size: lower bound of the network input's sides (518 in training).

        Returns:
            ``[T, H, W]`` float32 raw depth on the CPU (not normalized; larger is nearer).
        """
        frames = _as_frames(frames)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        total, (height, width) = frames.shape[0], frames.shape[1:3]
        size = network_input_size(height, width, input_size)
        device, dtype = self.device, self.dtype
        out = torch.empty(total, height, width, dtype=torch.float32)
        for start in range(0, total, batch_size):
            batch = preprocess(frames[start:start + batch_size].to(device), size)
            depth = self.model(pixel_values=batch.to(dtype)).predicted_depth
            out[start:start + batch.shape[0]] = F.interpolate(
                depth.float()[:, None], (height, width), mode="bilinear", align_corners=True
            )[:, 0].cpu()
            if callback is not None:
                callback(min(start + batch_size, total), total)
        return out


def load_depth_model(path, device="cpu", dtype: torch.dtype = torch.float32) -> DepthEstimator:
    """Loads Depth Anything V2 from a transformers folder or an authors'-layout single file.

    Args:
        path: a folder with ``config.json`` and ``model.safetensors``, or a ``.pth``/``.pt``/``.safetensors``
            file in the authors' key layout (``depth_anything_v2_vit{s,b,l,g}[...]``).
        device: where the model runs.
        dtype: weight and compute precision (the input resize always runs in float32).

    Raises:
        FileNotFoundError: the path, or a folder's ``config.json``/``model.safetensors``, is missing.
        RuntimeError: a file is unreadable or is not a Depth Anything V2 checkpoint (the message names it).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        model = _load_transformers_folder(path)
    elif path.is_file() and path.suffix in OFFICIAL_SUFFIXES:
        model = load_official_checkpoint(path, dtype)
    elif path.exists():
        raise PackError(f"{path} is neither a transformers folder nor a {'/'.join(OFFICIAL_SUFFIXES)} file.")
    else:
        raise FileNotFoundError(f"Depth Anything V2 model not found: {path}")
    return DepthEstimator(model.to(device=device, dtype=dtype), path.name)


def estimate_depth(estimator: DepthEstimator, frames, normalization: str = "clip", batch_size: int = 4,
                   callback: DepthCallback | None = None, input_size: int = INPUT_SIZE) -> torch.Tensor:
    """`DepthEstimator.predict` followed by `normalize_depth`: ``[T, H, W, 3]`` frames -> ``[T, H, W]`` in 0..1."""
    return normalize_depth(estimator.predict(frames, batch_size, callback, input_size), normalization)


def normalize_depth(depth: torch.Tensor, mode: str = "clip") -> torch.Tensor:
    """Min-max normalization of ``[T, H, W]`` depth to 0..1.

    ``clip`` uses one minimum and maximum for the whole clip (what stage 1 was trained on), ``frame`` one per
    frame. A constant clip (or frame, in ``frame`` mode) has no depth order and becomes all zeros.

    Raises:
        ValueError: unknown mode, wrong rank, or non-finite values.
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {mode!r}.")
    if depth.ndim != 3:
        raise ValueError(f"depth must be [T, H, W], got shape {tuple(depth.shape)}.")
    depth = depth.float()
    if not torch.isfinite(depth).all():
        raise ValueError("depth contains NaN or infinite values; check the depth source.")
    if mode == "clip":  # the reference: one minimum and maximum for the clip
        low, high = depth.min(), depth.max()
        return (depth - low) / (high - low) if high > low else torch.zeros_like(depth)
    low, high = depth.amin(dim=(1, 2), keepdim=True), depth.amax(dim=(1, 2), keepdim=True)
    spread = high - low
    return torch.where(spread > 0, (depth - low) / torch.where(spread > 0, spread, 1.0), 0.0)


def network_input_size(height: int, width: int, input_size: int = INPUT_SIZE) -> tuple[int, int]:
    """The authors' resize rule: keep the aspect ratio, both sides >= ``input_size``, multiples of 14.

    The shorter side is scaled to ``input_size``; each scaled side is rounded to the nearest multiple of 14 (half
    to even, like numpy), which never falls below ``input_size`` since that is a multiple of 14 itself.
    """
    if input_size < PATCH_SIZE or input_size % PATCH_SIZE:
        raise ValueError(f"input_size must be a positive multiple of {PATCH_SIZE}, got {input_size}.")
    scale = max(input_size / height, input_size / width)
    return tuple(int(round(scale * side / PATCH_SIZE)) * PATCH_SIZE for side in (height, width))


def preprocess(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, H, W, 3]`` RGB (uint8 or float 0..1) -> ``[B, 3, h, w]`` float32 network input of ``size``.

    The channels stay in RGB order. The authors' ``infer_image`` converts its input from BGR to RGB; their
    training and evaluation code pass BGR (so the network sees RGB), while their demo passes RGB (so the network
    sees BGR by mistake). We follow training.
    """
    # contiguous planes: PyTorch's bicubic resize of a channels-last view is 1.6x slower (same values)
    x = frames.permute(0, 3, 1, 2).float().contiguous()
    if frames.dtype == torch.uint8:
        x = x / 255.0
    x = F.interpolate(x, size, mode="bicubic", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _load_transformers_folder(folder: Path) -> torch.nn.Module:
    from transformers import DepthAnythingForDepthEstimation

    for required in ("config.json", "model.safetensors"):
        if not (folder / required).is_file():
            raise FileNotFoundError(f"Depth Anything V2 folder {folder} lacks {required}; re-download it.")
    try:
        model = DepthAnythingForDepthEstimation.from_pretrained(str(folder), local_files_only=True)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise PackError(
            f"Depth Anything V2 folder {folder}: config.json or model.safetensors is corrupt or does not match "
            f"({err}); re-download it."
        ) from err
    return model.eval().requires_grad_(False)


def _as_frames(frames) -> torch.Tensor:
    frames = torch.as_tensor(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] RGB, got shape {tuple(frames.shape)}.")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty.")
    return frames
