"""The one model resolver: Diffusion-VAS checkpoints and Depth Anything V2 models, by name or path.

A model is named by an absolute (or ``~``) path, by a folder or file name inside the host's model folders
(`Host.model_folders`), or by a published name that is downloaded on first use into the first model folder.
The CLI and the nodes both resolve through `resolve_model`; `check_obtainable` lets a job check every model it
will need before any heavy work starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..depth.checkpoint import OFFICIAL_SUFFIXES
from ..engine.loading import COMPONENTS
from ..host.policy import Host, get_host
from .hub import download_command, download_snapshot
from ..base.errors import PackError

AMODAL_SEGMENTATION = "diffusion-vas-amodal-segmentation"
CONTENT_COMPLETION = "diffusion-vas-content-completion"
STAGE_CHECKPOINTS = {"amodal": AMODAL_SEGMENTATION, "content": CONTENT_COMPLETION}  # stage -> published checkpoint
CHECKPOINT_WORDS = {"amodal": "segmentation", "content": "completion"}  # the word a stage's checkpoint names carry


def checkpoint_stage(name: str) -> str | None:
    """The stage (``"amodal"``, ``"content"``) a checkpoint's folder name tells (the published names do), else
    None."""
    lowered = Path(str(name)).name.lower()
    found = [stage for stage, word in CHECKPOINT_WORDS.items() if word in lowered]
    return found[0] if len(found) == 1 else None
DEPTH_MODELS = ("Depth-Anything-V2-Small-hf", "Depth-Anything-V2-Base-hf", "Depth-Anything-V2-Large-hf")
DEFAULT_DEPTH_MODEL = "Depth-Anything-V2-Large-hf"  # the authors' choice
DEPTH_LICENSES = {"Depth-Anything-V2-Small-hf": "Apache-2.0", "Depth-Anything-V2-Base-hf": "CC-BY-NC-4.0",
                  "Depth-Anything-V2-Large-hf": "CC-BY-NC-4.0"}
_SINGLE_FILE = re.compile(r"depth.?anything.?v2", re.IGNORECASE)


def is_checkpoint(path: Path) -> bool:
    """A Diffusion-VAS checkpoint: ``model_index.json`` and every component folder."""
    return (path / "model_index.json").is_file() and all((path / name).is_dir() for name in COMPONENTS)


def is_depth_model(path: Path) -> bool:
    """A Depth Anything V2 model: a transformers folder or an authors'-layout single file (not a metric model)."""
    if path.is_dir():
        return (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    return (path.is_file() and path.suffix in OFFICIAL_SUFFIXES and bool(_SINGLE_FILE.search(path.name))
            and "metric" not in path.name.lower())


@dataclass(frozen=True)
class ModelKind:
    """One kind of model: its folder name, how to recognise one, and the published names with their repos."""

    folder: str
    label: str
    is_model: Callable[[Path], bool]
    published: dict[str, str]
    requirement: str

    def describe(self, path: Path) -> str:
        return f"{path} is not a {self.label} ({self.requirement})."


DIFFUSION_VAS = ModelKind(
    "diffusion_vas", "Diffusion-VAS checkpoint folder", is_checkpoint,
    {name: f"kaihuac/{name}" for name in (AMODAL_SEGMENTATION, CONTENT_COMPLETION)},
    f"it needs model_index.json and {', '.join(COMPONENTS)}; give the folder that contains them",
)
DEPTH = ModelKind(
    "depthanything", "Depth Anything V2 model", is_depth_model,
    {name: f"depth-anything/{name}" for name in DEPTH_MODELS},
    "a transformers folder with config.json and model.safetensors, or a depth_anything_v2_vit*.pth/.safetensors "
    "file",
)


def available_models(kind: ModelKind, host: Host | None = None) -> list[str]:
    """The published names, then every model found in the host's folders for ``kind``."""
    host = host or get_host()
    found = [entry.name for folder in host.model_folders(kind.folder) if folder.is_dir()
             for entry in sorted(folder.iterdir()) if kind.is_model(entry)]
    return list(dict.fromkeys([*kind.published, *found]))


def locate_model(kind: ModelKind, name: str, host: Host | None = None) -> Path | None:
    """The model's path if it is on disk; None for a published name not downloaded yet.

    Raises:
        FileNotFoundError: a path that is not a model, or a name that is neither on disk nor published.
    """
    host = host or get_host()
    path = Path(name).expanduser()
    if path.is_absolute() or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"model: {path} does not exist; give an existing {kind.label}.")
        if not kind.is_model(path):
            raise FileNotFoundError(f"model: {kind.describe(path)}")
        return path
    folders = host.model_folders(kind.folder)
    for folder in folders:
        if kind.is_model(folder / name):
            return folder / name
    if name in kind.published:
        return None
    raise FileNotFoundError(
        f"model: {name!r} is not a {kind.label} in {', '.join(str(f) for f in folders)}; put it there, give a "
        f"path, or use one of {', '.join(kind.published)} (downloaded on first use)."
    )


def resolve_model(kind: ModelKind, name: str, host: Host | None = None) -> Path:
    """The model's path, downloading a published one into the first model folder on first use."""
    host = host or get_host()
    path = locate_model(kind, name, host)
    if path is not None:
        return path
    target = host.model_folders(kind.folder)[0] / name
    return download_snapshot(kind.published[name], target, kind.is_model)


def check_obtainable(kind: ModelKind, name: str, host: Host | None = None) -> str:
    """Checks before any heavy work that ``name`` is on disk or can be downloaded; says which.

    Raises:
        FileNotFoundError: not a model and not a published name.
        RuntimeError: a published name that is not on disk while the Hub cannot be reached (offline mode).
    """
    host = host or get_host()
    path = locate_model(kind, name, host)
    if path is not None:
        return f"{name}: {path}"
    target = host.model_folders(kind.folder)[0] / name
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise PackError(f"{name} is not in {target} and HF_HUB_OFFLINE is set; download it where there is a "
                           f"connection: {download_command(kind.published[name], target)}")
    return f"{name}: will download {kind.published[name]} into {target}"


def resolve_checkpoint(name: str, host: Host | None = None) -> Path:
    """A Diffusion-VAS checkpoint folder (see `resolve_model`)."""
    return resolve_model(DIFFUSION_VAS, name, host)


def resolve_depth_model(name: str, host: Host | None = None) -> Path:
    """A Depth Anything V2 folder or file (see `resolve_model`)."""
    return resolve_model(DEPTH, name, host)
