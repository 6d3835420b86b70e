"""ComfyUI's services for the engine, and model placement through ComfyUI's model management.

Inside ComfyUI, `ComfyHost` answers the engine's host questions (`models.host.Host`) with ComfyUI's: registered
model folders (``extra_model_paths.yaml`` included), the torch device and precision model management recommends,
its progress bar (whose hook also raises on Cancel) and its cache clearing. `install` makes it the engine's host.
Outside ComfyUI (tests, scripts) nothing is installed and the plain host serves the nodes too.

`managed` places a set of modules on the compute device for one node call: through ``ModelPatcher`` inside
ComfyUI (which unloads other models when VRAM is short), by ``.to(device)`` outside it, after moving other
bundles back to the CPU while VRAM is short. Modules two models share (the stages' common VAE and image encoder)
form a set of their own, one patcher for both models.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from pathlib import Path

import torch

from ..models import Host, get_host, set_host

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

    def free_memory(self, device: torch.device) -> int | None:
        return int(model_management.get_free_memory(device))

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
    """A set of modules placed on the compute device for each node call (see `managed`), with the sets it shares
    with other models (``shared``: e.g. a VAE and an image encoder two checkpoints both use), which are placed with
    it. A shared set is one object in every model using it (one ``ModelPatcher``), so model management counts,
    places and offloads its weights once, whichever model asks."""

    def __init__(self, modules: dict[str, torch.nn.Module], load_device: torch.device,
                 shared: "list[ManagedModels] | tuple" = ()):
        self.load_device, self.offload_device = load_device, get_host().offload_device()
        self.bundle = ModuleBundle(**modules)
        self.patcher = ModelPatcher(self.bundle, load_device, self.offload_device) if HAS_COMFY else None
        self.shared = list(shared)

    @property
    def group(self) -> "list[ManagedModels]":
        """This set and the shared ones: what one call places."""
        return [self, *self.shared]

    @contextlib.contextmanager
    def managed(self, memory_required: int = 0):
        """Loads the modules (and the shared sets) on the compute device, yields the device, and afterwards lets the
        host free cached memory.

        ``memory_required``: bytes the call needs beyond the weights (`engine.runtime.sampling_bytes`). Inside
        ComfyUI, its model management unloads other models until the weights and that much fit (``load_models_gpu``
        frees the weights to load x 1.1 plus ``memory_required`` plus its reserve, in 0.8 and 0.33 alike) and
        decides itself when to move these off again. Outside it, sets this process placed on the same accelerator
        are moved back to the offload device, least recently used first, while the free memory is short
        (`_make_room`).
        """
        if self.patcher is not None:
            model_management.load_models_gpu([part.patcher for part in self.group], memory_required=memory_required,
                                             force_full_load=True)
        else:
            _make_room(self, memory_required)
            for part in self.group:
                part.bundle.to(part.load_device)
                _note_resident(part)
        try:
            yield self.load_device
        finally:
            get_host().empty_cache()

    def bytes_to_load(self) -> int:
        """Bytes of this set's weights not on the compute device yet."""
        tensors = list(self.bundle.parameters()) + list(self.bundle.buffers())
        return sum(t.numel() * t.element_size() for t in tensors if t.device != self.load_device)

    def offload(self) -> None:
        self.bundle.to(self.offload_device)


_resident: list[weakref.ref] = []  # plain host: bundles placed on an accelerator, least recently used first


def _note_resident(bundle: ManagedModels) -> None:
    if bundle.load_device.type == "cpu":
        return
    _resident[:] = [ref for ref in _resident if ref() is not None and ref() is not bundle]
    _resident.append(weakref.ref(bundle))


def _make_room(bundle: ManagedModels, memory_required: int) -> None:
    """Outside ComfyUI: offloads other resident bundles of ``bundle``'s device, oldest first, until its weights
    (its shared sets' included) plus ``memory_required`` bytes fit in the free memory (`Host.free_memory`); warns
    when they still do not."""
    device, host = bundle.load_device, get_host()
    if device.type == "cpu":
        return
    group = bundle.group
    need = sum(part.bytes_to_load() for part in group) + memory_required
    for ref in list(_resident):
        other = ref()
        if other is None or any(other is part for part in group) or other.load_device != device:
            continue
        free = host.free_memory(device)
        if free is None or free >= need:
            break
        logger.info("Diffusion-VAS: %.2f GiB free on %s, %.2f GiB needed: moving %s to %s", free / 2**30, device,
                    need / 2**30, ", ".join(name for name, _ in other.bundle.named_children()), other.offload_device)
        other.offload()
        _resident.remove(ref)
        host.empty_cache()
    free = host.free_memory(device)
    if free is not None and free < need:
        logger.warning("Diffusion-VAS: %.2f GiB free on %s but about %.2f GiB needed; the call may run out of "
                       "memory (lower object_batch_size, decode_chunk_size or the processing size).",
                       free / 2**30, device, need / 2**30)
