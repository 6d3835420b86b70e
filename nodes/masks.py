"""The ``LoadModalMasks`` node: a folder of mask images -> MASK.

Mask files are taken in natural name order and read by `models.io.mask_files`: palette PNGs and 16/32-bit label
images carry object ids; 8-bit grayscale, RGB and 1-bit images are binary masks (on above 127) unless the
brightest value in the folder is below 128 (a grayscale label image).

The first time ComfyUI asks for this node's inputs, the shipped example clips are placed in its input folder
(`examples.install_examples`), so the default folder works in a fresh install.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from ..models.stages.conditions import resize_masks_nearest
from ..models.io.mask_files import load_mask_values, select_object
from ..models.io.media import IMAGE_EXTENSIONS, image_files, select_range
from ..models.host import get_host
from .examples import example_folder, install_examples

logger = logging.getLogger(__name__)

EXAMPLE_MASKS = example_folder("synthetic_occlusion", "modal")


def resolve_folder(folder: str) -> Path:
    """An absolute folder, or one relative to ComfyUI's input folder (the working directory outside ComfyUI)."""
    text = folder.strip()
    if not text:
        raise ValueError("folder: give a folder of mask images (relative to ComfyUI's input folder, or absolute).")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (get_host().input_directory() or Path.cwd()) / path
    if not path.is_dir():
        raise ValueError(f"folder: {path} is not a folder; give a folder of mask images (relative to ComfyUI's "
                         "input folder, or absolute).")
    return path


def select_files(folder: Path, start_frame: int, frame_count: int, every_nth: int) -> list[Path]:
    """The mask images of ``folder`` in natural name order, ``[start_frame::every_nth]`` limited to ``frame_count``."""
    files = image_files(folder)
    if not files:
        raise ValueError(f"folder: {folder} has no mask images ({', '.join(IMAGE_EXTENSIONS)}).")
    return select_range(files, start_frame, frame_count, every_nth, f"masks in {folder}")


class LoadModalMasks:
    DESCRIPTION = (
        "Loads a clip's visible (modal) object masks from a folder of images, one per frame: binary masks, or "
        "label/palette PNGs with several object ids (DAVIS, YouTube-VOS, SAM2 exports). Files are taken in "
        "natural name order."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "load"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("modal_masks",)
    OUTPUT_TOOLTIPS = ("Masks [frames, height, width], 1 where the selected object is visible.",)

    @classmethod
    def INPUT_TYPES(cls):
        install_examples()  # first use inside ComfyUI: the default folder must exist before a workflow validates
        return {
            "required": {
                "folder": ("STRING", {
                    "default": EXAMPLE_MASKS,
                    "tooltip": "Folder of mask images, relative to ComfyUI's input folder or absolute. The default "
                               "is the example clip the pack places in the input folder.",
                }),
                "object_id": ("INT", {
                    "default": 0, "min": 0, "max": 65535,
                    "tooltip": "Label/palette masks: the id of the object to load (palette index). 0: every "
                               "non-zero pixel, or the mask itself for binary masks.",
                }),
                "start_frame": ("INT", {
                    "default": 0, "min": 0, "max": 1_000_000,
                    "tooltip": "Index of the first file to load (in natural name order).",
                }),
                "frame_count": ("INT", {
                    "default": 0, "min": 0, "max": 1_000_000,
                    "tooltip": "How many masks to load; 0 loads all to the end. Match the frames of your video.",
                }),
                "every_nth": ("INT", {
                    "default": 1, "min": 1, "max": 1000,
                    "tooltip": "Take every n-th file (match the frame skip of your video loader).",
                }),
            },
            "optional": {
                "reference_images": ("IMAGE", {
                    "tooltip": "Video frames whose size the masks are resized to (nearest neighbour).",
                }),
            },
        }

    @classmethod
    def IS_CHANGED(cls, folder, start_frame=0, frame_count=0, every_nth=1, **_):
        """Hash of the names and bytes of the files the node would read."""
        digest = hashlib.sha256()
        for file in select_files(resolve_folder(folder), start_frame, frame_count, every_nth):
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
        return digest.hexdigest()

    def load(self, folder, object_id=0, start_frame=0, frame_count=0, every_nth=1, reference_images=None):
        path = resolve_folder(folder)
        files = select_files(path, start_frame, frame_count, every_nth)
        values, labels = load_mask_values(path, files)
        masks = torch.from_numpy(select_object(values, labels, object_id, path))
        if reference_images is not None:
            if reference_images.ndim != 4:
                raise ValueError(f"reference_images: expected an IMAGE [frames, height, width, 3], got "
                                 f"{tuple(reference_images.shape)}.")
            if reference_images.shape[0] not in (1, masks.shape[0]):
                logger.warning("LoadModalMasks: %d masks but %d reference images; check start, count and skip.",
                               masks.shape[0], reference_images.shape[0])
            masks = resize_masks_nearest(masks, tuple(reference_images.shape[1:3]))
        logger.info("LoadModalMasks: %d masks %dx%d from %s", masks.shape[0], masks.shape[2], masks.shape[1], path)
        return (masks.float(),)


NODE_CLASS_MAPPINGS = {"LoadModalMasks": LoadModalMasks}
NODE_DISPLAY_NAME_MAPPINGS = {"LoadModalMasks": "Load Modal Masks (Diffusion-VAS)"}
