"""The nodes' ``INPUT_TYPES``, generated from the settings' declarations (`models.settings`) and the sockets
(`Link`) a node lists: ComfyUI's classic (V1) input format, in the order given."""

from __future__ import annotations

from typing import Sequence

from ..models.settings import COMBO, Link, Setting

ADVANCED = {"advanced": True}  # the front end's flag for rarely changed widgets (see `comfy_input`)

Input = Setting | Link


def comfy_input(item: Input, stage: str | None = None) -> tuple:
    """One input as ComfyUI declares it: ``(type or choices, {default, min, max, step, tooltip, ...})``.

    Rarely changed widgets carry ``advanced`` (the front end's input schema has it: its node renderer can keep them
    out of sight behind "Show Advanced"; ComfyUI 0.8's canvas, front end 1.35.9, still draws them all). They stay
    inputs like any other, saved in the workflow in the same order, so saved workflows load unchanged.
    """
    if isinstance(item, Link):
        return item.type, ({"tooltip": item.help} if item.help else {})
    options = {}
    default = item.default_for(stage)
    if default is not None:
        options["default"] = default
    for key, value in (("min", item.minimum), ("max", item.maximum), ("step", item.step)):
        if value is not None:
            options[key] = value
    options.update(item.widget)
    if item.advanced:
        options.update(ADVANCED)
    if item.help:
        options["tooltip"] = item.help
    return (item.choices_now() if item.type == COMBO else item.type), options


def node_inputs(required: Sequence[Input], optional: Sequence[Input] = (), hidden: dict | None = None,
                stage: str | None = None) -> dict:
    """A node's ``INPUT_TYPES()``; ``stage`` picks the defaults of settings that differ per stage (the seed)."""
    declared = {"required": {item.name: comfy_input(item, stage) for item in required}}
    if optional:
        declared["optional"] = {item.name: comfy_input(item, stage) for item in optional}
    if hidden:
        declared["hidden"] = hidden
    return declared
