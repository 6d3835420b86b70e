"""``DiffusionVASLoader`` node: a Diffusion-VAS checkpoint folder -> ``DIFFUSION_VAS_MODEL``.

Checkpoints are diffusers-layout folders (``model_index.json`` + ``unet/``, ``vae/``, ...) in the registered
``diffusion_vas`` model folders (``ComfyUI/models/diffusion_vas/<name>`` and ``extra_model_paths.yaml`` entries).
The two published checkpoints are always listed and downloaded from ``huggingface.co/kaihuac/<name>`` into the
first registered folder on first use. Loaded models stay cached across runs; ComfyUI's model management moves
them to the GPU before each stage run (`DiffusionVASModel.prepare`) and off it when it needs the memory.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models import settings as S
from ..models import CHECKPOINT_WORDS, STAGE_CHECKPOINTS, checkpoint_stage
from .inputs import node_inputs
from ..models import DEFAULT_SIZE, DiffusionVASPipeline, SamplingOptions, load_pipeline
from ..models import sampling_bytes
from ..models import DEFAULT_COMPILE
from ..models import DIFFUSION_VAS, available_models, is_checkpoint, resolve_checkpoint
from ..models import get_host, resolve_dtype
from .comfy_bridge import ManagedModels

logger = logging.getLogger(__name__)

MODEL_KIND = DIFFUSION_VAS.folder
PUBLISHED = tuple(DIFFUSION_VAS.published)
WORK_FRAMES = SamplingOptions().window  # a call's default working set: one window of the trained length


@dataclass
class DiffusionVASModel:
    """The ``DIFFUSION_VAS_MODEL`` value: a loaded checkpoint and its ComfyUI-managed modules."""

    name: str
    path: Path
    pipeline: DiffusionVASPipeline
    managed: ManagedModels

    @property
    def stage(self) -> str | None:
        """``"amodal"`` or ``"content"`` when the folder name tells (the published names do), else None."""
        return checkpoint_stage(self.path.name)

    def require_stage(self, stage: str, node: str) -> None:
        """Raises when the folder name shows the checkpoint of the other stage."""
        if self.stage is not None and self.stage != stage:
            raise ValueError(
                f"model: {self.name!r} is the {CHECKPOINT_WORDS[self.stage]} checkpoint, but {node} needs the "
                f"{CHECKPOINT_WORDS[stage]} one: load {STAGE_CHECKPOINTS[stage]!r} in the DiffusionVASLoader "
                f"connected to {node}."
            )

    @contextlib.contextmanager
    def prepared(self, frames: int = WORK_FRAMES, size: tuple[int, int] = DEFAULT_SIZE, rows: int = 1):
        """The pipeline on the compute device for one node call, placed through ComfyUI's model management (or
        the plain host's), which first offloads other models when the weights and the call's working memory
        (`sampling_bytes` for ``rows`` object-samples of a ``frames``-frame window at the processing ``size``;
        default: one trained-size window) do not fit."""
        need = sampling_bytes(frames, size, rows, self.pipeline.dtype)
        with self.managed.managed(need) as device:
            yield self.pipeline.to(device)


_cache: dict[tuple[str, torch.dtype], DiffusionVASModel] = {}  # one entry per checkpoint folder


def get_model(name: str, precision: str, compile: bool = DEFAULT_COMPILE) -> DiffusionVASModel:
    """The loaded checkpoint for ``name`` at ``precision``, reused while (path, dtype) stays the same; its UNet
    compiled with ``torch.compile`` when ``compile`` (`DiffusionVASUNet.set_compiled`)."""
    path = resolve_checkpoint(name)
    device = get_host().torch_device()
    dtype = resolve_dtype(precision, device)
    key = (str(path.resolve()), dtype)
    if key not in _cache:
        for stale in [k for k in _cache if k[0] == key[0]]:
            del _cache[stale]
        pipeline = load_pipeline(path, "cpu", dtype)
        _cache[key] = DiffusionVASModel(name, path, pipeline, ManagedModels(pipeline.modules, device))
        logger.info("Diffusion-VAS: loaded %s (%s)", path, dtype)
    _cache[key].pipeline.unet.set_compiled(compile)
    return _cache[key]


class DiffusionVASLoader:
    DESCRIPTION = (
        "Loads a Diffusion-VAS checkpoint: diffusion-vas-amodal-segmentation for the Amodal Mask node, "
        "diffusion-vas-content-completion for the Amodal Content node. Both download from huggingface.co/kaihuac "
        "into models/diffusion_vas on first use."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "load"
    RETURN_TYPES = ("DIFFUSION_VAS_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded checkpoint, for the Diffusion-VAS stage nodes.",)

    @classmethod
    def INPUT_TYPES(cls):
        return node_inputs(required=(S.CHECKPOINT, S.PRECISION), stage="amodal")  # stage 1's model listed first

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        path = Path(model).expanduser()
        if model in available_models(DIFFUSION_VAS) or (path.is_absolute() and is_checkpoint(path)):
            return True
        return f"model: {model!r} is neither a checkpoint folder in models/{MODEL_KIND} nor an absolute path to one."

    def load(self, model, precision="auto", compile=DEFAULT_COMPILE):
        return (get_model(model, precision, compile),)


NODE_CLASS_MAPPINGS = {"DiffusionVASLoader": DiffusionVASLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"DiffusionVASLoader": "Diffusion-VAS Loader"}
