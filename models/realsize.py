"""The published checkpoints' architecture, and checkpoints of it with random weights.

The two published Diffusion-VAS checkpoints (``kaihuac/diffusion-vas-amodal-segmentation`` and
``kaihuac/diffusion-vas-content-completion``) are Stable Video Diffusion XT finetunes: SVD-XT's UNet configuration
(``unet/config.json`` says ``in_channels: 8``) plus the 12-channel ``conv_in2``, SVD-XT's temporal-decoder VAE,
its OpenCLIP ViT-H/14 image encoder with the 1024-d projection, its feature extractor and its Euler scheduler.
Only the UNet was finetuned, so both stages share the VAE and the image encoder. Pseudo-depth is Depth Anything V2
Large (``depth-anything/Depth-Anything-V2-Large-hf``, transformers layout).

`REAL` holds those configurations (the one source of truth for the real model's sizes: the speed and device
benchmarks build from it); `SMALL` has the same layout and every component kind at test sizes. `write_stage_pair`
and `write_depth_model` write folders in the published layouts, filled with random weights from a seed, so loading,
memory and speed at the real size can be measured where the published weights cannot be downloaded:

    python tools/build_realsize_checkpoints.py --out /work/realsize

Random weights come from each module's own initialisation (PyTorch's default for diffusers modules,
transformers' ``_init_weights``), so activations keep the scale trained weights have and float16 stays finite.
The same seed gives the same files on the same kind of device (the CPU and CUDA generators draw different numbers).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from .depth.checkpoint import ENCODERS, transformers_config

logger = logging.getLogger(__name__)

# Weight files per precision variant, as the published folders name them.
VARIANTS = {"fp32": "", "fp16": ".fp16"}
STAGE_FOLDERS = ("diffusion-vas-amodal-segmentation", "diffusion-vas-content-completion")
DEPTH_FOLDER = "Depth-Anything-V2-Large-hf"

# stabilityai/stable-video-diffusion-img2vid-xt unet/config.json (the published Diffusion-VAS UNets keep it)
SVD_XT_UNET = {
    "_class_name": "UNetSpatioTemporalConditionModel", "addition_time_embed_dim": 256,
    "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    "in_channels": 8, "layers_per_block": 2, "num_attention_heads": [5, 10, 20, 20], "num_frames": 25,
    "out_channels": 4, "projection_class_embeddings_input_dim": 768, "sample_size": 96,
    "transformer_layers_per_block": 1,
    "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
}
# ... vae/config.json
SVD_XT_VAE = {
    "_class_name": "AutoencoderKLTemporalDecoder", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "force_upcast": True, "in_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "out_channels": 3, "sample_size": 768, "scaling_factor": 0.18215,
}
# ... image_encoder/config.json (OpenCLIP ViT-H/14 vision tower)
SVD_XT_CLIP = {
    "architectures": ["CLIPVisionModelWithProjection"], "attention_dropout": 0.0, "dropout": 0.0,
    "hidden_act": "gelu", "hidden_size": 1280, "image_size": 224, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 5120, "layer_norm_eps": 1e-05, "model_type": "clip_vision_model",
    "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 32, "patch_size": 14, "projection_dim": 1024,
}
# ... scheduler/scheduler_config.json
SVD_XT_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "final_sigmas_type": "zero", "interpolation_type": "linear", "num_train_timesteps": 1000,
    "prediction_type": "v_prediction", "rescale_betas_zero_snr": False, "sigma_max": 700.0, "sigma_min": 0.002,
    "steps_offset": 1, "timestep_spacing": "leading", "timestep_type": "continuous", "trained_betas": None,
    "use_karras_sigmas": True,
}
# ... feature_extractor/preprocessor_config.json
SVD_XT_FEATURE_EXTRACTOR = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
    "do_rescale": True, "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224},
}
# model_index.json of the published checkpoints: the UNet is named by the authors' module path (never imported).
MODEL_INDEX = {
    "_class_name": "DiffusionVASPipeline", "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "unet": ["models.diffusion_vas.unet_diffusion_vas", "UNetSpatioTemporalConditionModel"],
    "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
}
# Depth-Anything-V2-Large-hf preprocessor_config.json (the engine resizes itself; written for the layout)
DEPTH_PREPROCESSOR = {
    "do_normalize": True, "do_pad": False, "do_rescale": True, "do_resize": True, "ensure_multiple_of": 14,
    "image_mean": [0.485, 0.456, 0.406], "image_processor_type": "DPTImageProcessor",
    "image_std": [0.229, 0.224, 0.225], "keep_aspect_ratio": True, "resample": 3,
    "rescale_factor": 0.00392156862745098, "size": {"height": 518, "width": 518},
}


@dataclass(frozen=True)
class Architecture:
    """Configurations of every component: ``unet``/``vae``/``clip`` as their config.json files, ``depth`` in the
    authors' size description (`models.depth.checkpoint.ENCODERS` entry plus ``encoder``)."""

    unet: dict
    vae: dict
    clip: dict
    depth: dict
    scheduler: dict = field(default_factory=lambda: dict(SVD_XT_SCHEDULER))
    feature_extractor: dict = field(default_factory=lambda: dict(SVD_XT_FEATURE_EXTRACTOR))


REAL = Architecture(unet=SVD_XT_UNET, vae=SVD_XT_VAE, clip=SVD_XT_CLIP, depth={"encoder": "vitl", **ENCODERS["vitl"]})
SMALL = Architecture(  # every component kind of REAL at test sizes (GroupNorm needs multiples of 32 channels)
    unet={**SVD_XT_UNET, "addition_time_embed_dim": 8, "block_out_channels": [32, 64], "cross_attention_dim": 32,
          "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
          "layers_per_block": 1, "num_attention_heads": [2, 4], "projection_class_embeddings_input_dim": 24,
          "sample_size": None, "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"]},
    vae={**SVD_XT_VAE, "block_out_channels": [32, 32, 32, 32], "layers_per_block": 1, "sample_size": 64},
    clip={**SVD_XT_CLIP, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
          "num_hidden_layers": 2, "patch_size": 32, "projection_dim": 32},
    depth={"encoder": "vitl", "features": 16, "out_channels": [8, 16, 32, 32], "intermediate_layer_idx": [0, 1, 2, 3],
           "vit": {"embed_dim": 32, "depth": 4, "num_heads": 2, "mlp_ratio": 2}},
)
ARCHITECTURES = {"real": REAL, "small": SMALL}


def build_unet(config: dict, seed: int, device="cpu"):
    """The Diffusion-VAS UNet (SVD UNet + ``conv_in2``) with its modules' own random initialisation."""
    from .engine.unet import DiffusionVASUNet

    torch.manual_seed(seed)
    with torch.device(device):
        model = DiffusionVASUNet.from_vas_config(config)
    return model.to(device)  # diffusers makes the time mixers' factors with torch.Tensor(), which ignores the device


def build_vae(config: dict, seed: int, device="cpu"):
    from diffusers import AutoencoderKLTemporalDecoder

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoencoderKLTemporalDecoder.from_config(config)
    return model.to(device)


def build_image_encoder(config: dict, seed: int, device="cpu"):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    with torch.device(device):
        return CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(config))


def build_depth_model(sizes: dict, seed: int, device="cpu"):
    from transformers import DepthAnythingForDepthEstimation

    torch.manual_seed(seed)
    with torch.device(device):
        return DepthAnythingForDepthEstimation(transformers_config(sizes))


def save_weights(state: dict[str, torch.Tensor], folder: Path, stem: str, variants=tuple(VARIANTS)) -> list[Path]:
    """Writes ``state`` as ``<stem>.safetensors`` (float32) and/or ``<stem>.fp16.safetensors`` (float16), on the
    CPU one variant at a time (the float16 copy is made tensor by tensor, never a second whole state dict)."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"variants {unknown} unknown; choose from {list(VARIANTS)}.")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for variant in variants:
        dtype = torch.float32 if variant == "fp32" else torch.float16
        tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
                   for k, v in state.items()}
        file = folder / f"{stem}{VARIANTS[variant]}.safetensors"
        save_file(tensors, str(file))
        del tensors
        written.append(file)
    return written


def _write_json(file: Path, content: dict) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def write_stage_pair(out, seed: int = 0, architecture: Architecture = REAL, variants=tuple(VARIANTS),
                     device="cpu", stages=STAGE_FOLDERS) -> list[Path]:
    """Writes the stage checkpoints (published layout) into ``out/<stage folder>``; returns the folders.

    Stage ``i``'s UNet is drawn from ``seed + 1 + i``; the VAE and image encoder (one pair for every stage, as in
    the published checkpoints) from ``seed``. Their files are written once and hard-linked into the other stage
    folders (copied where the file system has no hard links), so two stages cost one VAE and encoder on disk.
    One model is in memory at a time; the largest, the real UNet, holds 6.1 GB (float32) plus one variant's copy
    while it is written.
    """
    out = Path(out)
    folders = [out / name for name in stages]
    for folder in folders:
        for name in ("unet", "vae", "image_encoder"):
            for stale in (folder / name).glob("*.safetensors"):
                stale.unlink()  # a variant left from an earlier build must not be loaded by mistake
        _write_json(folder / "model_index.json", MODEL_INDEX)
        _write_json(folder / "scheduler" / "scheduler_config.json", architecture.scheduler)
        _write_json(folder / "feature_extractor" / "preprocessor_config.json", architecture.feature_extractor)
    for i, folder in enumerate(folders):
        unet = build_unet(architecture.unet, seed + 1 + i, device)
        _write_json(folder / "unet" / "config.json", architecture.unet)
        save_weights(unet.state_dict(), folder / "unet", "diffusion_pytorch_model", variants)
        del unet
        logger.info("%s: UNet written", folder.name)
    shared = [("vae", "diffusion_pytorch_model", architecture.vae, build_vae),
              ("image_encoder", "model", architecture.clip, build_image_encoder)]
    for name, stem, config, build in shared:
        model = build(config, seed, device)
        _write_json(folders[0] / name / "config.json", config)
        files = save_weights(model.state_dict(), folders[0] / name, stem, variants)
        del model
        for folder in folders[1:]:
            _write_json(folder / name / "config.json", config)
            for file in files:
                _link_or_copy(file, folder / name / file.name)
        logger.info("%s written", name)
    return folders


def write_depth_model(folder, seed: int = 0, sizes: dict | None = None, device="cpu") -> Path:
    """Writes a Depth Anything V2 in the transformers layout (``config.json``, ``model.safetensors`` in float32,
    ``preprocessor_config.json``), Large-sized unless ``sizes`` says otherwise."""
    folder = Path(folder)
    model = build_depth_model(sizes or REAL.depth, seed, device)
    model.to("cpu").save_pretrained(str(folder), safe_serialization=True)
    _write_json(folder / "preprocessor_config.json", DEPTH_PREPROCESSOR)
    return folder


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError as err:
        logger.info("cannot hard-link %s (%s); copying it", source, err)
        shutil.copyfile(source, target)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

