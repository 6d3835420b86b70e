"""Depth Anything V2 single-file checkpoints in the authors' layout, loaded into transformers' model.

The authors publish ``depth_anything_v2_vit{s,b,l}.pth`` (their ``DepthAnythingV2`` class: a DINOv2 ViT under
``pretrained.*`` and a DPT head under ``depth_head.*``); other depth node packs keep the same weights as
``depth_anything_v2_vit{s,b,l}_fp16.safetensors``. This module reads either file, builds the matching
``DepthAnythingForDepthEstimation`` and maps every tensor key by key onto it.

Sizes come from a ``config.json`` beside the file when it holds an ``encoder`` entry (small test models), otherwise
from the encoder named in the file name (``vits``, ``vitb``, ``vitl``, ``vitg``) or, failing that, from the width
of the weights. Metric-depth checkpoints are refused: stage 1 was trained on relative inverse depth.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..base.errors import PackError

OFFICIAL_SUFFIXES = (".pth", ".pt", ".safetensors")

# The authors' model configurations (encoder -> ViT and DPT-head sizes).
ENCODERS: dict[str, dict] = {
    "vits": {"features": 64, "out_channels": [48, 96, 192, 384], "intermediate_layer_idx": [2, 5, 8, 11],
             "vit": {"embed_dim": 384, "depth": 12, "num_heads": 6, "mlp_ratio": 4}},
    "vitb": {"features": 128, "out_channels": [96, 192, 384, 768], "intermediate_layer_idx": [2, 5, 8, 11],
             "vit": {"embed_dim": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4}},
    "vitl": {"features": 256, "out_channels": [256, 512, 1024, 1024], "intermediate_layer_idx": [4, 11, 17, 23],
             "vit": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4}},
    "vitg": {"features": 384, "out_channels": [1536, 1536, 1536, 1536], "intermediate_layer_idx": [9, 19, 29, 39],
             "vit": {"embed_dim": 1536, "depth": 40, "num_heads": 24, "mlp_ratio": 4}},
}
HEAD_HIDDEN_SIZE = 32  # fixed in the authors' DPT head (``head_features_2``)
_ENCODER_IN_NAME = re.compile(r"vit[sblg]")


def load_official_checkpoint(file, dtype: torch.dtype = torch.float32):
    """Loads an authors'-layout Depth Anything V2 file into ``DepthAnythingForDepthEstimation``.

    Args:
        file: ``.pth``/``.pt`` (read with ``torch.load(weights_only=True)``) or ``.safetensors``.
        dtype: dtype of the returned model's weights.

    Returns:
        The model in eval mode on the CPU, gradients off.

    Raises:
        FileNotFoundError: the file does not exist.
        RuntimeError: the file is unreadable, not in the authors' layout, or does not fit the sizes.
        ValueError: the file is a metric-depth model.
    """
    from transformers import DepthAnythingForDepthEstimation

    file = Path(file).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"Depth Anything V2 checkpoint not found: {file}")
    if "metric" in file.name.lower():
        raise ValueError(
            f"{file.name} is a metric-depth model; Diffusion-VAS was trained on relative depth. "
            "Use depth_anything_v2_vit{s,b,l}.pth or a Depth-Anything-V2-*-hf folder."
        )
    state = read_official_state_dict(file)
    sizes = official_sizes(file, state)
    with torch.device("meta"):
        model = DepthAnythingForDepthEstimation(transformers_config(sizes))
    mapped = convert_state_dict(state, model.state_dict(), file, sizes["encoder"])
    model.load_state_dict({k: v.to(dtype) for k, v in mapped.items()}, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def read_official_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """Reads the tensors of a ``.pth``/``.pt`` (weights only) or ``.safetensors`` file on the CPU."""
    if file.suffix not in OFFICIAL_SUFFIXES:
        raise PackError(f"Cannot read {file}: expected one of {', '.join(OFFICIAL_SUFFIXES)}.")
    try:
        if file.suffix == ".safetensors":
            state = load_file(str(file), device="cpu")
        else:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, OSError, RuntimeError, ValueError, EOFError) as err:
        raise PackError(f"Checkpoint file {file} is corrupt or unreadable ({err}); re-download it.") from err
    if not isinstance(state, dict) or not any(str(k).startswith("pretrained.") for k in state):
        raise PackError(
            f"Checkpoint file {file} is not a Depth Anything V2 checkpoint in the authors' layout "
            "(no 'pretrained.*' tensors). Transformers checkpoints go in a folder with their config.json."
        )
    return state


def official_sizes(file: Path, state: dict[str, torch.Tensor]) -> dict:
    """The authors' size description (``ENCODERS`` entry plus ``encoder``) for ``file``."""
    beside = file.with_name("config.json")
    if beside.is_file():
        try:
            config = json.loads(beside.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PackError(f"{beside} is not valid JSON ({err}).") from err
        if isinstance(config, dict) and "encoder" in config:
            return config
    named = _ENCODER_IN_NAME.findall(file.name.lower())
    if named:
        return {"encoder": named[-1], **ENCODERS[named[-1]]}
    width = state["pretrained.cls_token"].shape[-1] if "pretrained.cls_token" in state else None
    for encoder, sizes in ENCODERS.items():
        if sizes["vit"]["embed_dim"] == width:
            return {"encoder": encoder, **sizes}
    raise PackError(
        f"Cannot tell the encoder of {file}: name it depth_anything_v2_<vits|vitb|vitl|vitg>.pth as published."
    )


def transformers_config(sizes: dict):
    """``DepthAnythingConfig`` equivalent to the authors' model described by ``sizes``."""
    from transformers import DepthAnythingConfig, Dinov2Config

    vit = sizes["vit"]
    backbone = Dinov2Config(
        hidden_size=vit["embed_dim"],
        num_hidden_layers=vit["depth"],
        num_attention_heads=vit["num_heads"],
        mlp_ratio=vit["mlp_ratio"],
        patch_size=vit.get("patch_size", 14),
        image_size=vit.get("img_size", 518),
        layerscale_value=vit.get("layerscale_init", 1.0),
        use_swiglu_ffn=sizes["encoder"] == "vitg",
        layer_norm_eps=1e-6,
        # hidden_states[0] is the embedding output, so the authors' block i is stage i + 1.
        out_indices=[i + 1 for i in sizes["intermediate_layer_idx"]],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=vit.get("patch_size", 14),
        reassemble_hidden_size=vit["embed_dim"],
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=list(sizes["out_channels"]),
        fusion_hidden_size=sizes["features"],
        head_in_index=-1,
        head_hidden_size=HEAD_HIDDEN_SIZE,
        depth_estimation_type="relative",
    )


def convert_state_dict(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], file: Path,
                       encoder: str) -> dict[str, torch.Tensor]:
    """Renames (and splits, for fused projections) the authors' tensors to the keys of ``target``.

    Attention and SwiGLU names differ between transformers releases (``attention.q_proj`` in 5.x,
    ``attention.attention.query`` in 4.x), so the target name is picked from the model's own keys.

    Args:
        state: the authors' tensors.
        target: the transformers model's state dict (meta tensors suffice: only keys and shapes are used).
        file, encoder: named in errors.

    Raises:
        RuntimeError: a tensor has no counterpart or the wrong shape, or a model tensor is not covered.
    """
    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        pieces = _map_key(key, tensor, target.keys())
        if pieces is None:
            unknown.append(key)
        else:
            mapped.update(pieces)
    unknown += [key for key in mapped if key not in target]
    missing = sorted(target.keys() - mapped.keys())
    misshapen = [key for key in mapped if key in target and mapped[key].shape != target[key].shape]
    if unknown or missing or misshapen:
        raise PackError(
            f"Checkpoint file {file} does not fit the {encoder} Depth Anything V2 model ({len(unknown)} unknown "
            f"tensors, e.g. {unknown[:3]}; {len(missing)} missing, e.g. {missing[:3]}; {len(misshapen)} of "
            f"another shape, e.g. {misshapen[:3]}). Use an unmodified official file named after its encoder "
            "(vits/vitb/vitl/vitg)."
        )
    return mapped


_FIXED = {
    "pretrained.cls_token": "backbone.embeddings.cls_token",
    "pretrained.mask_token": "backbone.embeddings.mask_token",
    "pretrained.pos_embed": "backbone.embeddings.position_embeddings",
    "pretrained.norm.weight": "backbone.layernorm.weight",
    "pretrained.norm.bias": "backbone.layernorm.bias",
}
_PATTERNS = [  # (authors' regex, transformers template); groups are reused in the template
    (r"pretrained\.patch_embed\.proj\.(weight|bias)", "backbone.embeddings.patch_embeddings.projection.{0}"),
    (r"pretrained\.blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)", "backbone.encoder.layer.{0}.{1}.{2}"),
    (r"pretrained\.blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", "backbone.encoder.layer.{0}.mlp.{1}.{2}"),
    (r"pretrained\.blocks\.(\d+)\.ls1\.gamma", "backbone.encoder.layer.{0}.layer_scale1.lambda1"),
    (r"pretrained\.blocks\.(\d+)\.ls2\.gamma", "backbone.encoder.layer.{0}.layer_scale2.lambda1"),
    (r"depth_head\.projects\.(\d)\.(weight|bias)", "neck.reassemble_stage.layers.{0}.projection.{1}"),
    (r"depth_head\.resize_layers\.(\d)\.(weight|bias)", "neck.reassemble_stage.layers.{0}.resize.{1}"),
    (r"depth_head\.scratch\.output_conv1\.(weight|bias)", "head.conv1.{0}"),
    (r"depth_head\.scratch\.output_conv2\.0\.(weight|bias)", "head.conv2.{0}"),
    (r"depth_head\.scratch\.output_conv2\.2\.(weight|bias)", "head.conv3.{0}"),
]
_LAYER_RN = re.compile(r"depth_head\.scratch\.layer(\d)_rn\.weight")
_REFINENET = re.compile(r"depth_head\.scratch\.refinenet(\d)\.(out_conv|resConfUnit\d\.conv\d)\.(weight|bias)")
_QKV = re.compile(r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)")
_ATTN_PROJ = re.compile(r"pretrained\.blocks\.(\d+)\.attn\.proj\.(weight|bias)")
_SWIGLU = re.compile(r"pretrained\.blocks\.(\d+)\.mlp\.(w12|w3)\.(weight|bias)")


def _map_key(key: str, tensor: torch.Tensor, targets) -> dict[str, torch.Tensor] | None:
    """Target tensors for one authors' tensor, or None when it has no counterpart."""
    if key in _FIXED:
        return {_FIXED[key]: tensor}
    for pattern, template in _PATTERNS:
        match = re.fullmatch(pattern, key)
        if match:
            return {template.format(*match.groups()): tensor}
    if match := _LAYER_RN.fullmatch(key):
        return {f"neck.convs.{int(match[1]) - 1}.weight": tensor}
    if match := _REFINENET.fullmatch(key):
        # The head fuses from the deepest level: refinenet4 is fusion layer 0, refinenet1 is layer 3.
        layer = f"neck.fusion_stage.layers.{4 - int(match[1])}"
        if match[2] == "out_conv":
            return {f"{layer}.projection.{match[3]}": tensor}
        unit, conv = match[2][len("resConfUnit")], match[2][-1]
        return {f"{layer}.residual_layer{unit}.convolution{conv}.{match[3]}": tensor}
    if match := _QKV.fullmatch(key):
        layer, kind = f"backbone.encoder.layer.{match[1]}.attention", match[2]
        names = ("q_proj", "k_proj", "v_proj") if f"{layer}.q_proj.{kind}" in targets else (
            "attention.query", "attention.key", "attention.value")
        return {f"{layer}.{name}.{kind}": part for name, part in zip(names, tensor.chunk(3, dim=0))}
    if match := _ATTN_PROJ.fullmatch(key):
        layer, kind = f"backbone.encoder.layer.{match[1]}.attention", match[2]
        name = "o_proj" if f"{layer}.o_proj.{kind}" in targets else "output.dense"
        return {f"{layer}.{name}.{kind}": tensor}
    if match := _SWIGLU.fullmatch(key):
        mlp, kind = f"backbone.encoder.layer.{match[1]}.mlp", match[3]
        if f"{mlp}.weights_in.{kind}" in targets:  # transformers 4.x keeps the fused projections
            return {f"{mlp}.{'weights_in' if match[2] == 'w12' else 'weights_out'}.{kind}": tensor}
        if match[2] == "w3":
            return {f"{mlp}.down_proj.{kind}": tensor}
        gate, up = tensor.chunk(2, dim=0)  # the authors compute silu(x1) * x2 with x1, x2 = w12(x).chunk(2)
        return {f"{mlp}.gate_proj.{kind}": gate, f"{mlp}.up_proj.{kind}": up}
    return None
