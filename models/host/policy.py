"""Host services: where models live, which device and precision to use, progress and cancellation.

The engine, the command line and the nodes ask one `Host` object (`get_host()`). The plain host serves scripts and
the CLI: model folders under ``$DIFFUSION_VAS_MODELS_DIR/<kind>`` (default ``~/.cache/diffusion-vas``), CUDA when
available, a log line every tenth of a long job. Inside ComfyUI, ``nodes/comfy_bridge.py`` installs a subclass that
answers with ComfyUI's services (registered model folders, model management, progress bar with Cancel) through
`set_host`; nothing here imports ComfyUI.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import torch

from ..base.memory import free_memory

logger = logging.getLogger(__name__)

MODELS_ENV = "DIFFUSION_VAS_MODELS_DIR"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_FIXED = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

Progress = Callable[[int, int], None]
"""``progress(done, total)``; may raise to cancel (ComfyUI's Cancel button)."""


class Host:
    """The plain host (scripts, the command line, tests)."""

    def model_folders(self, kind: str) -> list[Path]:
        """Folders holding models of ``kind`` (``diffusion_vas``, ``depthanything``); downloads go to the first."""
        base = Path(os.environ.get(MODELS_ENV, Path.home() / ".cache" / "diffusion-vas")).expanduser()
        return [base / kind]

    def input_directory(self) -> Path | None:
        """Where relative input folders are found (ComfyUI's input folder); None: the working directory."""
        return None

    def torch_device(self) -> torch.device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def offload_device(self) -> torch.device:
        return torch.device("cpu")

    def free_memory(self, device: torch.device) -> int | None:
        """Bytes a new allocation on ``device`` can still get (`base.memory.free_memory`); None where unknown."""
        return free_memory(device)

    def half_dtype(self, device: torch.device) -> torch.dtype:
        """The half precision ``auto`` picks on an accelerator (bf16 where supported, else fp16)."""
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if device.type == "cuda" else torch.float32

    def progress(self, total: int, label: str) -> Progress:
        """A ``progress(done, total)`` callback: a log line every tenth of the way."""
        return _LogProgress(total, label)

    def check_interrupted(self) -> None:
        """Raises when the user asked to stop (only ComfyUI has a Cancel button)."""

    def empty_cache(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def resolve_dtype(precision: str, device: torch.device | str, host: Host | None = None) -> torch.dtype:
    """``auto``/``fp32``/``fp16``/``bf16`` -> dtype; ``auto`` is fp32 on the CPU and the host's choice elsewhere."""
    if precision in _FIXED:
        return _FIXED[precision]
    if precision != "auto":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    device = torch.device(device)
    return torch.float32 if device.type == "cpu" else (host or get_host()).half_dtype(device)


def resolve_device(name: str = "auto", host: Host | None = None) -> torch.device:
    """``auto`` (the host's compute device), ``cpu``, ``cuda``, ``cuda:1``, ... -> a device that exists."""
    if name == "auto":
        return (host or get_host()).torch_device()
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N.") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available in this torch build; use --device cpu or auto.")
    return device


class _LogProgress:
    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = max(int(total), 1), label, 0

    def __call__(self, done: int, total: int | None = None) -> None:
        step = max(self.total // 10, 1)
        previous, self.done = self.done, min(done, self.total)
        if self.done // step != previous // step or self.done == self.total:
            logger.info("%s: %d/%d", self.label, self.done, self.total)


_host: Host = Host()


def get_host() -> Host:
    """The host in use (the plain one unless ComfyUI's bridge installed its own)."""
    return _host


def set_host(host: Host) -> None:
    global _host
    _host = host
