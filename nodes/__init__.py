"""ComfyUI node adapters: ComfyUI types in, engine calls, ComfyUI types out."""

import logging
from importlib import import_module

from ..models import DEPTH, DIFFUSION_VAS
from .comfy_bridge import HAS_COMFY, install
from .comfy_version import running_comfyui_version, version_problem
from .examples import install_examples
from .names import NODE_DISPLAY_NAME_MAPPINGS as _DISPLAY_NAMES

# Each module defines NODE_CLASS_MAPPINGS; listed in pipeline order. The names the menus show are all in `names`
# (one form for every node); a module's own NODE_DISPLAY_NAME_MAPPINGS, where one is left, is not read.
_NODE_MODULES = ("loader", "video", "masks", "depth", "stages", "hypotheses", "composite", "evaluate")

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
_problem = version_problem(running_comfyui_version()) if HAS_COMFY else None
if _problem:  # an older ComfyUI: one line in its log, no nodes (never a traceback)
    logging.getLogger(__name__).error(_problem)
else:
    install((DIFFUSION_VAS.folder, DEPTH.folder))  # inside ComfyUI: its services answer the engine's host questions
    # Inside ComfyUI the example clips are placed now, before the first /object_info lists core LoadVideo's files
    # (the shipped workflows name their MP4), never while nodes are listed; outside ComfyUI it does nothing. Never
    # raises.
    install_examples()
    for _name in _NODE_MODULES:
        NODE_CLASS_MAPPINGS.update(import_module(f".{_name}", __name__).NODE_CLASS_MAPPINGS)
    _unnamed = set(NODE_CLASS_MAPPINGS) - set(_DISPLAY_NAMES)
    if _unnamed:
        raise RuntimeError(f"Diffusion-VAS: nodes {sorted(_unnamed)} have no display name in nodes/names.py.")
    NODE_DISPLAY_NAME_MAPPINGS = {name: _DISPLAY_NAMES[name] for name in NODE_CLASS_MAPPINGS}
