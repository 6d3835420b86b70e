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

from ..host.policy import get_host
from .condition_video import ConditionVideo, as_condition_video
from .options import SamplingOptions
from .resize import clip_image_embeddings
from .runtime import tf32_matmuls, videos_per_decode
from .windows import window_starts, window_weights

logger = logging.getLogger(__name__)

StepCallback = Callable[[int, int], None]
"""Called after each denoising step with (steps done, total steps) over the whole call."""

CPU_DECODE_BATCHING = False  # several VAE chunks per decoder call on the CPU too (tests of the batching set it)

DecodedCallback = Callable[[int, slice, torch.Tensor], None]
"""Receives the decoded video piece by piece: (output row, frame slice, float32 ``[t, 3, h, w]`` in [0, 1])."""


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
    def sample(self, cond_a, cond_b, options: SamplingOptions | None = None,
               callback: StepCallback | None = None, *, on_decoded: DecodedCallback | None = None,
               **changes) -> torch.Tensor | None:
        """Samples the output video for one object or a batch of objects, one or several samples each.

        Args:
            cond_a: ``[T, 3, h, w]`` (one object), ``[N, T, 3, h, w]`` (N objects) or ``[N, K, T, 3, h, w]`` (N
                objects, one condition per sample: K hypotheses, e.g. stage 2 completing K amodal-mask
                hypotheses), float in [-1, 1] at the processing size; ``h`` and ``w`` multiples of 8. Also the
                CLIP context source. Or a `ConditionVideo` of that shape: a compact store expanded
                `ENCODE_CHUNK` frames at a time, so a long shot's conditions never exist as float frames.
            cond_b: same shape as ``cond_a``.
            options: sampling settings (`SamplingOptions`; default: the reference's, seed 23). Sample ``k`` of
                every object gets a fresh CPU generator seeded with ``options.seed + k``, so it is exactly the
                result of a one-sample run with that seed, whichever objects and samples share the call.
                ``options.samples`` (K) samples are drawn per object; with per-sample conditions it must be 1 or
                their K. ``window``/``overlap`` cover clips longer than the model's 25 frames;
                ``object_batch_size`` object-samples share one UNet batch (memory grows linearly).
            callback: ``callback(done, total)`` after every denoising step (progress, cancellation).
            on_decoded: ``on_decoded(row, frames, pixels)`` receives the decoded video piece by piece instead
                of the return value: row ``r`` = object ``r // K``'s sample ``r % K``, ``frames`` a slice of
                the clip, ``pixels`` float32 ``[t, 3, h, w]`` in [0, 1] on the CPU (each row's pieces in
                order, `decode_chunk_size` frames each). The same numbers as the returned tensor.
            **changes: individual settings overriding ``options`` (``seed=7, num_inference_steps=4``, ...).

        Returns:
            float32 frames in [0, 1] on the CPU: ``[T, 3, h, w]`` or ``[N, T, 3, h, w]`` for one sample (as
            given); with several samples, or per-sample conditions, the sample axis follows the object axis:
            ``[K, T, 3, h, w]`` or ``[N, K, T, 3, h, w]``. None with ``on_decoded``.
        """
        options = (options or SamplingOptions()).with_changes(**changes)
        options.validate()
        single = torch.is_tensor(cond_a) and cond_a.ndim == 4
        video_a, video_b = as_condition_video(cond_a, "cond_a"), as_condition_video(cond_b, "cond_b")
        n, k = self._check_conditions(video_a, video_b, options.samples)
        per_sample = video_a.hypotheses > 1
        # Object-major, then sample by sample: row r is (object r // k, sample r % k), drawn with seed + r % k.
        sources = [i * (k if per_sample else 1) + (j if per_sample else 0) for i in range(n) for j in range(k)]
        seeds = [options.seed + j for _ in range(n) for j in range(k)]
        size = options.object_batch_size
        groups = [list(range(i, min(i + size, n * k))) for i in range(0, n * k, size)]
        progress = _Progress(callback, options.num_inference_steps * len(groups))
        pieces = []
        with tf32_matmuls(self.device):
            for group in groups:
                latents = self._denoise_group(video_a, video_b, [sources[r] for r in group],
                                              [seeds[r] for r in group], options, progress)
                if on_decoded is None:
                    pieces.append(self._decode(latents, options.decode_chunk_size))
                else:
                    self._decode(latents, options.decode_chunk_size,
                                 lambda i, part, pixels, group=group: on_decoded(group[i], part, pixels))
        if on_decoded is not None:
            return None
        frames = torch.cat(pieces)
        if k > 1 or per_sample:
            frames = frames.view(n, k, *frames.shape[1:])
        return frames[0] if single else frames

    # -- one batch of objects --------------------------------------------------------------------------------

    def _denoise_group(self, video_a: ConditionVideo, video_b: ConditionVideo, sources: list[int],
                       seeds: list[int], options: SamplingOptions, progress: "_Progress") -> torch.Tensor:
        """One UNet batch: row ``r`` denoises condition rows ``sources[r]`` from ``seeds[r]``; returns the final
        latents ``[n, T, 4, h/8, w/8]``."""
        t = video_a.frames
        lat_a, lat_b, latents = self._encode_conditions(video_a, video_b, sources, seeds, options.noise_aug_strength)
        # CLIP sees condition A without noise: samples of one object share its embedding, computed once.
        unique = sorted(set(sources))
        embeds = {s: self._clip_embeddings(video_a, s) for s in unique}
        embeds = torch.stack([embeds[s] for s in sources])  # [n, T, D]
        aug = options.noise_aug_strength

        do_cfg = options.guidance_scale > 1
        if do_cfg:
            lat_a = torch.cat([torch.zeros_like(lat_a), lat_a])
            lat_b = torch.cat([torch.zeros_like(lat_b), lat_b])
        time_ids = torch.tensor([[options.fps - 1, options.motion_bucket_id, aug]], dtype=self.dtype,
                                device=self.device).repeat(lat_a.shape[0], 1)

        scheduler = EulerDiscreteScheduler.from_config(self.scheduler_config)
        # No host synchronisation inside the loop: the schedule is made on the CPU (set_timesteps reads every sigma
        # back to the host) and moved once, and a fixed begin index spares the scheduler's first-step search for
        # the timestep (a device-to-host read). The scheduler keeps its sigmas on the CPU itself.
        scheduler.set_timesteps(options.num_inference_steps, device="cpu")
        scheduler.set_begin_index(0)
        timesteps = scheduler.timesteps.to(self.device)
        latents = latents.to(self.device) * scheduler.init_noise_sigma

        starts = window_starts(t, options.window, options.overlap)
        span = min(options.window, t)
        weights = window_weights(t, span, starts, options.overlap).to(self.device, latents.dtype)  # [windows, T]
        # The reference's per-frame guidance is linspace(min, max, frames); with min = max it is this constant.
        guidance = torch.full((1, span, 1, 1, 1), options.guidance_scale, device=self.device, dtype=latents.dtype)
        contexts = [self._context(embeds[:, s:s + span], do_cfg) for s in starts]

        for step_t in timesteps:
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = scheduler.scale_model_input(model_in, step_t)
            prediction = torch.zeros_like(latents)
            for w, s in enumerate(starts):
                frames = slice(s, s + span)
                unet_in = torch.cat([model_in[:, frames], lat_a[:, frames], lat_b[:, frames]], dim=2)
                pred = self.unet(unet_in, step_t, encoder_hidden_states=contexts[w], added_time_ids=time_ids)[0]
                if do_cfg:
                    uncond, cond = pred.chunk(2)
                    pred = uncond + guidance * (cond - uncond)
                if len(starts) == 1:
                    prediction = pred
                else:
                    prediction[:, frames] += pred * weights[w, frames].view(1, span, 1, 1, 1)
            latents = scheduler.step(prediction, step_t, latents).prev_sample
            progress.step()
        return latents

    def _encode_conditions(self, video_a: ConditionVideo, video_b: ConditionVideo, sources: list[int],
                           seeds: list[int], aug: float):
        """Per row, in reference order from a fresh CPU generator seeded with ``seeds[r]`` (modulo 2**64, the
        generator's range): noise for condition A, noise for condition B (each added as ``aug * noise`` before
        VAE encoding), then the initial latents. Returns ``(lat_a, lat_b, latents)``, each ``[n, T, 4, h/8, w/8]``.

        The noise is drawn a chunk of frames at a time as the conditions are encoded: CPU ``randn`` fills
        consecutive draws from the generator's stream, so chunks of whole frames give exactly the numbers of one
        draw of the whole ``[T, 3, h, w]`` (tested), and a row's noise is a one-row run's whatever shares the batch.
        """
        f = self.vae_scale_factor
        h, w = video_a.size
        latent_shape = (1, video_a.frames, self.unet.config.out_channels, h // f, w // f)
        lat_a, lat_b, latents = [], [], []
        for source, seed in zip(sources, seeds):
            gen = torch.Generator("cpu").manual_seed(int(seed) % 2**64)
            lat_a.append(self._vae_encode(video_a, source, "cond_a", gen, aug))
            lat_b.append(self._vae_encode(video_b, source, "cond_b", gen, aug))
            latents.append(torch.randn(latent_shape, generator=gen, dtype=self.dtype))
        return torch.stack(lat_a), torch.stack(lat_b), torch.cat(latents)

    def _vae_encode(self, video: ConditionVideo, row: int, name: str, gen: torch.Generator,
                    aug: float) -> torch.Tensor:
        """Latent mode of row ``row`` with ``aug * noise`` added: ``[T, 4, h/8, w/8]`` in the model dtype."""
        out = []
        for pixels in video.chunks(row):
            _check_finite(pixels, name)
            noisy = pixels + aug * torch.randn(pixels.shape, generator=gen, dtype=pixels.dtype)
            chunk = noisy.to(self.device, self.vae_encode_dtype)
            out.append(self.vae.encode(chunk).latent_dist.mode().to(self.dtype))
        return torch.cat(out)

    def _clip_embeddings(self, video: ConditionVideo, row: int) -> torch.Tensor:
        """CLIP image embeddings of every frame of condition A's row ``row``: ``[T, D]``."""
        return torch.cat([clip_image_embeddings(self.image_encoder, pixels, self.clip_mean, self.clip_std,
                                                self.device, self.dtype) for pixels in video.chunks(row)])

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

    def _decode(self, latents: torch.Tensor, chunk: int, emit=None) -> torch.Tensor | None:
        """Temporal VAE decoding ``chunk`` frames at a time: ``[N, T, 4, h, w]`` -> ``[N, T, 3, H, W]`` in [0, 1] on
        the CPU; or, with ``emit``, each row's pieces handed to ``emit(row, frames, pixels [t, 3, H, W])``.

        Every (row, chunk) is one video of the temporal decoder, as in the reference; videos of equal length share a
        decoder call, as many as the free memory holds (`runtime.videos_per_decode`; the N rows of one chunk where
        the host cannot tell the free memory). Videos go chunk by chunk, rows in order within a chunk, so each
        row's pieces reach ``emit`` in frame order."""

        n, t = latents.shape[:2]
        latents = latents / self.vae.config.scaling_factor
        dtype = self.vae.decoder.conv_in.weight.dtype
        f = self.vae_scale_factor
        size = (latents.shape[-2] * f, latents.shape[-1] * f)
        videos = [(row, s) for s in range(0, t, chunk) for row in range(n)]
        # On an accelerator several chunks share a call (fewer, fuller kernels); on the CPU batching gains little and
        # half the free RAM for one call makes a long shot's memory grow with its length: one chunk per call there.
        batch = self.device.type != "cpu" or CPU_DECODE_BATCHING
        free = get_host().free_memory(self.device) if batch else None
        per_call = n if free is None else videos_per_decode(len(videos), chunk, size, dtype, free)
        groups: list[list[tuple[int, int]]] = []
        for row, s in videos:
            last = groups[-1] if groups else None
            if last and len(last) < per_call and min(chunk, t - last[0][1]) == min(chunk, t - s):
                last.append((row, s))
            else:
                groups.append([(row, s)])
        out = None if emit is not None else torch.empty(n, t, 3, *size)
        for group in groups:
            k = min(chunk, t - group[0][1])
            z = torch.stack([latents[row, s:s + k] for row, s in group]).flatten(0, 1)
            decoded = self.vae.decode(z.to(dtype), num_frames=k).sample
            frames = (decoded.float().view(len(group), k, *decoded.shape[1:]) / 2 + 0.5).clamp(0, 1).cpu()
            for (row, s), pixels in zip(group, frames):
                if emit is None:
                    out[row, s:s + k] = pixels
                else:
                    emit(row, slice(s, s + k), pixels)
        return out

    @staticmethod
    def _check_conditions(video_a: ConditionVideo, video_b: ConditionVideo, samples: int) -> tuple[int, int]:
        """Shapes of the two conditions -> ``(objects, samples per object)``; raises naming what is wrong. Values
        are checked (NaN, infinity) chunk by chunk as they are encoded."""
        if video_a.shape != video_b.shape:
            raise ValueError(f"cond_a {tuple(video_a.shape)} and cond_b {tuple(video_b.shape)} must have the same "
                             "shape.")
        h, w = video_a.size
        if h % 8 or w % 8:
            raise ValueError(f"Processing size {h}x{w} must be a multiple of 8 in both dimensions.")
        if video_a.hypotheses == 1:
            return video_a.rows, samples
        n, k = video_a.shape[:2]
        if samples not in (1, k):
            raise ValueError(f"The conditions hold {k} hypotheses per object but samples={samples}; draw one sample "
                             f"per hypothesis (samples=1 or {k}).")
        return n, k


class _Progress:
    def __init__(self, callback: StepCallback | None, total: int):
        self.callback, self.total, self.done = callback, total, 0

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _check_finite(pixels: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(pixels.sum())) and not bool(torch.isfinite(pixels).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
