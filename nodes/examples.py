"""Makes the example clips shipped in ``example_clips/`` usable from a fresh ComfyUI, so the shipped workflows run as-is.

For each clip ``example_clips/<clip>/`` (``rgb/*.png`` frames, ``modal/*.png`` masks, ...), when absent:

* the clip folder is copied to ``<input>/diffusion_vas_examples/<clip>/`` (read by ``LoadModalMasks``);
* its ``rgb/`` frames are encoded as ``<input>/diffusion_vas_<clip>.mp4`` (H.264, for core ``LoadVideo``).

Runs the first time ComfyUI asks for ``LoadModalMasks``' inputs (never at import); outside ComfyUI (tests,
scripts) it does nothing. Files the
user already has are never overwritten; a failure is logged and never stops the pack from loading.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..models import read_frames
from ..models import write_animation
from ..models import get_host

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "example_clips"
INPUT_SUBFOLDER = "diffusion_vas_examples"
VIDEO_PREFIX = "diffusion_vas_"
VIDEO_FPS = 8


def example_video_name(clip: str) -> str:
    """File name of a clip's video in ComfyUI's input folder."""
    return f"{VIDEO_PREFIX}{clip}.mp4"


def example_folder(clip: str, kind: str) -> str:
    """A clip's sub-folder (``modal``, ``amodal``, ...) relative to ComfyUI's input folder."""
    return f"{INPUT_SUBFOLDER}/{clip}/{kind}"


def encode_video(frames_folder: Path, target: Path, fps: int = VIDEO_FPS) -> None:
    """Encodes a folder of frames as an H.264 mp4, written to a temporary name first."""
    partial = target.with_name(f"{target.stem}.partial{target.suffix}")
    write_animation(partial, read_frames(frames_folder), fps, crf=12)
    partial.replace(target)


_installed: set[Path] = set()


def install_examples() -> None:
    """Places every example clip in ComfyUI's input folder (see the module docstring); once per input folder."""
    input_dir = get_host().input_directory()
    if input_dir is None or input_dir in _installed or not EXAMPLES_DIR.is_dir():
        return
    _installed.add(input_dir)
    for clip in sorted(p for p in EXAMPLES_DIR.iterdir() if (p / "rgb").is_dir()):
        folder, video = input_dir / INPUT_SUBFOLDER / clip.name, input_dir / example_video_name(clip.name)
        try:
            if not folder.exists():
                shutil.copytree(clip, folder)
                logger.info("Diffusion-VAS: example clip copied to %s", folder)
            if not video.exists():
                encode_video(clip / "rgb", video)
                logger.info("Diffusion-VAS: example video written to %s", video)
        except Exception as err:  # an optional convenience must never keep the nodes from loading
            logger.warning("Diffusion-VAS: could not place the example clip %s in %s (%s); the example workflows "
                           "need it.", clip.name, input_dir, err)
