"""Imports this checkout as the package ``diffusion_vas`` (for scripts and tests run from the repository).

The checkout is loaded even when another copy of the pack is installed, so a script always runs the code beside it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def import_pack(name: str = "diffusion_vas"):
    """Returns the pack module, loading this checkout under ``name`` the first time."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py",
                                                      submodule_search_locations=[str(REPO)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    importlib.import_module(f"{name}.models")
    return sys.modules[name]


def size_arg(text: str) -> tuple[int, int]:
    """``"HxW"`` -> ``(H, W)``, for argparse."""
    import argparse

    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 256x512, got {text!r}") from err
    return height, width
