"""Loads a Diffusion-VAS checkpoint folder (the published diffusers layout) into a `DiffusionVASPipeline`.

Layout::

    model_index.json
    unet/config.json, diffusion_pytorch_model[.fp16].safetensors
    vae/config.json, diffusion_pytorch_model[.fp16].safetensors
    image_encoder/config.json, model[.fp16].safetensors
    feature_extractor/preprocessor_config.json
    scheduler/scheduler_config.json

``model_index.json`` names the UNet by the authors' module path; it is only checked, never imported.

**Shared components.** Only the UNets of the two stages were finetuned: the published checkpoints carry the same
VAE and image encoder. ``load_pipeline(..., share=modules)`` reuses an already loaded VAE or image encoder instead of
loading a second copy when its files are the same (`same_component`): same ``config.json`` contents, same dtype and
device, and weight files of the same bytes (`same_file`). The two pipelines then hold the very same modules.
"""

from __future__ import annotations

import json
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

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
SHAREABLE = ("vae", "image_encoder")  # not finetuned: the same in both published stages


@dataclass(frozen=True)
class ComponentSource:
    """What a loaded component was built from: its ``config.json`` contents, its weights file, dtype and device."""

    component: str
    config: dict
    weights: Path
    dtype: torch.dtype
    device: torch.device


# Loaded shareable modules -> where they came from (weak: a module freed elsewhere drops out).
_sources: "weakref.WeakKeyDictionary[torch.nn.Module, ComponentSource]" = weakref.WeakKeyDictionary()


def component_source(module: torch.nn.Module) -> ComponentSource | None:
    """The `ComponentSource` of a VAE or image encoder `load_pipeline` loaded (None for other modules)."""
    return _sources.get(module)


def load_pipeline(path, device="cpu", dtype: torch.dtype = torch.float32,
                  share: Iterable[torch.nn.Module] = ()) -> DiffusionVASPipeline:
    """Loads a Diffusion-VAS checkpoint folder.

    Args:
        path: folder with ``model_index.json`` and the five component folders.
        device: where the models run (``"cpu"``, ``"cuda"``, a `torch.device`). The weight files are read
            straight onto it, so a GPU run never holds a whole checkpoint in host memory.
        dtype: weight and compute precision; ``torch.float16``/``torch.bfloat16`` on GPUs, ``torch.float32``
            on the CPU. With float16 the VAE encoder runs in float32 when its config asks (``force_upcast``),
            as in the reference.
        share: loaded VAEs / image encoders (e.g. the other stage's ``pipeline.vae, pipeline.image_encoder``) to
            reuse where they are this checkpoint's (`same_component`); a reused module stays where it is (the new
            pipeline does not move it: it may be placed on a GPU for another pipeline).

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
    share = list(share)
    loaders = {"vae": load_vae, "image_encoder": load_image_encoder}
    modules, reused = {}, {}
    for name in SHAREABLE:
        source = ComponentSource(name, read_json(root / name / "config.json"),
                                 weights_file(root / name, _WEIGHT_STEMS[name], dtype), dtype, device)
        found = next((m for m in share if _sources.get(m) is not None and same_component(_sources[m], source)), None)
        if found is None:
            modules[name] = loaders[name](root / name, dtype, device)
            _sources[modules[name]] = source
        else:
            modules[name] = reused[name] = found
            logger.info("%s: %s shared with an already loaded checkpoint (same files)", root.name, name)
    unet = load_unet(root / "unet", dtype, device)
    clip_mean, clip_std = read_clip_normalization(root / "feature_extractor")
    scheduler_config = read_json(root / "scheduler" / "scheduler_config.json")
    places = {name: _device_of(module) for name, module in reused.items()}
    pipeline = DiffusionVASPipeline(
        unet=unet, vae=modules["vae"], image_encoder=modules["image_encoder"], scheduler_config=scheduler_config,
        clip_mean=clip_mean, clip_std=clip_std, device=device, dtype=dtype, name=root.name,
    )
    for name, place in places.items():
        if place != device:  # the constructor placed it on ``device``; it stays where its other user has it
            reused[name].to(place)
    return pipeline


def same_component(a: ComponentSource, b: ComponentSource) -> bool:
    """Whether two components load as the same module: same kind, dtype, device and ``config.json`` contents, and
    weight files of the same bytes (`same_file`)."""
    return (a.component == b.component and a.dtype == b.dtype and a.device == b.device and a.config == b.config
            and same_file(a.weights, b.weights))


_BLOCK = 16 * 2**20  # bytes compared at a time
_same_files: dict[tuple, bool] = {}  # (stat key, stat key) -> answer, while neither file changes


def same_file(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes, as cheaply as the files allow:

    * the same file (a hard link, a symbolic link) -> yes; different sizes -> no;
    * both downloaded by huggingface_hub (into a ``local_dir``, as the loader downloads, or its cache), unchanged
      since: their SHA-256 as the Hub gave it (the LFS etag) decides, without reading the weights;
    * else the bytes are compared, 16 MiB at a time (stopping at the first difference); the answer is remembered
      while both files keep their size and modification time.

    Never a guess from a partial read: a finetuned component can differ from the original in any tensor."""
    a, b = Path(a), Path(b)
    stat_a, stat_b = a.stat(), b.stat()
    if os.path.samestat(stat_a, stat_b):
        return True
    if stat_a.st_size != stat_b.st_size:
        return False
    hub_a, hub_b = _hub_sha256(a, stat_a), _hub_sha256(b, stat_b)
    if hub_a is not None and hub_b is not None:
        return hub_a == hub_b
    key = tuple(sorted(((str(p.resolve()), st.st_size, st.st_mtime_ns) for p, st in ((a, stat_a), (b, stat_b)))))
    if key not in _same_files:
        _same_files[key] = _same_bytes(a, b)
    return _same_files[key]


def _same_bytes(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            block = fa.read(_BLOCK)
            if block != fb.read(_BLOCK):
                return False
            if not block:
                return True


def _hub_sha256(file: Path, stat: os.stat_result) -> str | None:
    """The SHA-256 huggingface_hub recorded for ``file``, or None:

    * in its cache (``snapshots/<commit>/<component>/<file>`` linking to ``blobs/<sha256>``): the blob's name;
    * downloaded into a ``local_dir`` (``<local_dir>/<component>/<file>``): the etag in
      ``<local_dir>/.cache/huggingface/download/<component>/<file>.metadata`` (commit, etag, time), if the file has
      not been modified since (huggingface_hub's rule: modification time at most 1 s after the record).
    An etag is an LFS file's SHA-256 only with 64 hex digits (a small file's is a git hash): others give None."""
    real = file.resolve()
    if real.parent.name == "blobs" and _is_sha256(real.name):
        return real.name
    record = file.parent.parent / ".cache" / "huggingface" / "download" / file.parent.name / f"{file.name}.metadata"
    try:
        _, etag, timestamp = record.read_text(encoding="utf-8").splitlines()[:3]
        etag, timestamp = etag.strip().strip('"').lower(), float(timestamp)
    except (OSError, ValueError):
        return None
    if not _is_sha256(etag) or stat.st_mtime - 1 > timestamp:
        return None  # not an LFS file's SHA-256, or changed since the download
    return etag


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


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
