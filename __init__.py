"""Diffusion-VAS for ComfyUI: video amodal segmentation and content completion.

ComfyUI reads ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` from this package; they are built on first
access (PEP 562 module ``__getattr__``), so ``import <pack>.models`` (the engine, usable from any script) imports
no node module and has no side effect.
"""

from importlib import import_module

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]


def __getattr__(name: str):
    if name in __all__:
        nodes = import_module(".nodes", __name__)
        value = getattr(nodes, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
