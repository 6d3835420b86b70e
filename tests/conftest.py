"""Test setup: imports the repository root as the package ``diffusion_vas`` and locates ``../shared``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DIFFUSION_VAS_SHARED", REPO.parent / "shared"))
PARITY = SHARED / "parity"


def _import_repo_as_package(name: str = "diffusion_vas") -> None:
    if name in sys.modules:
        return
    try:  # installed with `pip install -e .`
        import diffusion_vas  # noqa: F401
        return
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_import_repo_as_package()

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
