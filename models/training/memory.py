"""Memory estimates for fine-tuning on one GPU (estimates, not measurements).

`estimate_memory` counts parameters exactly (models built on PyTorch's meta device from SVD-XT's configs, no
weights needed) and sizes the activations the backward pass keeps by running the UNet forward on the meta device
with a hook that adds up every tensor autograd saves (shapes only; nothing is computed). What it does not see:
the allocator's fragmentation and workspace, the CUDA context (~0.5 GB), temporaries inside one operation, and
autocast details (saved tensors are sized as fp16/bf16 under mixed precision; some are float32 in practice).
Attention is counted as a fused kernel (PyTorch SDPA's flash / memory-efficient path on GPUs), which keeps no
attention matrix.
So read the figures as lower bounds to within roughly 20 %, until measured on a GPU.

Run ``diffusion-vas memory`` for the README table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engine.unet import DiffusionVASUNet
from .model import LORA_TARGETS, enable_block_checkpointing

GIB = 1024**3

# stabilityai/stable-video-diffusion-img2vid-xt, unet/config.json (the published Diffusion-VAS UNets share it)
SVD_XT_UNET = {
    "addition_time_embed_dim": 256, "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    "in_channels": 8, "layers_per_block": 2, "num_attention_heads": [5, 10, 20, 20], "num_frames": 25,
    "out_channels": 4, "projection_class_embeddings_input_dim": 768, "sample_size": 96,
    "transformer_layers_per_block": 1,
    "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
}
SVD_XT_VAE = {"block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
              "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "out_channels": 3}
SVD_XT_CLIP = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32,
                   patch_size=14, image_size=224, projection_dim=1024, hidden_act="gelu")


@dataclass
class MemoryEstimate:
    """Bytes of GPU memory by kind (see the module docstring for what is left out)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    vae_peak: int
    trained_parameters: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.vae_peak


def _unet(trainable: str, lora_rank: int, checkpointing: bool) -> DiffusionVASUNet:
    with torch.device("meta"):
        unet = DiffusionVASUNet.from_vas_config(SVD_XT_UNET)
    unet.to("meta")  # diffusers makes the time mixers' factors with torch.Tensor(), which ignores the device
    unet.requires_grad_(False)
    if lora_rank:
        from peft import LoraConfig, inject_adapter_in_model

        inject_adapter_in_model(LoraConfig(r=lora_rank, lora_alpha=lora_rank, target_modules=LORA_TARGETS), unet)
        unet.to("meta")
        for name, p in unet.named_parameters():
            p.requires_grad_("lora_" in name or name.startswith("conv_in2."))
    else:
        for name, p in unet.named_parameters():
            p.requires_grad_(any(k in name for k in trainable.split(",")))
    if checkpointing:
        enable_block_checkpointing(unet)
    return unet


def _saved_activation_bytes(unet, size, frames, batch, dtype, checkpointing) -> int:
    """Bytes autograd keeps for backward in one forward (meta device), by block; see the module docstring."""
    h, w = size[0] // 8, size[1] // 8
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    per_block, outside, outputs = [0] * len(blocks), [0], []
    current = [None]
    seen: set[int] = set()

    def add(nbytes):
        if current[0] is None:
            outside[0] += nbytes
        else:
            per_block[current[0]] += nbytes

    def pack(t):
        key = id(t)
        if key not in seen and (t.requires_grad or t.grad_fn is not None):
            seen.add(key)
            add(t.numel() * t.element_size())
        return t

    def flash_attention(q, k, v, *args, **kwargs):
        """Stands in for SDPA: a fused kernel (flash / memory-efficient, as on GPUs) keeps q, k, v, the output
        and the log-sum-exp, never the attention matrix that the CPU's math path would save."""
        out = q * 1.0  # same shape, linked into the graph, saves nothing
        if q.requires_grad or k.requires_grad or v.requires_grad:
            add(sum(x.numel() * x.element_size() for x in (q, k, v, out)) + q.shape[0] * q.shape[1] * q.shape[2] * 4)
        return out

    hooks = []
    for k, block in enumerate(blocks):
        hooks.append(block.register_forward_pre_hook(lambda m, a, k=k: current.__setitem__(0, k)))

        def post(m, a, out, k=k):
            current[0] = None
            tensors = [out] if torch.is_tensor(out) else [x for x in _flatten(out) if torch.is_tensor(x)]
            outputs.append(sum(t.numel() * t.element_size() for t in tensors))
        hooks.append(block.register_forward_hook(post))
    # torch's own cast: diffusers' ModelMixin.to warns of modules kept in float32 on every dtype cast, also
    # when the model has none (this UNet has none)
    torch.nn.Module.to(unet, dtype)
    sample = torch.zeros(batch, frames, 12, h, w, device="meta", dtype=dtype)
    context = torch.zeros(batch * frames, frames, SVD_XT_UNET["cross_attention_dim"], device="meta", dtype=dtype)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    torch.nn.functional.scaled_dot_product_attention = flash_attention
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            if checkpointing:  # block internals are recomputed: count them without checkpointing, keep the largest
                _unwrap(unet)
            unet(sample, torch.zeros(batch, device="meta"), encoder_hidden_states=context,
                 added_time_ids=torch.zeros(batch, 3, device="meta", dtype=dtype))
    finally:
        torch.nn.functional.scaled_dot_product_attention = sdpa
    for hook in hooks:
        hook.remove()
    if checkpointing:
        return outside[0] + sum(outputs) + max(per_block)
    return outside[0] + sum(per_block)


def _flatten(x):
    if isinstance(x, (tuple, list)):
        for item in x:
            yield from _flatten(item)
    else:
        yield x


def _unwrap(unet) -> None:
    for block in [*unet.down_blocks, unet.mid_block, *unet.up_blocks]:
        if "forward" in vars(block):
            del block.forward


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def estimate_memory(size=(128, 256), frames: int = 25, batch: int = 1, mixed_precision: bool = True,
                    checkpointing: bool = False, adam_8bit: bool = False, lora_rank: int = 0,
                    trainable: str = "temporal_transformer_block,conv_in2") -> MemoryEstimate:
    """GPU memory of one training step of the real-size model (SVD-XT UNet, VAE, CLIP ViT-H), in bytes."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    half = 2 if mixed_precision else 4
    act_dtype = torch.float16 if mixed_precision else torch.float32
    unet = _unet(trainable, lora_rank, checkpointing)
    trained = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    with torch.device("meta"):
        vae = AutoencoderKLTemporalDecoder(**SVD_XT_VAE)
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_XT_CLIP))
    weights = _count(unet) * 4 + (_count(vae) + _count(clip)) * half  # fp32 master UNet; frozen models in half
    optimizer = trained * (2 if adam_8bit else 8)
    activations = _saved_activation_bytes(unet, size, frames, batch, act_dtype, checkpointing)
    chunk = min(16, frames * batch)  # frames per VAE-encoder call (step.ENCODE_CHUNK)
    vae_peak = 3 * chunk * SVD_XT_VAE["block_out_channels"][0] * size[0] * size[1] * half
    return MemoryEstimate(weights=weights, gradients=trained * 4, optimizer=optimizer, activations=activations,
                          vae_peak=vae_peak, trained_parameters=trained)


SETTINGS = (
    ("authors' recipe (fp16 autocast, AdamW)", {}),
    ("+ gradient checkpointing", {"checkpointing": True}),
    ("+ checkpointing + 8-bit AdamW", {"checkpointing": True, "adam_8bit": True}),
    ("LoRA r=64 + checkpointing", {"checkpointing": True, "lora_rank": 64}),
)


def memory_table(sizes=((128, 256), (256, 512)), frames: int = 25) -> str:
    """The README's Markdown table (GiB, estimates)."""
    lines = ["| setting | trained params | " + " | ".join(f"{h}x{w}" for h, w in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    for label, kwargs in SETTINGS:
        cells = [estimate_memory(size, frames, **kwargs) for size in sizes]
        lines.append(f"| {label} | {cells[0].trained_parameters / 1e6:.1f} M | "
                     + " | ".join(f"~{c.total / GIB:.1f} GiB" for c in cells) + " |")
    return "\n".join(lines)
