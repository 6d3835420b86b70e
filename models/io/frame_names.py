"""Writing result frames fast and findable: PNGs in parallel, named after the source frames.

Writing a 720p clip's results one PNG at a time at Pillow's default compression took about 40 s per object.
`write_named_pngs` writes them from a thread pool (Pillow's encoder releases the GIL) at a fast compression
level, and names each file after the source frame it belongs to (the image's name in a folder of frames, or the
frame index in a video), so ``--start``/``--every`` keep the link between results and footage.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

from .media import image_files, select_range

PNG_COMPRESS_LEVEL = 1  # zlib level 1: several times faster than Pillow's default 6, files ~10-20% larger


def source_frame_names(source, start: int, count: int, step: int, frames: int) -> list[str]:
    """Names for ``frames`` result frames: the stems of the images a folder read gave (natural order, the same
    ``start``/``count``/``step`` selection), or the zero-padded source frame index for a video."""
    path = Path(source).expanduser()
    if path.is_dir():
        names = [p.stem for p in select_range(image_files(path), start, count, step, f"images in {path}")]
    else:
        names = [f"{start + i * step:05d}" for i in range(frames)]
    if len(names) != frames:
        raise ValueError(f"{path} gives {len(names)} frame names for {frames} frames; read the frames again.")
    return names


def write_named_pngs(folder: Path, frames: torch.Tensor, names: list[str], workers: int | None = None) -> list[Path]:
    """Writes uint8 ``[T, H, W(, 3)]`` frames as ``folder/<name>.png`` from a thread pool."""
    if len(names) != frames.shape[0]:
        raise ValueError(f"{len(names)} names for {frames.shape[0]} frames.")
    folder.mkdir(parents=True, exist_ok=True)
    arrays = frames.cpu().numpy()
    paths = [folder / f"{name}.png" for name in names]

    def save(index: int) -> None:
        Image.fromarray(arrays[index]).save(paths[index], compress_level=PNG_COMPRESS_LEVEL)

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(save, range(len(paths))))  # list(): an exception in a worker is raised here
    return paths


def check_output_folder(folder: Path, overwrite: bool) -> None:
    """Refuses a non-empty output folder unless ``overwrite`` (results of another run would mix with these)."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"the output folder {folder} is not empty; choose another --out or pass --overwrite.")
