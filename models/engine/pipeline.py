"""Diffusion-VAS sampling: two video conditions in, a denoised video out.

One `DiffusionVASPipeline` serves both stages; the checkpoint decides what the two conditions mean
(stage 1: modal mask + pseudo-depth -> amodal mask video; stage 2: modal RGB + amodal mask -> completed RGB).

Reference numerics (the authors' `DiffusionVASPipeline`) are reproduced exactly for a clip of up to one window:

* random draws per object from a fresh CPU generator seeded with ``seed``: noise for condition A, noise for
  condition B, then the initial latents (``randn * init_noise_sigma``);
* conditions get ``noise_aug_strength * noise`` in pixel space; VAE latents are the distribution mode, unscaled;
  the unconditional branch uses zero latents;
* CLIP context from condition A, one token per frame, with the reference's classifier-free-guidance ordering:
  the per-frame pairs ``[zeros, embed]`` are concatenated (``[neg_0, pos_0, neg_1, pos_1, ...]``) and row ``r`` of
  the ``[uncond frames, cond frames]`` latent batch attends to token ``r``;
* ``added_time_ids = [fps - 1, motion_bucket_id, noise_aug_strength]``; per-frame guidance
  ``linspace(min, max, frames)``; Euler (v-prediction, Karras) from the checkpoint's scheduler config;
* temporal VAE decoding ``decode_chunk_size`` frames at a time.

One deliberate difference: the reference passes each condition frame through diffusers'
``VaeImageProcessor.preprocess``, which maps a frame whose minimum is >= 0 from [0, 1] to [-1, 1] a second time
(a deprecated range heuristic). Training encodes the conditions as they are, so this engine does too; the two
agree whenever a frame has a negative value (always the case in the parity fixtures).

Where the reference loops over frames (CLIP, VAE encoder), this engine batches; the random draws are unchanged.

Clips longer than ``window`` frames are denoised in overlapping windows that share one latent video: at every
step each window predicts its frames, overlapping predictions are blended with linear ramps, and the scheduler
steps the whole clip at once. Joins stay seamless because neighbouring windows denoise the same latents; a clip
of at most ``window`` frames is a single reference run.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from diffusers import EulerDiscreteScheduler

from .options import SamplingOptions
from .resize import clip_image_embeddings
from .windows import window_starts, window_weights

logger = logging.getLogger(__name__)

StepCallback = Callable[[int, int], None]
"""Called after each denoising step with (steps done, total steps) over the whole call."""

ENCODE_CHUNK = 32  # frames per VAE-encoder batch


class DiffusionVASPipeline:
    """A loaded Diffusion-VAS checkpoint. Build it with `load_pipeline`."""

    def __init__(self, unet, vae, image_encoder, scheduler_config: dict, clip_mean, clip_std,
                 device="cpu", dtype: torch.dtype = torch.float32, name: str = "diffusion-vas"):
        self.unet, self.vae, self.image_encoder = unet, vae, image_encoder
        self.scheduler_config = dict(scheduler_config)
        self.clip_mean = torch.tensor(clip_mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.clip_std = torch.tensor(clip_std, dtype=torch.float32).view(1, 3, 1, 1)
        self.dtype = dtype
        self.name = name
        # Reference rule: a float16 VAE with force_upcast encodes in float32 (decoding stays in float16).
        self.vae_encode_dtype = (
            torch.float32 if dtype == torch.float16 and vae.config.get("force_upcast", False) else dtype
        )
        self.device = torch.device("cpu")
        self.to(device)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet, "vae": self.vae, "image_encoder": self.image_encoder}

    def to(self, device) -> "DiffusionVASPipeline":
        """Moves all models to ``device`` (keeping their dtypes)."""
        self.device = torch.device(device)
        for module in self.modules.values():
            module.to(self.device)
        self.vae.encoder.to(self.vae_encode_dtype)
        self.vae.quant_conv.to(self.vae_encode_dtype)
        return self

    @torch.no_grad()
    def sample(self, cond_a: torch.Tensor, cond_b: torch.Tensor, options: SamplingOptions | None = None,
               callback: StepCallback | None = None, **changes) -> torch.Tensor:
        """Samples the output video for one object or a batch of objects, one or several samples each.

        Args:
            cond_a: ``[T, 3, h, w]`` (one object), ``[N, T, 3, h, w]`` (N objects) or ``[N, K, T, 3, h, w]`` (N
                objects, one condition per sample: K hypotheses, e.g. stage 2 completing K amodal-mask
                hypotheses), float in [-1, 1] at the processing size; ``h`` and ``w`` multiples of 8. Also the
                CLIP context source.
            cond_b: same shape as ``cond_a``.
            options: sampling settings (`SamplingOptions`; default: the reference's, seed 23). Sample ``k`` of
                every object gets a fresh CPU generator seeded with ``options.seed + k``, so it is exactly the
                result of a one-sample run with that seed, whichever objects and samples share the call.
                ``options.samples`` (K) samples are drawn per object; with per-sample conditions it must be 1 or
                their K. ``window``/``overlap`` cover clips longer than the model's 25 frames;
                ``object_batch_size`` object-samples share one UNet batch (memory grows linearly).
            callback: ``callback(done, total)`` after every denoising step (progress, cancellation).
            **changes: individual settings overriding ``options`` (``seed=7, num_inference_steps=4``, ...).

        Returns:
            float32 frames in [0, 1] on the CPU: ``[T, 3, h, w]`` or ``[N, T, 3, h, w]`` for one sample (as
            given); with several samples, or per-sample conditions, the sample axis follows the object axis:
            ``[K, T, 3, h, w]`` or ``[N, K, T, 3, h, w]``.
        """
        options = (options or SamplingOptions()).with_changes(**changes)
        options.validate()
        single, per_sample = cond_a.ndim == 4, cond_a.ndim == 6
        rows_a, rows_b, n, k = _sample_rows(cond_a, cond_b, options.samples)
        self._check_conditions(rows_a, rows_b)
        # Object-major, then sample by sample: row r is (object r // k, sample r % k), drawn with seed + r % k.
        sources = [i * (k if per_sample else 1) + (j if per_sample else 0) for i in range(n) for j in range(k)]
        seeds = [options.seed + j for _ in range(n) for j in range(k)]
        size = options.object_batch_size
        groups = [range(i, min(i + size, n * k)) for i in range(0, n * k, size)]
        progress = _Progress(callback, options.num_inference_steps * len(groups))
        frames = torch.cat([self._sample_group(rows_a, rows_b, [sources[r] for r in g], [seeds[r] for r in g],
                                               options, progress) for g in groups])
        if k > 1 or per_sample:
            frames = frames.view(n, k, *frames.shape[1:])
        return frames[0] if single else frames

    # -- one batch of objects --------------------------------------------------------------------------------

    def _sample_group(self, rows_a, rows_b, sources: list[int], seeds: list[int], options: SamplingOptions,
                      progress: "_Progress") -> torch.Tensor:
        """One UNet batch: row ``r`` denoises conditions ``rows_*[sources[r]]`` from ``seeds[r]``."""
        index = torch.tensor(sources)
        cond_a, cond_b = rows_a[index], rows_b[index]
        n, t, _, h, w = cond_a.shape
        noise_a, noise_b, latents = self._draw_noise(cond_a, cond_b, seeds)
        # CLIP sees condition A without noise: samples of one object share its embedding, computed once.
        unique, inverse = torch.unique(index, return_inverse=True)
        embeds = self._clip_embeddings(rows_a[unique])[inverse]  # [N, T, D]
        aug = options.noise_aug_strength
        lat_a = self._vae_encode(cond_a + aug * noise_a)  # [N, T, 4, h/8, w/8]
        lat_b = self._vae_encode(cond_b + aug * noise_b)

        do_cfg = options.guidance_scale > 1
        if do_cfg:
            lat_a = torch.cat([torch.zeros_like(lat_a), lat_a])
            lat_b = torch.cat([torch.zeros_like(lat_b), lat_b])
        time_ids = torch.tensor([[options.fps - 1, options.motion_bucket_id, aug]], dtype=self.dtype,
                                device=self.device).repeat(lat_a.shape[0], 1)

        scheduler = EulerDiscreteScheduler.from_config(self.scheduler_config)
        scheduler.set_timesteps(options.num_inference_steps, device=self.device)
        latents = latents.to(self.device) * scheduler.init_noise_sigma

        starts = window_starts(t, options.window, options.overlap)
        span = min(options.window, t)
        weights = window_weights(t, span, starts, options.overlap).to(self.device, latents.dtype)  # [windows, T]
        # The reference's per-frame guidance is linspace(min, max, frames); with min = max it is this constant.
        guidance = torch.full((1, span, 1, 1, 1), options.guidance_scale, device=self.device, dtype=latents.dtype)
        contexts = [self._context(embeds[:, s:s + span], do_cfg) for s in starts]

        for step_t in scheduler.timesteps:
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = scheduler.scale_model_input(model_in, step_t)
            prediction = torch.zeros_like(latents)
            for k, s in enumerate(starts):
                frames = slice(s, s + span)
                unet_in = torch.cat([model_in[:, frames], lat_a[:, frames], lat_b[:, frames]], dim=2)
                pred = self.unet(unet_in, step_t, encoder_hidden_states=contexts[k], added_time_ids=time_ids)[0]
                if do_cfg:
                    uncond, cond = pred.chunk(2)
                    pred = uncond + guidance * (cond - uncond)
                if len(starts) == 1:
                    prediction = pred
                else:
                    prediction[:, frames] += pred * weights[k, frames].view(1, span, 1, 1, 1)
            latents = scheduler.step(prediction, step_t, latents).prev_sample
            progress.step()

        return self._decode(latents, options.decode_chunk_size)

    def _draw_noise(self, cond_a, cond_b, seeds: list[int]):
        """Per row, in reference order: noise A, noise B, initial latents (all drawn on the CPU).

        Row ``r`` draws from a fresh generator seeded with ``seeds[r]`` (modulo 2**64, the generator's range), so
        its noise is a one-row run's with that seed whatever shares the batch.
        """
        n, t, _, h, w = cond_a.shape
        f = self.vae_scale_factor
        latent_shape = (1, t, self.unet.config.out_channels, h // f, w // f)
        noise_a, noise_b, latents = [], [], []
        for seed in seeds:
            gen = torch.Generator("cpu").manual_seed(int(seed) % 2**64)
            noise_a.append(torch.randn(cond_a.shape[1:], generator=gen, dtype=cond_a.dtype))
            noise_b.append(torch.randn(cond_b.shape[1:], generator=gen, dtype=cond_b.dtype))
            latents.append(torch.randn(latent_shape, generator=gen, dtype=self.dtype))
        return torch.stack(noise_a), torch.stack(noise_b), torch.cat(latents)

    def _clip_embeddings(self, cond_a: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings of every frame of condition A: ``[N, T, 3, h, w]`` -> ``[N, T, D]``."""
        embeds = clip_image_embeddings(self.image_encoder, cond_a.flatten(0, 1), self.clip_mean, self.clip_std,
                                       self.device, self.dtype)
        return embeds.view(*cond_a.shape[:2], -1)

    def _context(self, embeds: torch.Tensor, do_cfg: bool) -> torch.Tensor:
        """Per-row cross-attention context for one window: ``[N, W, D]`` -> ``[(2) * N * W, 1, D]``.

        With guidance, object n's reference context is the interleaved list ``[neg_0, pos_0, neg_1, ...]``
        (length 2W); its unconditional rows take the first W entries and its conditional rows the last W.
        """
        n, w, d = embeds.shape
        if not do_cfg:
            return embeds.reshape(n * w, 1, d)
        pairs = torch.stack([torch.zeros_like(embeds), embeds], dim=2).reshape(n, 2, w, d)
        return pairs.transpose(0, 1).reshape(2 * n * w, 1, d)

    def _vae_encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Latent mode of every frame: ``[N, T, 3, h, w]`` -> ``[N, T, 4, h/8, w/8]`` in the model dtype."""
        out = []
        for chunk in pixels.flatten(0, 1).split(ENCODE_CHUNK):
            chunk = chunk.to(self.device, self.vae_encode_dtype)
            out.append(self.vae.encode(chunk).latent_dist.mode().to(self.dtype))
        latents = torch.cat(out)
        return latents.view(*pixels.shape[:2], *latents.shape[1:])

    def _decode(self, latents: torch.Tensor, chunk: int) -> torch.Tensor:
        """Temporal VAE decoding ``chunk`` frames at a time: ``[N, T, 4, h, w]`` -> ``[N, T, 3, H, W]`` in [0, 1]."""
        n, t = latents.shape[:2]
        latents = latents / self.vae.config.scaling_factor
        pieces = []
        for s in range(0, t, chunk):
            z = latents[:, s:s + chunk]
            k = z.shape[1]
            decoded = self.vae.decode(z.flatten(0, 1).to(self.vae.decoder.conv_in.weight.dtype), num_frames=k).sample
            pieces.append(decoded.float().view(n, k, *decoded.shape[1:]))
        frames = torch.cat(pieces, dim=1)
        return (frames / 2 + 0.5).clamp(0, 1).cpu()

    def _check_conditions(self, cond_a: torch.Tensor, cond_b: torch.Tensor) -> None:
        if cond_a.shape != cond_b.shape:
            raise ValueError(f"cond_a {tuple(cond_a.shape)} and cond_b {tuple(cond_b.shape)} must have the same shape.")
        if cond_a.shape[2] != 3:
            raise ValueError(f"Conditions need 3 channels ([T, 3, h, w]); got {tuple(cond_a.shape)}.")
        h, w = cond_a.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"Processing size {h}x{w} must be a multiple of 8 in both dimensions.")
        for name, tensor in (("cond_a", cond_a), ("cond_b", cond_b)):
            if not torch.isfinite(tensor).all():
                raise ValueError(f"{name} contains NaN or infinite values.")


class _Progress:
    def __init__(self, callback: StepCallback | None, total: int):
        self.callback, self.total, self.done = callback, total, 0

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _as_batch(cond: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_tensor(cond) or cond.ndim not in (4, 5, 6):
        shape = tuple(cond.shape) if torch.is_tensor(cond) else type(cond).__name__
        raise ValueError(f"{name} must be a [T, 3, h, w], [N, T, 3, h, w] or [N, K, T, 3, h, w] tensor; got {shape}.")
    cond = cond.float()
    return cond.unsqueeze(0) if cond.ndim == 4 else cond


def _sample_rows(cond_a: torch.Tensor, cond_b: torch.Tensor, samples: int):
    """Conditions -> ``(rows_a, rows_b, objects, samples per object)``; rows ``[R, T, 3, h, w]`` are the objects
    (shared by their samples) or, for per-sample conditions ``[N, K, ...]``, the object-major (object, sample)
    pairs."""
    cond_a, cond_b = _as_batch(cond_a, "cond_a"), _as_batch(cond_b, "cond_b")
    if cond_a.shape != cond_b.shape:
        raise ValueError(f"cond_a {tuple(cond_a.shape)} and cond_b {tuple(cond_b.shape)} must have the same shape.")
    if cond_a.ndim == 5:
        return cond_a, cond_b, cond_a.shape[0], samples
    n, k = cond_a.shape[:2]
    if samples not in (1, k):
        raise ValueError(f"The conditions hold {k} hypotheses per object but samples={samples}; draw one sample per "
                         f"hypothesis (samples=1 or {k}).")
    return cond_a.flatten(0, 1), cond_b.flatten(0, 1), n, k
