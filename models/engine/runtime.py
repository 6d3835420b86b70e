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
* **Memory a call needs.** `sampling_memory` estimates a stage call's working memory beyond the weights from the
  call itself (processing size, frames per window, object-samples per batch, guidance, decode chunk, precision),
  so model management (ComfyUI's, or the plain host's in `nodes.comfy_bridge`) can offload other models first when
  VRAM is short. The constants come from the architecture and are checked on real-size checkpoints by
  ``benchmarks/benchmark_sampling_memory.py``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from .options import SamplingOptions
from .resize import ENCODE_CHUNK

TF32_ENV = "DIFFUSION_VAS_TF32"

# The constants below are per-element counts derived from what each part keeps alive at its peak, checked against
# real-size models (benchmarks/benchmark_sampling_memory.py prints estimate and measurement).
# Peak decoder memory per decoded pixel of a frame, in elements of the decode dtype: the last up block works at the
# full size with 128 channels, and a spatio-temporal resnet keeps its input, two convolutions' outputs, the
# temporal branch and the blend alive at once (~6 x 128); rounded up for the upsampling and allocator slack.
DECODE_ELEMENTS_PER_PIXEL = 1024
DECODE_MEMORY_SHARE = 0.5  # of the free memory, for one decoder call
# Peak UNet activations per latent pixel of a frame and batch row, in elements of the model dtype: the skip
# connections kept for the up path (~1 700 channels over the levels, at their resolutions) plus the working set of
# a level-0 block (the up path's concatenated input of 960 channels, a resnet's and a transformer's 320-channel
# temporaries and the 4x GEGLU feed-forward of 320 channels, ~4 000); rounded up.
UNET_ELEMENTS_PER_LATENT_PIXEL = 8192
# Peak VAE-encoder memory per pixel of a frame, in elements of the encode dtype: the first down block works at the
# full size with 128 channels, a resnet keeping its input, the normalised and activated input and a convolution's
# output (~5 x 128).
ENCODE_ELEMENTS_PER_PIXEL = 640
# Peak CLIP (ViT-H/14 at 224x224: 257 tokens of 1280) memory per frame, in elements of the model dtype: a block's
# input, q, k, v, the attention weights of 16 heads and the 5120-wide MLP.
CLIP_ELEMENTS_PER_FRAME = 257 * (5 * 1280 + 2 * 5120) + 16 * 257 * 257
# Held across the parts, per latent pixel of a clip frame and object-sample: the noisy latents, the two condition
# latents (twice with guidance), the scaled model input (twice) and the prediction, 4 channels each.
HELD_ELEMENTS_PER_LATENT_PIXEL = 48
# Whatever the size: kernel workspaces (convolution algorithms, packed weights) and allocator rounding of a call.
CALL_OVERHEAD_BYTES = 256 * 2**20


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


@dataclass(frozen=True)
class SamplingMemory:
    """Estimated working memory of one sampling call beyond the weights, in bytes, part by part. The parts run
    one after another (`DiffusionVASPipeline.sample`: per object batch the VAE encoder, CLIP, the denoising loop,
    the decoder), so the call's peak is the largest part plus what is held across all of them (`held`) and a
    size-independent overhead (`CALL_OVERHEAD_BYTES`)."""

    encode: int  # one VAE-encoder call: min(ENCODE_CHUNK, frames) frames at the processing size, encode dtype
    clip: int  # one CLIP call: min(ENCODE_CHUNK, frames) frames at 224x224
    unet: int  # one UNet call: rows (x2 with guidance) x one window of latents
    decode: int  # one decoder call: min(decode_chunk_size, frames) frames at the processing size
    held: int  # the batch's latents, condition latents and prediction over the whole clip

    @property
    def peak(self) -> int:
        return CALL_OVERHEAD_BYTES + self.held + max(self.encode, self.clip, self.unet, self.decode)


def _bytes(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits // 8


def sampling_memory(options: SamplingOptions, objects: int, size: tuple[int, int], dtype: torch.dtype,
                    frames: int | None = None, encode_dtype: torch.dtype | None = None,
                    samples: int | None = None) -> SamplingMemory:
    """`SamplingMemory` of ``pipeline.sample(cond_a, cond_b, options)`` for ``objects`` condition rows (objects,
    or object-hypotheses) of ``frames`` frames (default: one window) at the processing ``size`` (H, W).

    What the sampler batches (`DiffusionVASPipeline._denoise_group`): ``min(object_batch_size, objects x samples)``
    object-samples share one UNet batch, doubled when ``guidance_scale > 1`` (classifier-free guidance runs the
    unconditional and conditional rows together), over ``min(window, frames)`` frames; the decoder takes
    ``decode_chunk_size`` frames per call; VAE encoder and CLIP ``ENCODE_CHUNK`` frames per call. ``dtype``: the
    model dtype; ``encode_dtype``: the VAE encoder's (`DiffusionVASPipeline.vae_encode_dtype`, float32 for a float16
    VAE with ``force_upcast``; default ``dtype``); ``samples``: samples drawn per object (default
    ``options.samples``; with K hypotheses per object the sampler draws K)."""
    frames = options.window if frames is None else max(int(frames), 1)
    encode_dtype = dtype if encode_dtype is None else encode_dtype
    samples = options.samples if samples is None else samples
    rows = max(1, min(options.object_batch_size, max(int(objects), 1) * max(int(samples), 1)))
    batch = rows * (2 if options.guidance_scale > 1 else 1)
    pixels = size[0] * size[1]
    latent_pixels = (size[0] // 8) * (size[1] // 8)
    span, encoded = min(options.window, frames), min(ENCODE_CHUNK, frames)
    return SamplingMemory(
        encode=ENCODE_ELEMENTS_PER_PIXEL * encoded * pixels * _bytes(encode_dtype),
        clip=CLIP_ELEMENTS_PER_FRAME * encoded * _bytes(dtype),
        unet=UNET_ELEMENTS_PER_LATENT_PIXEL * latent_pixels * span * batch * _bytes(dtype),
        decode=decode_bytes(min(options.decode_chunk_size, frames), size, dtype),
        held=HELD_ELEMENTS_PER_LATENT_PIXEL * latent_pixels * frames * rows * _bytes(dtype),
    )


def sampling_bytes(options: SamplingOptions, objects: int, size: tuple[int, int], dtype: torch.dtype,
                   frames: int | None = None, encode_dtype: torch.dtype | None = None,
                   samples: int | None = None) -> int:
    """Estimated peak memory of one sampling call beyond the weights (`sampling_memory`'s peak), for model
    management (what to offload first), not a guarantee."""
    return sampling_memory(options, objects, size, dtype, frames, encode_dtype, samples).peak
