"""PseudoDepth node: video frames -> clip-normalized Depth Anything V2 depth, or any depth you already have."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.depth.estimator import (
    HF_MODELS, INPUT_SIZE, NORMALIZATIONS, PATCH_SIZE, DepthEstimator, download_depth_model, load_depth_model,
    normalize_depth,
)
from ..models.depth.checkpoint import OFFICIAL_SUFFIXES
from .comfy_bridge import (
    PRECISIONS, ManagedModels, ProgressReporter, model_folders, register_model_folder, resolve_dtype, torch_device,
)

logger = logging.getLogger(__name__)

MODEL_KIND = "depthanything"
DEFAULT_MODEL = "Depth-Anything-V2-Large-hf"
_SINGLE_FILE = re.compile(r"depth.?anything.?v2", re.IGNORECASE)

register_model_folder(MODEL_KIND)

_loaded: dict[tuple, tuple[DepthEstimator, ManagedModels]] = {}  # at most one model, reused across runs


def available_models() -> list[str]:
    """The downloadable names, then folders with ``config.json`` and authors'-layout files in the model folders."""
    found = []
    for folder in model_folders(MODEL_KIND):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and (entry / "config.json").is_file():
                found.append(entry.name)
            elif (entry.is_file() and entry.suffix in OFFICIAL_SUFFIXES and _SINGLE_FILE.search(entry.name)
                  and "metric" not in entry.name.lower()):
                found.append(entry.name)
    return list(dict.fromkeys([*HF_MODELS, *found]))


def resolve_model(name: str) -> Path:
    """Absolute path, or a name in the model folders; the ``*-hf`` names are downloaded on first use."""
    path = Path(name).expanduser()
    if path.is_absolute():
        if not path.exists():
            raise FileNotFoundError(f"model: {path} does not exist; give an existing folder or file.")
        return path
    folders = model_folders(MODEL_KIND)
    for folder in folders:
        candidate = folder / name
        if candidate.exists() and (name not in HF_MODELS or (candidate / "model.safetensors").is_file()):
            return candidate
    if name in HF_MODELS:
        return download_depth_model(name, folders[0])
    raise FileNotFoundError(
        f"model: {name!r} is not in {', '.join(str(f) for f in folders)}; put the folder or file there, "
        f"or pick one of {', '.join(HF_MODELS)}."
    )


def get_estimator(name: str, precision: str) -> tuple[DepthEstimator, ManagedModels]:
    """The loaded model for ``name`` at ``precision``, reused while the key (path, dtype, device) stays the same."""
    device = torch_device()
    path = resolve_model(name)
    dtype = resolve_dtype(precision, device)
    key = (str(path.resolve()), dtype, str(device))
    if key not in _loaded:
        _loaded.clear()
        estimator = load_depth_model(path, "cpu", dtype)
        _loaded[key] = (estimator, ManagedModels(estimator.modules, device))
        logger.info("PseudoDepth: loaded %s (%s)", path, dtype)
    return _loaded[key]


def depth_image_frames(depth: torch.Tensor, size: tuple[int, int], node: str) -> torch.Tensor:
    """A depth IMAGE ``[T, h, w, C]`` (or MASK ``[T, h, w]``) -> ``[T, H, W]``: channel mean, bilinear to ``size``."""
    if torch.is_tensor(depth) and depth.ndim == 3:
        depth = depth[..., None]
    if not torch.is_tensor(depth) or depth.ndim != 4:
        shape = tuple(depth.shape) if torch.is_tensor(depth) else type(depth).__name__
        raise ValueError(f"depth: expected an IMAGE [frames, height, width, channels], got {shape}.")
    depth = depth.float()
    if not torch.isfinite(depth).all():
        raise ValueError("depth contains NaN or infinite values; check the node that made it.")
    spread = (depth.amax(dim=-1) - depth.amin(dim=-1)).max().item()
    if spread > 0.05:
        logger.warning(
            "%s: the depth input is coloured (channels differ by up to %.2f); using the channel mean. "
            "Feed grayscale depth (near = bright), not a colour map.", node, spread,
        )
    depth = depth.mean(dim=-1)
    if tuple(depth.shape[1:]) != tuple(size):
        logger.info("%s: resizing depth from %s to %s", node, tuple(depth.shape[1:]), tuple(size))
        depth = F.interpolate(depth[:, None], size, mode="bilinear", align_corners=False)[:, 0]
    return depth


def external_depth(depth: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """An IMAGE depth ``[T, h, w, C]`` as ``[T, H, W]`` at the size of ``images`` (channel mean, bilinear)."""
    if torch.is_tensor(depth) and depth.shape[0] != images.shape[0]:
        raise ValueError(
            f"depth has {depth.shape[0]} frames but images has {images.shape[0]}; feed the depth of the same "
            "frames (same start, count and frame skip)."
        )
    return depth_image_frames(depth, tuple(images.shape[1:3]), "PseudoDepth")


class PseudoDepth:
    DESCRIPTION = (
        "Pseudo-depth for Diffusion-VAS stage 1: Depth Anything V2 relative depth (near = bright), min-max "
        "normalized over the whole clip as in training. Connect 'depth' to use depth from another node instead "
        "(it is only normalized)."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "estimate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("depth",)
    OUTPUT_TOOLTIPS = ("Depth [frames, height, width, 3] in 0..1 at the size of 'images' (near = bright).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Video frames (RGB)."}),
                "model": (available_models(), {
                    "default": DEFAULT_MODEL,
                    "tooltip": "Depth Anything V2: a folder (transformers) or official .pth/.safetensors file in "
                               "models/depthanything, or an absolute path. The *-hf models download on first use "
                               "from huggingface.co/depth-anything. The authors used Large.",
                }),
                "normalization": (list(NORMALIZATIONS), {
                    "default": "clip",
                    "tooltip": "clip: one min/max over the whole clip (what the model was trained on). "
                               "frame: each frame stretched to 0..1 on its own.",
                }),
                "batch_size": ("INT", {
                    "default": 4, "min": 1, "max": 256,
                    "tooltip": "Frames per network call; lower it if you run out of memory.",
                }),
                "precision": (list(PRECISIONS), {
                    "default": "auto", "tooltip": "Weight precision; auto picks fp16/bf16 on GPUs, fp32 on the CPU.",
                }),
                "input_size": ("INT", {
                    "default": INPUT_SIZE, "min": PATCH_SIZE, "max": 2044, "step": PATCH_SIZE,
                    "tooltip": "Shortest side of the network input (multiple of 14). 518 as in training; larger "
                               "gives finer detail and uses more memory.",
                }),
            },
            "optional": {
                "depth": ("IMAGE", {
                    "tooltip": "Depth from another node (Video Depth Anything, DepthCrafter, ...), grayscale with "
                               "near = bright. Skips the network; only normalized (and resized to 'images').",
                }),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        path = Path(model).expanduser()
        if model in available_models() or (path.is_absolute() and path.exists()):
            return True
        return f"model: {model!r} is neither in models/{MODEL_KIND} nor an existing absolute path."

    def estimate(self, images, model=DEFAULT_MODEL, normalization="clip", batch_size=4, precision="auto",
                 input_size=INPUT_SIZE, depth=None):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images: expected an IMAGE [frames, height, width, 3], got {tuple(images.shape)}.")
        if depth is not None:
            raw = external_depth(depth, images)
        else:
            estimator, managed = get_estimator(model, precision)
            managed.load()
            try:
                raw = estimator.predict(images, batch_size, ProgressReporter(images.shape[0], "PseudoDepth"),
                                        input_size)
            finally:
                managed.release()
        normalized = normalize_depth(raw, normalization)
        return (normalized[..., None].expand(-1, -1, -1, 3).contiguous(),)


NODE_CLASS_MAPPINGS = {"PseudoDepth": PseudoDepth}
NODE_DISPLAY_NAME_MAPPINGS = {"PseudoDepth": "Diffusion-VAS Pseudo-Depth"}
