"""The models a fine-tuning run starts from, what of them trains, and the exported checkpoint.

* `load_base` reads an SVD-XT folder or a Diffusion-VAS checkpoint (both in the diffusers layout). SVD-XT has no
  ``conv_in2``: it is created and initialised from ``conv_in`` (`init_conv_in2`, reference §1.2). A Diffusion-VAS
  checkpoint keeps its trained ``conv_in2``; the authors' script resets it even on a warm start, which
  throws away what the checkpoint learned, so this does not.
* `select_trainable`: a UNet parameter trains if its name contains one of the patterns (authors:
  ``temporal_transformer_block`` and ``conv_in2``); the VAE and CLIP encoder stay frozen.
* `add_lora`: optional LoRA adapters (peft) on the linear layers of the temporal transformer blocks.
* `enable_block_checkpointing`: activation checkpointing per UNet block.
* `export_checkpoint`: the published folder layout that `load_pipeline` reads, LoRA merged into the weights.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils.checkpoint import checkpoint

from ..engine.loading import (COMPONENTS, load_image_encoder, load_vae, read_clip_normalization, read_json,
                              read_state_dict, weights_file)
from ..engine.unet import CONDITIONED_IN_CHANNELS, DiffusionVASUNet
from ..base.errors import PackError

logger = logging.getLogger(__name__)

# model_index.json of an exported checkpoint: the published checkpoints name the UNet by the authors' module.
MODEL_INDEX = {
    "_class_name": "DiffusionVASPipeline",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "unet": ["models.diffusion_vas.unet_diffusion_vas", "UNetSpatioTemporalConditionModel"],
    "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
}
FROZEN_COMPONENTS = ("vae", "image_encoder", "feature_extractor", "scheduler")
LORA_TARGETS = r".*temporal_transformer_blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)$|" \
               r".*temporal_transformer_blocks\.\d+\.(ff|ff_in)\.net\.(0\.proj|2)$"


@dataclass
class BaseModels:
    """What training starts from. ``kind`` is ``svd`` (conv_in2 created) or ``diffusion-vas`` (conv_in2 kept)."""

    unet: DiffusionVASUNet
    vae: torch.nn.Module
    image_encoder: torch.nn.Module
    clip_mean: list[float]
    clip_std: list[float]
    scheduler_config: dict
    unet_config: dict
    root: Path
    kind: str


def load_base(path) -> BaseModels:
    """Loads an SVD-XT or Diffusion-VAS folder on the CPU in float32 (master weights for training).

    Raises:
        FileNotFoundError / RuntimeError: a missing or unreadable file (named), or a UNet that is neither.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--base {root} is not a folder; give an SVD-XT folder "
                                f"(stabilityai/stable-video-diffusion-img2vid-xt) or a Diffusion-VAS checkpoint.")
    index = read_json(root / "model_index.json")
    absent = [name for name in COMPONENTS if name not in index or not (root / name).is_dir()]
    if absent:
        raise PackError(f"--base {root} lacks {', '.join(absent)} (model_index.json entry or folder); it must "
                           f"be an SVD-XT or Diffusion-VAS folder in the diffusers layout.")
    unet, kind = load_unet_for_training(root / "unet")
    vae = load_vae(root / "vae", torch.float32)
    image_encoder = load_image_encoder(root / "image_encoder", torch.float32)
    clip_mean, clip_std = read_clip_normalization(root / "feature_extractor")
    scheduler_config = read_json(root / "scheduler" / "scheduler_config.json")
    logger.info("base %s: %s UNet (%s)", root, kind,
                "conv_in2 kept from the checkpoint" if kind == "diffusion-vas" else "conv_in2 initialised from conv_in")
    return BaseModels(unet=unet, vae=vae, image_encoder=image_encoder, clip_mean=clip_mean, clip_std=clip_std,
                      scheduler_config=scheduler_config, unet_config=read_json(root / "unet" / "config.json"),
                      root=root, kind=kind)


def load_unet_for_training(folder: Path) -> tuple[DiffusionVASUNet, str]:
    """The UNet in float32 with ``conv_in2``: kept when the weights have it, else `init_conv_in2`."""
    config = read_json(folder / "config.json")
    file = weights_file(folder, "diffusion_pytorch_model", torch.float32)
    state = {k: v.float() if v.is_floating_point() else v for k, v in read_state_dict(file).items()}
    with torch.device("meta"):
        unet = DiffusionVASUNet.from_vas_config(config)
    kind = "diffusion-vas" if "conv_in2.weight" in state else "svd"
    try:
        missing, unexpected = unet.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as err:
        raise PackError(f"UNet weights {file} do not match {folder / 'config.json'}: {err}") from err
    allowed = {"conv_in2.weight", "conv_in2.bias"} if kind == "svd" else set()
    if set(missing) - allowed or unexpected:
        raise PackError(f"UNet weights {file} do not match a Diffusion-VAS/SVD UNet: missing "
                           f"{sorted(set(missing) - allowed)[:5]}, unexpected {sorted(unexpected)[:5]}.")
    if kind == "svd":
        out_channels = unet.config.block_out_channels[0]
        unet.conv_in2 = torch.nn.Conv2d(CONDITIONED_IN_CHANNELS, out_channels, kernel_size=3, padding=1)
        init_conv_in2(unet)
    return unet, kind


@torch.no_grad()
def init_conv_in2(unet: DiffusionVASUNet) -> None:
    """``conv_in2.weight[:, :8] = conv_in.weight``, ``conv_in2.weight[:, 8:] = 0``, ``conv_in2.bias = conv_in.bias``.

    The noisy-latent and condition-1 channels inherit SVD's input convolution (trained on [noisy latent | image
    latent]); the condition-2 channels start at exactly zero (reference §1.2).
    """
    c_in = unet.conv_in.weight.shape[1]
    unet.conv_in2.weight.zero_()
    unet.conv_in2.weight[:, :c_in].copy_(unet.conv_in.weight)
    unet.conv_in2.bias.copy_(unet.conv_in.bias)


def select_trainable(unet: torch.nn.Module, patterns) -> list[str]:
    """Sets ``requires_grad`` on the UNet parameters whose name contains a pattern; returns their names."""
    names = []
    for name, param in unet.named_parameters():
        train = any(p in name for p in patterns)
        param.requires_grad_(train)
        if train:
            names.append(name)
    if not names:
        raise ValueError(f"No UNet parameter name contains any of {list(patterns)}; nothing would train.")
    return names


def add_lora(unet: torch.nn.Module, rank: int, alpha: float) -> list[str]:
    """Injects LoRA adapters (peft) into the temporal blocks' linear layers; trains them and ``conv_in2`` only.

    Returns the trainable parameter names. Raises RuntimeError when peft is not installed.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as err:
        raise PackError("LoRA needs peft: pip install 'diffusion-vas[train]' (or pip install peft).") from err
    unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=LORA_TARGETS, init_lora_weights=True)
    inject_adapter_in_model(config, unet)
    names = []
    for name, param in unet.named_parameters():
        train = "lora_" in name or name.startswith("conv_in2.")
        param.requires_grad_(train)
        if train:
            names.append(name)
    return names


def merged_state_dict(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The UNet's weights with any LoRA adapters merged in, under the plain (published) names, on the CPU."""
    lora_layers = [m for m in unet.modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")]
    if not lora_layers:
        return {k: v.detach().cpu().contiguous() for k, v in unet.state_dict().items()}
    state = {}
    for name, tensor in unet.state_dict().items():
        if "lora_" in name:
            continue
        state[name.replace(".base_layer.", ".")] = tensor.detach().cpu().clone()
    for module_name, module in unet.named_modules():
        if module in lora_layers:
            delta = module.get_delta_weight("default").detach().cpu()
            state[f"{module_name}.weight"] = state[f"{module_name}.weight"] + delta.to(state[f"{module_name}.weight"].dtype)
    return {k: v.contiguous() for k, v in state.items()}


def enable_block_checkpointing(unet: torch.nn.Module) -> None:
    """Activation checkpointing around every down, mid and up block of the UNet.

    diffusers' own switch checkpoints only the ResNets and spatial transformer blocks of SVD, not the temporal
    blocks this recipe trains, so it saves little here; per-block checkpointing keeps only each block's inputs
    and recomputes the block in the backward pass.
    """
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    for block in blocks:
        forward = block.forward

        def checkpointed(*args, _forward=forward, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        block.forward = checkpointed


def export_checkpoint(unet: torch.nn.Module, unet_config: dict, base_root: Path, out: Path,
                      training_args: dict | None = None) -> Path:
    """Writes a checkpoint folder in the published layout; returns it.

    The UNet goes to ``unet/`` (float32 ``diffusion_pytorch_model.safetensors``, LoRA merged, ``conv_in2``
    included, ``config.json`` as the base's); the frozen components are copied from the base folder; the
    scheduler config is the base's (SVD-XT's Euler v-prediction config, the one the published checkpoints use).
    """
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "unet").mkdir(parents=True)
    config = {k: v for k, v in unet_config.items() if not k.startswith("_") or k in ("_class_name", "_diffusers_version")}
    config["_class_name"] = "UNetSpatioTemporalConditionModel"
    (tmp / "unet" / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    state = {k: v.float() if v.is_floating_point() else v for k, v in merged_state_dict(unet).items()}
    save_file(state, str(tmp / "unet" / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    for name in FROZEN_COMPONENTS:
        shutil.copytree(base_root / name, tmp / name)
        for path in (tmp / name).rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (tmp / name).chmod(0o755)
    (tmp / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n", encoding="utf-8")
    if training_args is not None:
        (tmp / "training_args.json").write_text(json.dumps(training_args, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)  # os.replace, not rename: Windows refuses to rename onto an existing path
    return out
