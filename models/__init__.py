"""Diffusion-VAS engine: pure PyTorch / diffusers / transformers, no ComfyUI.

Subpackages by concept: ``engine`` (UNet, loading, sampler, windows), ``stages`` (conditions and the two stage
functions), ``depth``, ``editing``, ``evaluation``, ``io`` (media, mask files, downloads) and ``host`` (device,
precision and model-folder policy shared by the command line and the nodes). This module is the public face.
"""

from .engine.loading import load_pipeline
from .engine.options import DEFAULT_SIZE, STAGE_SEEDS, SamplingOptions
from .engine.pipeline import DiffusionVASPipeline
from .stages.run import (AmodalContent, AmodalMasks, ContentStream, complete_content, complete_content_stream,
                         predict_amodal_masks)

__all__ = [
    "load_pipeline", "DiffusionVASPipeline", "SamplingOptions", "STAGE_SEEDS", "DEFAULT_SIZE", "AmodalMasks", "AmodalContent",
    "predict_amodal_masks", "complete_content", "complete_content_stream", "ContentStream",
]
