"""Test setup: the installed package ``diffusion_vas`` (``pip install -e .``), ``../shared`` and the tiny models.

Tests that compare with the authors' golden outputs need ``../shared/parity`` and skip without it; everything
else runs on `TINY` (the parity fixtures' tiny checkpoints, or tiny random models built here when they are absent).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DIFFUSION_VAS_SHARED", REPO.parent / "shared"))
PARITY = SHARED / "parity"


try:
    import diffusion_vas  # noqa: F401
except ImportError:  # pragma: no cover - a setup mistake, said plainly
    pytest.exit("diffusion_vas is not installed: run `pip install -e \".[test]\"` in the repository first.", 4)
if Path(diffusion_vas.__file__).resolve().parent != REPO:
    pytest.exit(f"diffusion_vas is imported from {Path(diffusion_vas.__file__).parent}, not this checkout {REPO}: "
                "run `pip install -e .` here.", 4)

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import tiny_models  # noqa: E402

TINY = tiny_models(PARITY)

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
    from diffusion_vas.models import load_pipeline

    return load_pipeline(TINY.stage1)


@pytest.fixture(scope="session")
def stage2_pipe():
    from diffusion_vas.models import load_pipeline

    return load_pipeline(TINY.stage2)
