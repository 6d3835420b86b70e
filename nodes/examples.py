"""Makes the example clips shipped in ``example_clips/`` usable from a fresh ComfyUI, so the shipped workflows run as-is.

For each clip ``example_clips/<clip>/`` (``rgb/*.png`` frames, ``modal/*.png`` masks, ...), when absent:

* the clip folder is copied to ``<input>/diffusion_vas_examples/<clip>/`` (read by ``LoadModalMasks``);
* its ``rgb/`` frames are encoded as ``<input>/diffusion_vas_<clip>.mp4`` (H.264, for core ``LoadVideo``).

`install_examples` runs once, when the pack is loaded inside ComfyUI (``nodes/__init__.py``), never while nodes are
listed. It must run then, not at a node's first use: core ``LoadVideo``'s ``file`` is a combo of the files in the
input folder, built when ``/object_info`` lists the nodes, so the example MP4 must be there before the first listing
for the shipped workflows' ``diffusion_vas_<clip>.mp4`` to be one of its options. Outside ComfyUI (tests, scripts,
the command line) the host has no input folder and it does nothing.

When the targets exist it only looks at them (one ``stat`` each: nothing is read, hashed or decoded), so a start
after the first costs nothing; a first start copies the clip and encodes its frames (timed by
``benchmarks/benchmark_listing.py``). Files the user already has are never overwritten, and a
target the user deleted is placed again at the next start. Each target is written under a temporary name and then
renamed, so an interrupted start leaves no half-written example behind. A failure (no PyAV, a read-only input
folder) is logged as a warning and never stops the pack from loading.
"""

from __future__ import annotations

import logging
import os
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
PARTIAL = ".partial"  # suffix of a target being written


def example_video_name(clip: str) -> str:
    """File name of a clip's video in ComfyUI's input folder."""
    return f"{VIDEO_PREFIX}{clip}.mp4"


def example_folder(clip: str, kind: str) -> str:
    """A clip's sub-folder (``modal``, ``amodal``, ...) relative to ComfyUI's input folder."""
    return f"{INPUT_SUBFOLDER}/{clip}/{kind}"


def encode_video(frames_folder: Path, target: Path, fps: int = VIDEO_FPS) -> None:
    """Encodes a folder of frames as an H.264 mp4, written to a temporary name first (removed if encoding fails)."""
    partial = target.with_name(f"{target.stem}{PARTIAL}{target.suffix}")
    try:
        write_animation(partial, read_frames(frames_folder), fps, crf=12)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def copy_clip(clip: Path, target: Path) -> None:
    """Copies a clip folder to ``target`` through a temporary folder beside it, renamed when complete."""
    partial = target.with_name(target.name + PARTIAL)
    if partial.exists():  # left by an interrupted start: it is ours, and incomplete
        shutil.rmtree(partial)
    try:
        shutil.copytree(clip, partial)
        os.replace(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


_checked: set[Path] = set()  # input folders whose examples this process has already placed or found


def install_examples() -> None:
    """Places every example clip that is absent in ComfyUI's input folder (see the module docstring).

    Looks once per input folder and process; never raises (a failure is logged as a warning)."""
    try:
        input_dir = get_host().input_directory()
        if input_dir is None or input_dir in _checked:
            return
        _checked.add(input_dir)
        clips = sorted(p for p in EXAMPLES_DIR.iterdir() if (p / "rgb").is_dir()) if EXAMPLES_DIR.is_dir() else []
    except Exception as err:  # an optional convenience must never keep the nodes from loading
        logger.warning("Diffusion-VAS: could not look for ComfyUI's input folder to place the example clips (%s); "
                       "the example workflows need them.", err)
        return
    for clip in clips:
        folder, video = input_dir / INPUT_SUBFOLDER / clip.name, input_dir / example_video_name(clip.name)
        try:
            if not folder.exists():
                folder.parent.mkdir(parents=True, exist_ok=True)
                copy_clip(clip, folder)
                logger.info("Diffusion-VAS: example clip copied to %s", folder)
            if not video.exists():
                encode_video(clip / "rgb", video)
                logger.info("Diffusion-VAS: example video written to %s", video)
        except Exception as err:  # an optional convenience must never keep the nodes from loading
            logger.warning("Diffusion-VAS: could not place the example clip %s in %s (%s); the example workflows "
                           "need it.", clip.name, input_dir, err)
