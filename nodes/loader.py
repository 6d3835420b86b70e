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
    def prepared(self, options: SamplingOptions | None = None, objects: int = 1,
                 size: tuple[int, int] = DEFAULT_SIZE, frames: int | None = None, samples: int | None = None):
        """The pipeline on the compute device for one node call, placed through ComfyUI's model management (or
        the plain host's), which first offloads other models until the weights and the call's working memory fit.

        The working memory is the sampler's for this call (`sampling_bytes`): ``options`` (default: the
        reference's) for ``objects`` condition rows of ``frames`` frames (default: one window) at the processing
        ``size``, ``samples`` per object (default ``options.samples``; stage 2 draws one per mask hypothesis)."""
        need = sampling_bytes(options or SamplingOptions(), objects, size, self.pipeline.dtype, frames,
                              self.pipeline.vae_encode_dtype, samples)
        with self.managed.managed(need) as device:
            yield self.pipeline.to(device)


_cache: dict[tuple[str, torch.dtype], DiffusionVASModel] = {}  # one entry per checkpoint folder


def get_model(name: str, precision: str, compile: bool = DEFAULT_COMPILE) -> DiffusionVASModel:
    """The loaded checkpoint for ``name`` at ``precision``, reused while (path, dtype) stays the same; its UNet
    compiled with ``torch.compile`` when ``compile`` (`DiffusionVASUNet.set_compiled`).

    A VAE or image encoder identical to one a cached model holds (the two published stages have the same ones:
    `load_pipeline`'s ``share``) is not loaded again: both models hold the same module, placed and offloaded as
    one set (one ``ManagedModels``, one ComfyUI ``ModelPatcher``) shared by the two."""
    path = resolve_checkpoint(name)
    device = get_host().torch_device()
    dtype = resolve_dtype(precision, device)
    key = (str(path.resolve()), dtype)
    if key not in _cache:
        for stale in [k for k in _cache if k[0] == key[0]]:
            del _cache[stale]
        loaded = [part for model in _cache.values() for part in model.managed.shared]
        pipeline = load_pipeline(path, "cpu", dtype, share=[m for part in loaded for m in part.bundle.children()])
        shared = [_shared_part(loaded, name, module, device) for name, module in pipeline.modules.items()
                  if name != "unet"]
        _cache[key] = DiffusionVASModel(name, path, pipeline,
                                        ManagedModels({"unet": pipeline.unet}, device, shared=shared))
        logger.info("Diffusion-VAS: loaded %s (%s)", path, dtype)
    _cache[key].pipeline.unet.set_compiled(compile)
    return _cache[key]


def _shared_part(loaded: list[ManagedModels], name: str, module: torch.nn.Module,
                 device: torch.device) -> ManagedModels:
    """The managed set holding ``module`` (a VAE or an image encoder) among ``loaded``, or a new one."""
    for part in loaded:
        if any(child is module for child in part.bundle.children()):
            return part
    return ManagedModels({name: module}, device)


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
