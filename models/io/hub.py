"""Finding checkpoints in model folders and downloading the published ones (huggingface_hub)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ..engine.loading import COMPONENTS

logger = logging.getLogger(__name__)

HF_OWNER = "kaihuac"
AMODAL_SEGMENTATION = "diffusion-vas-amodal-segmentation"
CONTENT_COMPLETION = "diffusion-vas-content-completion"
PUBLISHED = (AMODAL_SEGMENTATION, CONTENT_COMPLETION)


def is_checkpoint(folder: Path) -> bool:
    """True for a folder with ``model_index.json`` and every component folder."""
    return (folder / "model_index.json").is_file() and all((folder / name).is_dir() for name in COMPONENTS)


def find_checkpoint(name: str, folders: list[Path]) -> Path:
    """An absolute (or ``~``) path, or a folder name inside ``folders``; published names download into ``folders[0]``."""
    path = Path(name).expanduser()
    if path.is_absolute() or path.exists():
        if not is_checkpoint(path):
            raise FileNotFoundError(
                f"model: {path} is not a Diffusion-VAS checkpoint folder (it needs model_index.json and "
                f"{', '.join(COMPONENTS)}); give the folder that contains them."
            )
        return path
    for folder in folders:
        if is_checkpoint(folder / name):
            return folder / name
    if name in PUBLISHED:
        return download_snapshot(f"{HF_OWNER}/{name}", folders[0] / name, is_checkpoint)
    raise FileNotFoundError(
        f"model: {name!r} is not a checkpoint folder in {', '.join(str(f) for f in folders)}; put it there, give a "
        f"path, or use one of {', '.join(PUBLISHED)} (downloaded on first use)."
    )


def download_snapshot(repo_id: str, target: Path, is_complete: Callable[[Path], bool]) -> Path:
    """Downloads the JSON and safetensors files of ``repo_id`` into ``target`` (resumes; console progress)."""
    from huggingface_hub import snapshot_download

    logger.info("Downloading %s to %s", repo_id, target)
    try:
        snapshot_download(repo_id, local_dir=str(target), allow_patterns=["*.json", "*.safetensors"])
    except Exception as err:  # network, authentication, disk: all end the same way for the user
        raise RuntimeError(
            f"Downloading {repo_id} into {target} failed ({err}). Check the connection and disk space, or "
            f"download it yourself: huggingface-cli download {repo_id} --local-dir {target}"
        ) from err
    if not is_complete(target):
        raise RuntimeError(f"The download of {repo_id} into {target} is incomplete; run it again.")
    return target
