"""Antialiased resize for the CLIP input, as Stable Video Diffusion computes it.

Vendored from diffusers (``pipelines/stable_video_diffusion/pipeline_stable_video_diffusion.py``:
``_resize_with_antialiasing`` and its Gaussian-blur helpers, which follow kornia and skimage), Copyright The
HuggingFace Team, Apache License 2.0. It is private there and may change or vanish in any diffusers release; the
reference pipeline uses it for the CLIP context, so parity depends on it staying exactly this
(``tests/test_engine.py`` checks it against the parity fixtures). Condensed, same arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_kernel(size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    """Normalized 1-D Gaussian ``[size]`` centred on ``size // 2`` (half-pixel shift for even sizes)."""
    x = torch.arange(size, dtype=dtype) - size // 2
    if size % 2 == 0:
        x = x + 0.5
    gauss = torch.exp(-x.pow(2.0) / (2 * torch.tensor(sigma, dtype=dtype).pow(2.0)))
    return gauss / gauss.sum()


def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 2-D filter ``[kh, kw]`` with reflect padding (asymmetric for even kernels)."""
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    pad = [(kw - 1) // 2, (kw - 1) - (kw - 1) // 2, (kh - 1) // 2, (kh - 1) - (kh - 1) // 2]
    x = F.pad(x, pad, mode="reflect").view(-1, c, h + kh - 1, w + kw - 1)
    weight = kernel.to(x.device, x.dtype)[None, None].expand(c, 1, kh, kw)
    return F.conv2d(x, weight, groups=c).view(b, c, h, w)


def resize_with_antialiasing(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C, h, w]``: Gaussian blur (sigma from the scale, skimage's rule) then bicubic
    with ``align_corners=True``."""
    h, w = x.shape[-2:]
    sigmas = (max((h / size[0] - 1.0) / 2.0, 0.001), max((w / size[1] - 1.0) / 2.0, 0.001))
    ky, kx = (int(max(4.0 * s, 3)) for s in sigmas)
    ky, kx = ky + (ky % 2 == 0), kx + (kx % 2 == 0)  # odd sizes
    x = _filter(x, _gaussian_kernel(kx, sigmas[1], x.dtype)[None, :])
    x = _filter(x, _gaussian_kernel(ky, sigmas[0], x.dtype)[:, None])
    return F.interpolate(x, size=size, mode="bicubic", align_corners=True)


CLIP_SIZE = (224, 224)
ENCODE_CHUNK = 32  # frames per CLIP batch


def clip_image_embeddings(image_encoder, frames: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                          device, dtype: torch.dtype) -> torch.Tensor:
    """CLIP ``image_embeds`` of condition frames, as the reference (and training) computes the context.

    ``[M, 3, h, w]`` in [-1, 1] -> ``[M, D]`` in ``dtype``: antialiased resize to 224x224 in float32, [-1, 1] ->
    [0, 1], the feature extractor's mean/std (``[1, 3, 1, 1]``) only (no rescale, resize or crop).
    """
    mean, std = mean.to(device), std.to(device)
    out = []
    for chunk in frames.split(ENCODE_CHUNK):
        pixels = resize_with_antialiasing(chunk.to(device, torch.float32), CLIP_SIZE)
        pixels = ((pixels + 1.0) / 2.0 - mean) / std
        out.append(image_encoder(pixels.to(dtype)).image_embeds)
    return torch.cat(out)
