"""Test setup: imports the repository root as the package ``diffusion_vas`` and locates ``../shared``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DIFFUSION_VAS_SHARED", REPO.parent / "shared"))
PARITY = SHARED / "parity"


sys.path.insert(0, str(REPO / "benchmarks"))
from _repo import import_pack  # noqa: E402  (installed package, or this checkout as ``diffusion_vas``)

import_pack()

needs_parity = pytest.mark.skipif(not PARITY.is_dir(), reason=f"parity fixtures not found at {PARITY}")


@pytest.fixture(scope="session")
def parity_case():
    if not PARITY.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY}")
    from safetensors import safe_open

    with safe_open(str(PARITY / "case.safetensors"), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        tensors["__metadata__"] = f.metadata()
    return tensors


@pytest.fixture(scope="session")
def stage1_pipe():
    if not PARITY.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY}")
    from diffusion_vas.models import load_pipeline

    return load_pipeline(PARITY / "tiny-amodal-segmentation")


@pytest.fixture(scope="session")
def stage2_pipe():
    if not PARITY.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY}")
    from diffusion_vas.models import load_pipeline

    return load_pipeline(PARITY / "tiny-content-completion")
