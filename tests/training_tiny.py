"""Tiny random-weight SVD-XT and Diffusion-VAS folders built inside the tests (no ../shared needed).

`write_tiny_svd` writes the SVD-XT layout (a UNet without ``conv_in2``); `write_tiny_vas` the published
Diffusion-VAS layout (with ``conv_in2``). Sizes follow the parity fixtures' tiny configs (GroupNorm needs 32
channels), so a UNet step on 4 frames of 32x64 takes well under a second on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

UNET_CONFIG = {
    "_class_name": "UNetSpatioTemporalConditionModel", "addition_time_embed_dim": 8,
    "block_out_channels": [32, 64], "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"], "in_channels": 8,
    "layers_per_block": 1, "num_attention_heads": [2, 4], "num_frames": 25, "out_channels": 4,
    "projection_class_embeddings_input_dim": 24, "sample_size": None, "transformer_layers_per_block": 1,
    "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"],
}
VAE_CONFIG = {
    "_class_name": "AutoencoderKLTemporalDecoder", "block_out_channels": [32, 32, 32, 32],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "force_upcast": True, "in_channels": 3, "latent_channels": 4,
    "layers_per_block": 1, "out_channels": 3, "sample_size": 64, "scaling_factor": 0.18215,
}
CLIP_CONFIG = {
    "architectures": ["CLIPVisionModelWithProjection"], "hidden_act": "quick_gelu", "hidden_size": 32,
    "image_size": 224, "intermediate_size": 64, "model_type": "clip_vision_model", "num_attention_heads": 2,
    "num_channels": 3, "num_hidden_layers": 2, "patch_size": 32, "projection_dim": 32,
}
SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "final_sigmas_type": "zero", "interpolation_type": "linear", "num_train_timesteps": 1000,
    "prediction_type": "v_prediction", "rescale_betas_zero_snr": False, "sigma_max": 700.0, "sigma_min": 0.002,
    "steps_offset": 1, "timestep_spacing": "leading", "timestep_type": "continuous", "trained_betas": None,
    "use_karras_sigmas": True,
}
FEATURE_EXTRACTOR = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_normalize": True, "do_rescale": True,
    "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224},
}
SVD_INDEX = {
    "_class_name": "StableVideoDiffusionPipeline", "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "unet": ["diffusers", "UNetSpatioTemporalConditionModel"], "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
}


def _write(folder: Path, config: dict, state: dict, stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / f"{stem}.safetensors"))


def write_tiny_svd(root: Path, seed: int = 0, conv_in2: bool = False) -> Path:
    """A tiny SVD-XT-layout folder (``conv_in2=True``: a Diffusion-VAS one, published layout)."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = Path(root)
    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel.from_config(UNET_CONFIG)
    state = unet.state_dict()
    if conv_in2:
        conv = torch.nn.Conv2d(12, UNET_CONFIG["block_out_channels"][0], 3, padding=1)
        state.update({"conv_in2.weight": conv.weight.detach(), "conv_in2.bias": conv.bias.detach()})
    _write(root / "unet", UNET_CONFIG, state, "diffusion_pytorch_model")
    vae = AutoencoderKLTemporalDecoder.from_config(VAE_CONFIG)
    _write(root / "vae", VAE_CONFIG, vae.state_dict(), "diffusion_pytorch_model")
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**{k: v for k, v in CLIP_CONFIG.items()
                                                             if k not in ("architectures", "model_type")}))
    _write(root / "image_encoder", CLIP_CONFIG, clip.state_dict(), "model")
    (root / "scheduler").mkdir(parents=True, exist_ok=True)
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG))
    (root / "feature_extractor").mkdir(parents=True, exist_ok=True)
    (root / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps(FEATURE_EXTRACTOR))
    index = dict(SVD_INDEX)
    if conv_in2:
        index["_class_name"] = "DiffusionVASPipeline"
        index["unet"] = ["models.diffusion_vas.unet_diffusion_vas", "UNetSpatioTemporalConditionModel"]
    (root / "model_index.json").write_text(json.dumps(index, indent=2))
    return root


def write_tiny_vas(root: Path, seed: int = 0) -> Path:
    return write_tiny_svd(root, seed, conv_in2=True)
