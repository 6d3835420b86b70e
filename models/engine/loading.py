"""Loads a Diffusion-VAS checkpoint folder (the published diffusers layout) into a `DiffusionVASPipeline`.

Layout::

    model_index.json
    unet/config.json, diffusion_pytorch_model[.fp16].safetensors
    vae/config.json, diffusion_pytorch_model[.fp16].safetensors
    image_encoder/config.json, model[.fp16].safetensors
    feature_extractor/preprocessor_config.json
    scheduler/scheduler_config.json

``model_index.json`` names the UNet by the authors' module path; it is only checked, never imported.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .pipeline import DiffusionVASPipeline
from .unet import DiffusionVASUNet
from ..base.errors import PackError

logger = logging.getLogger(__name__)

COMPONENTS = ("unet", "vae", "image_encoder", "feature_extractor", "scheduler")
_WEIGHT_STEMS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "image_encoder": "model"}
_HALF_DTYPES = (torch.float16, torch.bfloat16)


def load_pipeline(path, device="cpu", dtype: torch.dtype = torch.float32) -> DiffusionVASPipeline:
    """Loads a Diffusion-VAS checkpoint folder.

    Args:
        path: folder with ``model_index.json`` and the five component folders.
        device: where the models run (``"cpu"``, ``"cuda"``, a `torch.device`). The weight files are read
            straight onto it, so a GPU run never holds a whole checkpoint in host memory.
        dtype: weight and compute precision; ``torch.float16``/``torch.bfloat16`` on GPUs, ``torch.float32``
            on the CPU. With float16 the VAE encoder runs in float32 when its config asks (``force_upcast``),
            as in the reference.

    Models are built on the meta device (no random initialisation) and take the file's tensors as they are
    (``assign``), cast tensor by tensor where the file's precision differs: loading needs the weights' memory once,
    plus one tensor.

    Raises:
        FileNotFoundError: a required file is missing (the message names it).
        RuntimeError: a file is unreadable or does not match its config (the message names it).
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Diffusion-VAS checkpoint folder not found: {root}")
    _check_model_index(root)
    device = torch.device(device)
    unet = load_unet(root / "unet", dtype, device)
    vae = load_vae(root / "vae", dtype, device)
    image_encoder = load_image_encoder(root / "image_encoder", dtype, device)
    clip_mean, clip_std = read_clip_normalization(root / "feature_extractor")
    scheduler_config = read_json(root / "scheduler" / "scheduler_config.json")
    return DiffusionVASPipeline(
        unet=unet, vae=vae, image_encoder=image_encoder, scheduler_config=scheduler_config,
        clip_mean=clip_mean, clip_std=clip_std, device=device, dtype=dtype, name=root.name,
    )


def read_json(file: Path) -> dict:
    """Reads a JSON file, naming the file in any error."""
    if not file.is_file():
        raise FileNotFoundError(f"Missing checkpoint file: {file}")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PackError(f"Checkpoint file {file} is not valid JSON ({err}); re-download it.") from err


def weights_file(folder: Path, stem: str, dtype: torch.dtype) -> Path:
    """Chooses ``<stem>.safetensors`` or ``<stem>.fp16.safetensors``, preferring the one matching ``dtype``."""
    full, half = folder / f"{stem}.safetensors", folder / f"{stem}.fp16.safetensors"
    order = (half, full) if dtype in _HALF_DTYPES else (full, half)
    for candidate in order:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Missing checkpoint weights: {full} (or {half.name})")


def read_state_dict(file: Path, device="cpu") -> dict[str, torch.Tensor]:
    """Reads a safetensors file onto ``device``, naming the file in any error."""
    try:
        return load_file(str(file), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise PackError(f"Checkpoint file {file} is corrupt or unreadable ({err}); re-download it.") from err


def load_unet(folder: Path, dtype: torch.dtype, device="cpu") -> DiffusionVASUNet:
    """The Diffusion-VAS UNet (with ``conv_in2``)."""
    return _load_on_meta(folder, "unet", DiffusionVASUNet.from_vas_config, dtype, device)


def load_vae(folder: Path, dtype: torch.dtype, device="cpu"):
    """SVD's temporal-decoder VAE."""
    from diffusers import AutoencoderKLTemporalDecoder

    return _load_on_meta(folder, "vae", AutoencoderKLTemporalDecoder.from_config, dtype, device)


def load_image_encoder(folder: Path, dtype: torch.dtype, device="cpu"):
    """The CLIP vision tower with projection (transformers), SDPA attention.

    ``position_ids`` is a non-persistent buffer (older transformers saved it, newer do not): a saved one is
    dropped and the buffer is made again, as the model's constructor makes it.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    def build(config: dict):
        return CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(config, attn_implementation="sdpa"))

    encoder = _load_on_meta(folder, "image_encoder", build, dtype, device, remade=("position_ids",))
    embeddings = encoder.vision_model.embeddings
    embeddings.register_buffer("position_ids", torch.arange(embeddings.num_positions, device=device).expand((1, -1)),
                               persistent=False)
    return encoder


def _load_on_meta(folder: Path, component: str, build, dtype: torch.dtype, device,
                  remade: tuple[str, ...] = ()) -> torch.nn.Module:
    """Builds a module from ``config.json`` on the meta device (no random init) and loads its weights strictly.

    ``remade``: names of buffers the caller makes itself after loading; saved copies of them are dropped."""
    config = read_json(folder / "config.json")
    file = weights_file(folder, _WEIGHT_STEMS[component], dtype)
    with torch.device("meta"):
        module = build(config)
    state = read_state_dict(file, device)
    for key in [k for k in state if k.rsplit(".", 1)[-1] in remade]:
        del state[key]
    _assign_weights(module, state, file, dtype, remade)
    return module.eval().requires_grad_(False)


def read_clip_normalization(folder: Path) -> tuple[list[float], list[float]]:
    """CLIP image mean and std from ``preprocessor_config.json``."""
    file = folder / "preprocessor_config.json"
    config = read_json(file)
    try:
        return [float(v) for v in config["image_mean"]], [float(v) for v in config["image_std"]]
    except (KeyError, TypeError, ValueError) as err:
        raise PackError(f"Checkpoint file {file} lacks image_mean/image_std ({err}).") from err


def _check_model_index(root: Path) -> None:
    index = read_json(root / "model_index.json")
    absent = [name for name in COMPONENTS if name not in index]
    if absent:
        raise PackError(f"{root / 'model_index.json'} lists no {', '.join(absent)}: not a Diffusion-VAS checkpoint.")
    for name in COMPONENTS:
        if not (root / name).is_dir():
            raise FileNotFoundError(f"Missing checkpoint folder: {root / name}")


def _assign_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], file: Path, dtype: torch.dtype,
                   remade: tuple[str, ...] = ()) -> None:
    """Loads ``state`` (cast to ``dtype`` tensor by tensor, in place) into a module built on the meta device; every
    tensor must be covered except the buffers named in ``remade``, which the caller makes."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and tensor.dtype != dtype:
            state[key] = tensor.to(dtype)  # the file's tensor is freed here, before the next one is cast
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        raise PackError(f"Checkpoint file {file} does not match its config.json: {err}") from err
    leftover = [name for name, t in list(module.named_parameters()) + list(module.named_buffers())
                if t.is_meta and name.rsplit(".", 1)[-1] not in remade]
    if leftover:
        raise PackError(f"Checkpoint file {file} leaves tensors uninitialized: {leftover[:5]}")
