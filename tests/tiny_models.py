"""The tiny models every test runs on: ``../shared/parity``'s when it is there, else built here once per run.

`tiny_models()` returns the paths of a stage-1 and a stage-2 Diffusion-VAS checkpoint (published layout) and a
Depth Anything V2 transformers folder. Without ``../shared`` they are random-weight models of the same tiny sizes
written to a temporary folder (`training_tiny.write_tiny_vas` and a tiny depth config below), so a fresh clone
tests its loaders, stages, nodes and CLI end to end; only comparisons with the authors' golden outputs skip.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from training_tiny import write_tiny_vas

DEPTH_BACKBONE = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=4,
                      patch_size=14, image_size=518, layerscale_value=1.0, out_indices=[1, 2, 3, 4],
                      reshape_hidden_states=False, apply_layernorm=True)
DEPTH_HEAD = dict(fusion_hidden_size=16, head_hidden_size=8, neck_hidden_sizes=[8, 16, 32, 32],
                  reassemble_hidden_size=32, reassemble_factors=[4, 2, 1, 0.5], patch_size=14)


@dataclass(frozen=True)
class TinyModels:
    stage1: Path
    stage2: Path
    depth: Path
    from_shared: bool


def write_tiny_depth(folder: Path, seed: int = 0) -> Path:
    """A tiny random Depth Anything V2 in transformers layout (``config.json`` + ``model.safetensors``)."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(seed)
    config = DepthAnythingConfig(backbone_config=Dinov2Config(**DEPTH_BACKBONE), **DEPTH_HEAD)
    DepthAnythingForDepthEstimation(config).save_pretrained(str(folder), safe_serialization=True)
    return folder


_cache: TinyModels | None = None


def tiny_models(parity: Path) -> TinyModels:
    global _cache
    if _cache is None:
        if parity.is_dir():
            _cache = TinyModels(parity / "tiny-amodal-segmentation", parity / "tiny-content-completion",
                                parity / "tiny-depth-anything-v2", True)
        else:
            root = Path(tempfile.mkdtemp(prefix="diffusion-vas-tiny-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            _cache = TinyModels(write_tiny_vas(root / "tiny-amodal-segmentation", seed=1),
                                write_tiny_vas(root / "tiny-content-completion", seed=2),
                                write_tiny_depth(root / "tiny-depth-anything-v2"), False)
    return _cache
