"""Downloading published models from the Hugging Face Hub (huggingface_hub)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ..base.errors import PackError

logger = logging.getLogger(__name__)


def download_snapshot(repo_id: str, target: Path, is_complete: Callable[[Path], bool]) -> Path:
    """Downloads the JSON and safetensors files of ``repo_id`` into ``target`` (resumes; console progress)."""
    from huggingface_hub import snapshot_download

    logger.info("Downloading %s to %s", repo_id, target)
    try:
        snapshot_download(repo_id, local_dir=str(target), allow_patterns=["*.json", "*.safetensors"])
    except Exception as err:  # network, authentication, disk: all end the same way for the user
        raise PackError(
            f"Downloading {repo_id} into {target} failed ({err}). Check the connection and disk space, or "
            f"download it yourself: {download_command(repo_id, target)}"
        ) from err
    if not is_complete(target):
        raise PackError(f"The download of {repo_id} into {target} is incomplete; run it again "
                           f"({download_command(repo_id, target)}).")
    return target


def download_command(repo_id: str, target: Path) -> str:
    """The shell command that downloads ``repo_id`` by hand (huggingface_hub's ``hf`` command)."""
    return f"hf download {repo_id} --include '*.json' '*.safetensors' --local-dir {target}"
