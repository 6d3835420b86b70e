"""The oldest ComfyUI the pack runs in, and the one-line refusal an older one gets at load.

0.8.0 is the oldest ComfyUI the shipped workflows are run in by the integration test; the pack's VIDEO outputs
implement ComfyUI's ``VideoInput`` as 0.8.0 and later define it, imported from the ``comfy_api.v0_0_2`` API,
which older versions lack. ``pyproject.toml``'s ``[tool.comfy] requires-comfyui`` states the same floor for the
registry (a test keeps them equal).
"""

from __future__ import annotations

import re

MIN_COMFYUI = "0.8.0"


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.33.0"`` -> ``(0, 33, 0)``; anything after the numbers (``"0.9.1rc1"``, ``"+local"``) is ignored."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    if not match:
        raise ValueError(f"not a version number: {version!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def running_comfyui_version() -> str | None:
    """The running ComfyUI's version (its ``comfyui_version.py``), or None where that file does not exist (ComfyUI
    before 0.3.2x)."""
    try:
        import comfyui_version  # type: ignore  # ComfyUI's root, on sys.path inside ComfyUI
    except ImportError:
        return None
    return str(getattr(comfyui_version, "__version__", "")) or None


def version_problem(found: str | None) -> str | None:
    """The line to log when ComfyUI ``found`` is older than `MIN_COMFYUI` (None when it is new enough)."""
    if found is not None:
        try:
            if version_tuple(found) >= version_tuple(MIN_COMFYUI):
                return None
        except ValueError:
            return None  # a version this pack cannot read is a newer scheme, not an older ComfyUI
    return (f"Diffusion-VAS needs ComfyUI {MIN_COMFYUI} or newer, but this ComfyUI is "
            f"{found or 'one without comfyui_version.py (older still)'}: update ComfyUI (Manager: Update "
            "ComfyUI, or git pull in its folder); the pack's nodes are not loaded.")
