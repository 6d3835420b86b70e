"""ComfyUI node adapters: ComfyUI types in, engine calls, ComfyUI types out."""

from importlib import import_module

# Each module defines NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS; listed in pipeline order.
_NODE_MODULES = ("loader", "masks", "depth", "stages", "composite", "evaluate")

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _name in _NODE_MODULES:
    _module = import_module(f".{_name}", __name__)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
