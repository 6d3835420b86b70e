"""Diffusion-VAS for ComfyUI: video amodal segmentation and content completion.

ComfyUI imports this folder as a package; ``NODE_CLASS_MAPPINGS`` registers the nodes.
The engine in ``models/`` works without ComfyUI (``from <pack>.models import load_pipeline``).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
