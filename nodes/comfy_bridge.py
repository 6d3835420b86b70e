"""ComfyUI services when ComfyUI is present, plain fallbacks when it is not (tests, scripts).

Everything the nodes need from ComfyUI goes through here: model folders, the torch device and precision,
model placement through ``ModelPatcher``, progress bars (which also deliver Cancel), and cache clearing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

try:  # ComfyUI is importable only inside a running ComfyUI.
    import folder_paths  # type: ignore
    import comfy.model_management as model_management  # type: ignore
    import comfy.utils as comfy_utils  # type: ignore
    from comfy.model_patcher import ModelPatcher  # type: ignore
    HAS_COMFY = True
except ImportError:
    folder_paths = model_management = comfy_utils = ModelPatcher = None
    HAS_COMFY = False

MODELS_ENV = "DIFFUSION_VAS_MODELS_DIR"
"""Without ComfyUI, model folders live under ``$DIFFUSION_VAS_MODELS_DIR/<kind>`` (default ``~/.cache/diffusion-vas``)."""


def register_model_folder(kind: str) -> None:
    """Registers ``ComfyUI/models/<kind>`` without dropping folders from ``extra_model_paths.yaml``."""
    if HAS_COMFY:
        folder_paths.add_model_folder_path(kind, os.path.join(folder_paths.models_dir, kind))


def model_folders(kind: str) -> list[Path]:
    """All folders registered for ``kind``; the first is where downloads go."""
    if HAS_COMFY:
        try:
            return [Path(p) for p in folder_paths.get_folder_paths(kind)]
        except KeyError:
            register_model_folder(kind)
            return [Path(p) for p in folder_paths.get_folder_paths(kind)]
    base = Path(os.environ.get(MODELS_ENV, Path.home() / ".cache" / "diffusion-vas")).expanduser()
    return [base / kind]


def input_directory() -> Path | None:
    """ComfyUI's input folder, or None outside ComfyUI."""
    return Path(folder_paths.get_input_directory()) if HAS_COMFY else None


def torch_device() -> torch.device:
    if HAS_COMFY:
        return model_management.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def offload_device() -> torch.device:
    return model_management.unet_offload_device() if HAS_COMFY else torch.device("cpu")


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Maps a precision choice to a dtype; ``auto`` asks ComfyUI (fp32 on the CPU)."""
    fixed = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision in fixed:
        return fixed[precision]
    if precision != "auto":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if device.type == "cpu":
        return torch.float32
    if HAS_COMFY:
        if model_management.should_use_bf16(device):
            return torch.bfloat16
        if model_management.should_use_fp16(device):
            return torch.float16
        return torch.float32
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else torch.float32


class ProgressReporter:
    """ComfyUI progress bar (its hook also raises on Cancel) or a log line every tenth of the way."""

    def __init__(self, total: int, label: str = "Diffusion-VAS"):
        self.total, self.label, self.done = max(int(total), 1), label, 0
        self._bar = comfy_utils.ProgressBar(self.total) if HAS_COMFY else None

    def __call__(self, done: int, total: int) -> None:
        self.update_absolute(done)

    def update_absolute(self, done: int) -> None:
        step = max(self.total // 10, 1)
        previous, self.done = self.done, min(done, self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.done, self.total)
        elif self.done // step != previous // step or self.done == self.total:
            logger.info("%s: %d/%d", self.label, self.done, self.total)
        check_interrupted()


def check_interrupted() -> None:
    """Raises ComfyUI's interrupt exception when the user pressed Cancel."""
    if HAS_COMFY:
        model_management.throw_exception_if_processing_interrupted()


def soft_empty_cache() -> None:
    if HAS_COMFY:
        model_management.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


class ModuleBundle(torch.nn.Module):
    """Container for diffusers/transformers modules so ``ModelPatcher`` can set ``.device`` on it."""

    def __init__(self, **modules: torch.nn.Module):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)


class ManagedModels:
    """Places a set of modules on the compute device through ComfyUI's model management when present."""

    def __init__(self, modules: dict[str, torch.nn.Module], load_device: torch.device):
        self.load_device, self.offload_device = load_device, offload_device()
        self.bundle = ModuleBundle(**modules)
        self.patcher = ModelPatcher(self.bundle, load_device, self.offload_device) if HAS_COMFY else None

    def load(self) -> torch.device:
        """Moves the modules to the compute device (ComfyUI may first unload other models); returns it."""
        if self.patcher is not None:
            model_management.load_models_gpu([self.patcher], force_full_load=True)
        else:
            self.bundle.to(self.load_device)
        return self.load_device

    def release(self) -> None:
        """Without ComfyUI, keeps the models where they are (ComfyUI decides this itself when present)."""
        soft_empty_cache()
