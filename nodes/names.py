"""How the nodes show in ComfyUI: their names in the menus and on the canvas (one place, one form for every node).

Each name says what the node does in an artist's words, then the pack's name in brackets, as ComfyUI packs
commonly do (the menu's category already groups them under "Diffusion-VAS"). The class names (``AmodalMaskSVD``,
...) are the contract with saved workflows and never change; ComfyUI's node search finds a node by either.
"""

from __future__ import annotations

PACK = "Diffusion-VAS"

_NAMES = {  # class name -> what the node does (pipeline order)
    "DiffusionVASLoader": "Load Model",
    "SelectVideoFrames": "Select Frames",
    "LoadModalMasks": "Load Visible Masks",
    "PseudoDepth": "Pseudo-Depth",
    "AmodalMaskSVD": "Stage 1: Full Masks",
    "AmodalContentSVD": "Stage 2: Full Appearance",
    "SelectHypothesis": "Select Sample",
    "CompositeEdit": "Composite Edit",
    "EvaluateAmodal": "Evaluate Amodal Masks",
}

NODE_DISPLAY_NAME_MAPPINGS = {name: f"{what} ({PACK})" for name, what in _NAMES.items()}


def display_name(class_type: str) -> str:
    """The name the canvas shows for a node of ``class_type`` that has no title of its own."""
    return NODE_DISPLAY_NAME_MAPPINGS.get(class_type, class_type)

