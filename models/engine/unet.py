"""The Diffusion-VAS denoiser: SVD's spatio-temporal UNet with a 12-channel input and per-frame context.

Diffusion-VAS finetunes Stable Video Diffusion's `UNetSpatioTemporalConditionModel` with two changes:

* a second input convolution ``conv_in2`` that takes 12 channels (noisy latents + two condition latents).
  The original 8-channel ``conv_in`` stays in the checkpoints but is never used.
* one cross-attention context token per (batch, frame) row, instead of one per batch item repeated over
  the frames. The caller therefore passes ``encoder_hidden_states`` of shape ``[B * T, 1, D]``.

Everything else (time embedding, blocks, output head) is diffusers' own code.
"""

from __future__ import annotations

import torch
from torch import nn
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionModel

CONDITIONED_IN_CHANNELS = 12
# torch.compile of the UNet is opt-in: compiled kernels change results within float rounding, and the first call
# compiles (108 s for the tiny test UNet on a 2-core CPU); the node and the command line take their default here.
DEFAULT_COMPILE = False


class DiffusionVASUNet(UNetSpatioTemporalConditionModel):
    """`UNetSpatioTemporalConditionModel` with ``conv_in2`` and per-frame cross-attention context."""

    @classmethod
    def from_vas_config(cls, config: dict) -> "DiffusionVASUNet":
        """Builds the model (random weights) from a checkpoint's ``unet/config.json`` contents."""
        model = cls.from_config(config)
        model.conv_in2 = nn.Conv2d(
            CONDITIONED_IN_CHANNELS, model.config.block_out_channels[0], kernel_size=3, padding=1
        )
        return model

    @property
    def is_compiled(self) -> bool:
        return getattr(self, "_compiled_call_impl", None) is not None

    def set_compiled(self, enabled: bool, mode: str | None = None, backend: str = "inductor") -> None:
        """Runs the forward through ``torch.compile`` (``enabled``) or eagerly again.

        Compiles in place (`torch.nn.Module.compile`): the module, its parameters and its state dict stay as they
        are, so the pipeline, ComfyUI's model management and device moves see the same object. The first call of
        each input shape compiles; later calls reuse the kernels. ``mode`` and ``backend`` are `torch.compile`'s
        (the tests trace with ``aot_eager``, which generates no code). Calling it again while compiled keeps the
        first settings.
        """
        if enabled and not self.is_compiled:
            self.compile(mode=mode, backend=backend)
        elif not enabled and self.is_compiled:
            self._compiled_call_impl = None

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        return_dict: bool = False,
    ) -> tuple[torch.Tensor]:
        """Predicts the model output for noisy video latents.

        Args:
            sample: ``[B, T, 12, h, w]`` noisy latents concatenated with the two condition latents.
            timestep: scalar (continuous) timestep shared by the batch, or ``[B]`` one per batch item.
            encoder_hidden_states: ``[B * T, 1, D]`` one context token per batch-frame row, in the row order
                of ``sample.flatten(0, 1)``.
            added_time_ids: ``[B, 3]`` micro-conditioning (fps - 1, motion bucket, noise augmentation).

        Returns:
            A one-tuple with the ``[B, T, 4, h, w]`` prediction.
        """
        batch_size, num_frames = sample.shape[:2]
        if encoder_hidden_states.shape[0] != batch_size * num_frames:
            raise ValueError(
                f"encoder_hidden_states has {encoder_hidden_states.shape[0]} rows; Diffusion-VAS needs one per "
                f"batch-frame row ({batch_size} x {num_frames})."
            )
        upsample_factor = 2**self.num_upsamplers
        forward_upsample_size = any(s % upsample_factor != 0 for s in sample.shape[-2:])

        emb = self._embed_time(sample, timestep, added_time_ids).repeat_interleave(num_frames, dim=0)
        hidden = self.conv_in2(sample.flatten(0, 1))
        image_only_indicator = torch.zeros(batch_size, num_frames, dtype=hidden.dtype, device=hidden.device)
        block_kwargs = dict(temb=emb, image_only_indicator=image_only_indicator)

        skips = (hidden,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                hidden, res = block(hidden_states=hidden, encoder_hidden_states=encoder_hidden_states, **block_kwargs)
            else:
                hidden, res = block(hidden_states=hidden, **block_kwargs)
            skips += res

        hidden = self.mid_block(hidden_states=hidden, encoder_hidden_states=encoder_hidden_states, **block_kwargs)

        for i, block in enumerate(self.up_blocks):
            res = skips[-len(block.resnets):]
            skips = skips[: -len(block.resnets)]
            is_last = i == len(self.up_blocks) - 1
            upsample_size = skips[-1].shape[2:] if forward_upsample_size and not is_last else None
            if getattr(block, "has_cross_attention", False):
                hidden = block(
                    hidden_states=hidden, res_hidden_states_tuple=res, encoder_hidden_states=encoder_hidden_states,
                    upsample_size=upsample_size, **block_kwargs,
                )
            else:
                hidden = block(hidden_states=hidden, res_hidden_states_tuple=res, upsample_size=upsample_size,
                               **block_kwargs)

        hidden = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        return (hidden.reshape(batch_size, num_frames, *hidden.shape[1:]),)

    def _embed_time(self, sample: torch.Tensor, timestep, added_time_ids: torch.Tensor) -> torch.Tensor:
        """Timestep plus micro-conditioning embedding, ``[B, C_emb]``."""
        batch_size = sample.shape[0]
        if not torch.is_tensor(timestep):
            dtype = torch.float32 if sample.device.type == "mps" else torch.float64
            timestep = torch.tensor(float(timestep), dtype=dtype)
        timesteps = timestep.to(sample.device).reshape(-1)
        # One timestep per batch item (training draws a noise level per sample), or one shared by the batch.
        timesteps = timesteps if timesteps.numel() == batch_size else timesteps[:1].expand(batch_size)
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=sample.dtype))
        time_embeds = self.add_time_proj(added_time_ids.flatten()).reshape(batch_size, -1).to(emb.dtype)
        return emb + self.add_embedding(time_embeds)
