"""ComfyUI's services for the engine, and model placement through ComfyUI's model management.

Inside ComfyUI, `ComfyHost` answers the engine's host questions (`models.host.Host`) with ComfyUI's: registered
model folders (``extra_model_paths.yaml`` included), the torch device and precision model management recommends,
its progress bar (whose hook also raises on Cancel) and its cache clearing. `install` makes it the engine's host.
Outside ComfyUI (tests, scripts) nothing is installed and the plain host serves the nodes too.

`managed` places a set of modules on the compute device for one node call: through ``ModelPatcher`` inside
ComfyUI (which unloads other models when VRAM is short), by ``.to(device)`` outside it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from ..models.host import Host, get_host, set_host

try:  # ComfyUI is importable only inside a running ComfyUI.
    import folder_paths  # type: ignore
    import comfy.model_management as model_management  # type: ignore
    import comfy.utils as comfy_utils  # type: ignore
    from comfy.model_patcher import ModelPatcher  # type: ignore
    HAS_COMFY = True
except ImportError:
    folder_paths = model_management = comfy_utils = ModelPatcher = None
    HAS_COMFY = False


class ComfyHost(Host):
    """The engine's host answered by ComfyUI."""

    def register_model_folder(self, kind: str) -> None:
        """Registers ``ComfyUI/models/<kind>`` without dropping folders from ``extra_model_paths.yaml``."""
        folder_paths.add_model_folder_path(kind, os.path.join(folder_paths.models_dir, kind))

    def model_folders(self, kind: str) -> list[Path]:
        try:
            return [Path(p) for p in folder_paths.get_folder_paths(kind)]
        except KeyError:
            self.register_model_folder(kind)
            return [Path(p) for p in folder_paths.get_folder_paths(kind)]

    def input_directory(self) -> Path | None:
        return Path(folder_paths.get_input_directory())

    def torch_device(self) -> torch.device:
        return model_management.get_torch_device()

    def offload_device(self) -> torch.device:
        return model_management.unet_offload_device()

    def half_dtype(self, device: torch.device) -> torch.dtype:
        if model_management.should_use_bf16(device):
            return torch.bfloat16
        if model_management.should_use_fp16(device):
            return torch.float16
        return torch.float32

    def progress(self, total: int, label: str):
        bar = comfy_utils.ProgressBar(max(int(total), 1))

        def update(done: int, total_: int | None = None) -> None:
            bar.update_absolute(done, max(int(total), 1))
            self.check_interrupted()

        return update

    def check_interrupted(self) -> None:
        model_management.throw_exception_if_processing_interrupted()

    def empty_cache(self) -> None:
        model_management.soft_empty_cache()


def install(model_kinds: tuple[str, ...]) -> None:
    """Inside ComfyUI: makes `ComfyHost` the engine's host and registers the pack's model folders."""
    if HAS_COMFY and not isinstance(get_host(), ComfyHost):
        host = ComfyHost()
        for kind in model_kinds:
            host.register_model_folder(kind)
        set_host(host)


class ModuleBundle(torch.nn.Module):
    """Container for diffusers/transformers modules so ``ModelPatcher`` can set ``.device`` on it."""

    def __init__(self, **modules: torch.nn.Module):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)


class ManagedModels:
    """A set of modules placed on the compute device for each node call (see `managed`)."""

    def __init__(self, modules: dict[str, torch.nn.Module], load_device: torch.device):
        self.load_device, self.offload_device = load_device, get_host().offload_device()
        self.bundle = ModuleBundle(**modules)
        self.patcher = ModelPatcher(self.bundle, load_device, self.offload_device) if HAS_COMFY else None

    @contextlib.contextmanager
    def managed(self):
        """Loads the modules on the compute device (ComfyUI may first unload other models), yields the device,
        and afterwards lets the host free cached memory (ComfyUI decides itself when to move models off)."""
        if self.patcher is not None:
            model_management.load_models_gpu([self.patcher], force_full_load=True)
        else:
            self.bundle.to(self.load_device)
        try:
            yield self.load_device
        finally:
            get_host().empty_cache()
