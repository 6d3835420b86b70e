"""Diffusion-VAS engine: pure PyTorch / diffusers / transformers, no ComfyUI."""

from .loading import load_pipeline
from .pipeline import DiffusionVASPipeline

__all__ = ["load_pipeline", "DiffusionVASPipeline"]
