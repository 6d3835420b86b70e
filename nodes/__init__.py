"""ComfyUI node adapters: ComfyUI types in, engine calls, ComfyUI types out."""

from importlib import import_module

from ..models.host import DEPTH, DIFFUSION_VAS
from .comfy_bridge import install

install((DIFFUSION_VAS.folder, DEPTH.folder))  # inside ComfyUI: its services answer the engine's host questions

# Each module defines NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS; listed in pipeline order.
_NODE_MODULES = ("loader", "masks", "depth", "stages", "hypotheses", "composite", "evaluate")

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _name in _NODE_MODULES:
    _module = import_module(f".{_name}", __name__)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
