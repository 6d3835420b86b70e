"""Diffusion-VAS engine: pure PyTorch / diffusers / transformers, no ComfyUI."""

from .loading import load_pipeline
from .pipeline import DiffusionVASPipeline
from .stages import AmodalContent, AmodalMasks, SamplingOptions, complete_content, predict_amodal_masks

__all__ = [
    "load_pipeline", "DiffusionVASPipeline", "SamplingOptions", "AmodalMasks", "AmodalContent",
    "predict_amodal_masks", "complete_content",
]
