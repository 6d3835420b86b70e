"""Runtime choices of the sampler that never change its results beyond float rounding: TF32 matrix products on
CUDA, how much memory is free and how much a call needs, and how many videos the VAE decodes per call.

* **TF32.** On NVIDIA GPUs since Ampere, float32 matrix products may run in TF32 (10-bit mantissa inputs, float32
  accumulation). PyTorch already lets cuDNN convolutions do so by default; `tf32_matmuls` extends it to the matrix
  products (attention, linear layers) for the duration of a sampling call and restores the previous setting.
  It affects only float32 work on CUDA (fp32 runs; with fp16 the VAE encoder, which runs in float32); the CPU is
  untouched. Set ``DIFFUSION_VAS_TF32=0`` to keep IEEE float32 products.
* **Free memory** is the host's answer (`host.Host.free_memory`; by default `base.memory.free_memory`).
* **Decoding.** The temporal VAE decodes ``decode_chunk_size`` frames as one video (the chunking is part of the
  result, as in the reference). Chunks of different objects, and different chunks of one object, are independent
  videos, so several of them can share one decoder call (`videos_per_decode`) without changing any result beyond
  float rounding; fewer, larger calls keep a GPU busy.
* **Memory a call needs.** `sampling_bytes` estimates a stage call's working memory beyond the weights, so model
  management (ComfyUI's, or the plain host's in `nodes.comfy_bridge`) can offload other models first when VRAM is
  short. The constants are estimates from the architecture, to be checked against ``benchmarks/device_check.sh``.
"""

from __future__ import annotations

import contextlib
import os

import torch

TF32_ENV = "DIFFUSION_VAS_TF32"

# Peak decoder memory per decoded pixel of a frame, in elements of the decode dtype: the last up block works at the
# full size with 128 channels, and a spatio-temporal resnet keeps its input, two convolutions' outputs, the
# temporal branch and the blend alive at once (~6 x 128); rounded up for the upsampling and allocator slack.
DECODE_ELEMENTS_PER_PIXEL = 1024
DECODE_MEMORY_SHARE = 0.5  # of the free memory, for one decoder call
# Peak UNet activations per latent pixel of a frame and batch row, in elements of the model dtype: the skip
# connections kept for the up path (~1 700 channels over the levels, at their resolutions) plus the working set of
# a level-0 transformer block (q, k, v, output and the 4x GEGLU feed-forward of 320 channels, ~4 000); rounded up.
UNET_ELEMENTS_PER_LATENT_PIXEL = 8192


def tf32_allowed() -> bool:
    """TF32 matrix products on CUDA unless ``DIFFUSION_VAS_TF32`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get(TF32_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def tf32_matmuls(device: torch.device):
    """CUDA float32 matrix products in TF32 inside the block (when `tf32_allowed`); nothing changes elsewhere."""
    if torch.device(device).type != "cuda" or not tf32_allowed():
        yield
        return
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
        previous = matmul.fp32_precision
        matmul.fp32_precision = "tf32"
        try:
            yield
        finally:
            matmul.fp32_precision = previous
    else:
        previous = matmul.allow_tf32
        matmul.allow_tf32 = True
        try:
            yield
        finally:
            matmul.allow_tf32 = previous


def decode_bytes(frames: int, size: tuple[int, int], dtype: torch.dtype) -> int:
    """Estimated peak memory of decoding one video of ``frames`` frames at ``size`` (H, W) in ``dtype``."""
    return DECODE_ELEMENTS_PER_PIXEL * frames * size[0] * size[1] * torch.finfo(dtype).bits // 8


def videos_per_decode(videos: int, frames: int, size: tuple[int, int], dtype: torch.dtype, free: int) -> int:
    """How many of ``videos`` videos of ``frames`` frames to decode per call: as many as `DECODE_MEMORY_SHARE` of
    ``free`` bytes holds by `decode_bytes`, at least 1."""
    fits = int(free * DECODE_MEMORY_SHARE) // max(decode_bytes(frames, size, dtype), 1)
    return max(1, min(videos, fits))


def sampling_bytes(frames: int, size: tuple[int, int], rows: int, dtype: torch.dtype, guidance: bool = True,
                   decode_chunk: int = 8) -> int:
    """Estimated memory a sampling call needs beyond the weights: the larger of the UNet's activations (``rows``
    object-samples of one ``frames``-frame window at ``size`` (H, W), twice with guidance) and one decoder call
    (the decoder runs after the UNet's activations are freed). For model management (what to offload first), not a
    guarantee."""
    latent_pixels = (size[0] // 8) * (size[1] // 8)
    elements = UNET_ELEMENTS_PER_LATENT_PIXEL * latent_pixels * frames * rows * (2 if guidance else 1)
    unet = elements * torch.finfo(dtype).bits // 8
    return max(unet, decode_bytes(min(decode_chunk, frames), size, dtype))
