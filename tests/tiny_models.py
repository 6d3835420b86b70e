"""The tiny models every test runs on: ``../shared/parity``'s when it is there, else built here once per run.

`tiny_models()` returns the paths of a stage-1 and a stage-2 Diffusion-VAS checkpoint (published layout), a
Depth Anything V2 transformers folder and an authors'-layout Depth Anything V2 single file. Without ``../shared`` they are random-weight models of the same tiny sizes
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
    depth_official: Path  # authors'-layout single file (depth_anything_v2_vits.pth, config.json beside it)
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
                                parity / "tiny-depth-anything-v2",
                                parity / "tiny-depth-anything-v2-official" / "depth_anything_v2_vits.pth", True)
        else:
            root = Path(tempfile.mkdtemp(prefix="diffusion-vas-tiny-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            _cache = TinyModels(write_tiny_vas(root / "tiny-amodal-segmentation", seed=1),
                                write_tiny_vas(root / "tiny-content-completion", seed=2),
                                write_tiny_depth(root / "tiny-depth-anything-v2"),
                                write_tiny_official_depth(root / "tiny-depth-anything-v2-official"), False)
    return _cache


OFFICIAL_SIZES = {"encoder": "vits", "features": 16, "out_channels": [8, 16, 32, 32],
                  "intermediate_layer_idx": [2, 5, 8, 11],
                  "vit": {"embed_dim": 32, "depth": 12, "num_heads": 2, "mlp_ratio": 2, "patch_size": 14,
                          "img_size": 518, "layerscale_init": 1.0}}  # the sizes of ../shared's official tiny file


def write_tiny_official_depth(folder: Path, seed: int = 0) -> Path:
    """A tiny random Depth Anything V2 in the **authors' key layout** (``depth_anything_v2_vits.pth`` with a
    ``config.json`` of its sizes beside it), for the single-file loader's plumbing tests without ``../shared``.

    Built as a transformers model and renamed key by key with the inverse of `models.depth.checkpoint`'s mapping
    (q/k/v fused back into ``qkv``); the loader reading it back strictly proves every key round-trips.
    """
    import json
    import re

    import torch
    from transformers import DepthAnythingForDepthEstimation

    from diffusion_vas.models.depth import checkpoint as ck

    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(ck.transformers_config(OFFICIAL_SIZES))
    inverse = {v: k for k, v in ck._FIXED.items()}
    templates = []
    for pattern, template in ck._PATTERNS:
        authors = re.sub(r"\([^)]*\)", "{}", pattern).replace("\\.", ".")
        templates.append((re.escape(template).replace(r"\{0\}", "([^.]+)").replace(r"\{1\}", "([^.]+)")
                          .replace(r"\{2\}", "([^.]+)"), authors))
    templates.sort(key=lambda pair: pair[0].count("("))  # the most specific (fewest wildcards) first
    state, qkv = {}, {}
    for key, tensor in model.state_dict().items():
        if key in inverse:
            state[inverse[key]] = tensor
            continue
        if match := re.fullmatch(r"backbone\.encoder\.layer\.(\d+)\.attention\.(q_proj|k_proj|v_proj|attention\.query|"
                                 r"attention\.key|attention\.value)\.(weight|bias)", key):
            qkv.setdefault((match[1], match[3]), {})[match[2].split(".")[-1][0]] = tensor
            continue
        if match := re.fullmatch(r"backbone\.encoder\.layer\.(\d+)\.attention\.(o_proj|output\.dense)\.(weight|bias)",
                                 key):
            state[f"pretrained.blocks.{match[1]}.attn.proj.{match[3]}"] = tensor
            continue
        if match := re.fullmatch(r"neck\.convs\.(\d)\.weight", key):
            state[f"depth_head.scratch.layer{int(match[1]) + 1}_rn.weight"] = tensor
            continue
        if match := re.fullmatch(r"neck\.fusion_stage\.layers\.(\d)\.projection\.(weight|bias)", key):
            state[f"depth_head.scratch.refinenet{4 - int(match[1])}.out_conv.{match[2]}"] = tensor
            continue
        if match := re.fullmatch(r"neck\.fusion_stage\.layers\.(\d)\.residual_layer(\d)\.convolution(\d)\."
                                 r"(weight|bias)", key):
            state[f"depth_head.scratch.refinenet{4 - int(match[1])}.resConfUnit{match[2]}.conv{match[3]}."
                  f"{match[4]}"] = tensor
            continue
        for regex, authors in templates:
            if match := re.fullmatch(regex, key):
                state[authors.format(*match.groups())] = tensor
                break
        else:
            raise KeyError(f"no authors' name for {key}")
    for (layer, kind), parts in qkv.items():
        state[f"pretrained.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "depth_anything_v2_vits.pth"
    torch.save({k: v.contiguous() for k, v in state.items()}, file)
    (folder / "config.json").write_text(json.dumps(OFFICIAL_SIZES, indent=1))
    return file
