"""One training forward pass: conditions and target in, the EDM loss out (reference §2.4-2.7).

For a batch of ``B`` samples (``cond_a``, ``cond_b``, ``target``: ``[B, T, 3, h, w]`` in [-1, 1]) and a CPU
generator, the random draws happen in this order: noise levels ``sigma`` [B], latent noise, condition noise levels
``sigma_c`` [B], pixel noise for ``cond_a`` and ``cond_b``, the dropout draws ``u`` [B], then the VAE posterior
samples (target, ``cond_a``, ``cond_b``). Then:

* ``x0`` = VAE sample of the target x ``scaling_factor``; conditions ``cond + sigma_c * noise`` encoded with the
  VAE (sample, unscaled), the same ``sigma_c`` for both conditions of a sample;
* CLIP context from the *clean* ``cond_a`` frames (``image_embeds``, per frame); ``all_frames``: every frame's
  cross-attention sees the T embeddings (the authors' training), ``per_frame``: one token per frame;
* dropout with p: the CLIP context is zeroed when ``u < 2p``, both condition latents when ``p <= u < 3p``;
* UNet input ``[c_in * (x0 + sigma * eps) | cond_a latent | cond_b latent]`` at timestep ``0.25 ln sigma``,
  time ids ``[fps_id, motion_bucket_id, sigma_c]`` per sample; loss = `edm_loss`.

Unlike the authors' code this is correct for ``B > 1`` (their dropout masks broadcast on the wrong axes and every
sample shares sample 0's ``sigma_c`` time id).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engine.resize import clip_image_embeddings
from .config import TrainingConfig
from .edm import edm_loss, preconditioning, sample_log_normal

ENCODE_CHUNK = 16  # frames per VAE / CLIP call


@dataclass
class StepOutput:
    """``loss`` [B] (float32, differentiable); ``sigma``, ``cond_sigma``, ``u`` [B] (the draws, for logging/tests)."""

    loss: torch.Tensor
    sigma: torch.Tensor
    cond_sigma: torch.Tensor
    u: torch.Tensor


def dropout_keep(u: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' conditioning dropout (InstructPix2Pix scheme): ``(keep CLIP, keep latent conditions)`` [B] bool.

    ``u < p``: CLIP dropped; ``p <= u < 2p``: both dropped; ``2p <= u < 3p``: latent conditions dropped;
    otherwise nothing (p = 0.1: 10 % / 10 % / 10 % / 70 %).
    """
    return u >= 2 * p, ~((u >= p) & (u < 3 * p))


class LossComputer:
    """Holds the frozen VAE and CLIP encoder and computes `StepOutput` for a UNet and a batch."""

    def __init__(self, vae, image_encoder, clip_mean, clip_std, config: TrainingConfig, device, dtype):
        self.vae, self.image_encoder, self.config = vae, image_encoder, config
        self.device, self.dtype = torch.device(device), dtype
        self.clip_mean = torch.tensor(clip_mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.clip_std = torch.tensor(clip_std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    def __call__(self, unet, batch: dict, generator: torch.Generator) -> StepOutput:
        cfg = self.config
        cond_a, cond_b, target = (batch[k].to(self.device, torch.float32) for k in ("cond_a", "cond_b", "target"))
        b, t, _, h, w = target.shape
        f = 2 ** (len(self.vae.config.block_out_channels) - 1)
        latent_shape = (b, t, self.vae.config.latent_channels, h // f, w // f)

        sigma = sample_log_normal(b, cfg.p_mean, cfg.p_std, generator)
        eps = torch.randn(latent_shape, generator=generator)
        cond_sigma = sample_log_normal(b, cfg.cond_sigma_mean, cfg.cond_sigma_std, generator)
        noise_a = torch.randn(cond_a.shape, generator=generator)
        noise_b = torch.randn(cond_b.shape, generator=generator)
        u = torch.rand(b, generator=generator)

        with torch.no_grad():
            x0 = self.encode(target, generator) * self.vae.config.scaling_factor
            view = (b, 1, 1, 1, 1)
            lat_a = self.encode(cond_a + cond_sigma.view(view).to(self.device) * noise_a.to(self.device), generator)
            lat_b = self.encode(cond_b + cond_sigma.view(view).to(self.device) * noise_b.to(self.device), generator)
            embeds = self.clip_embeddings(cond_a)  # [B, T, D]

        keep_clip, keep_cond = dropout_keep(u, cfg.conditioning_dropout)
        keep_clip, keep_cond = keep_clip.to(self.device), keep_cond.to(self.device)
        embeds = embeds * keep_clip.view(b, 1, 1).to(embeds.dtype)
        conds = torch.cat([lat_a, lat_b], dim=2) * keep_cond.view(view).to(lat_a.dtype)
        context = self.context(embeds)

        sigma_d = sigma.to(self.device)
        noisy = x0 + sigma_d.view(view) * eps.to(self.device)
        _, _, c_in, c_noise = preconditioning(sigma_d)
        model_in = torch.cat([c_in.view(view) * noisy, conds.float()], dim=2)
        time_ids = torch.stack([torch.full_like(cond_sigma, float(cfg.fps_id)),
                                torch.full_like(cond_sigma, float(cfg.motion_bucket_id)), cond_sigma], dim=1)
        output = unet(model_in, c_noise, encoder_hidden_states=context, added_time_ids=time_ids.to(self.device))[0]
        return StepOutput(loss=edm_loss(output, noisy, x0, sigma_d), sigma=sigma, cond_sigma=cond_sigma, u=u)

    def context(self, embeds: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` -> ``[B * T, T, D]`` (``all_frames``) or ``[B * T, 1, D]`` (``per_frame``)."""
        b, t, d = embeds.shape
        if self.config.clip_context == "per_frame":
            return embeds.reshape(b * t, 1, d)
        return embeds.unsqueeze(1).expand(b, t, t, d).reshape(b * t, t, d)

    def encode(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """VAE posterior samples, unscaled: ``[B, T, 3, h, w]`` -> ``[B, T, 4, h/8, w/8]`` float32."""
        dtype = self.vae.encoder.conv_in.weight.dtype
        out = []
        for chunk in pixels.flatten(0, 1).split(ENCODE_CHUNK):
            posterior = self.vae.encode(chunk.to(self.device, dtype)).latent_dist
            noise = torch.randn(posterior.mean.shape, generator=generator).to(self.device, posterior.mean.dtype)
            out.append((posterior.mean + posterior.std * noise).float())
        latents = torch.cat(out)
        return latents.view(*pixels.shape[:2], *latents.shape[1:])

    def clip_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        """CLIP ``image_embeds`` of every frame: ``[B, T, 3, h, w]`` in [-1, 1] -> ``[B, T, D]`` float32.

        Resize to 224x224 with antialiasing, [-1, 1] -> [0, 1], CLIP mean/std normalisation (reference §1.3).
        """
        dtype = next(self.image_encoder.parameters()).dtype
        embeds = clip_image_embeddings(self.image_encoder, pixels.flatten(0, 1), self.clip_mean, self.clip_std,
                                       self.device, dtype)
        return embeds.float().view(*pixels.shape[:2], -1)
