"""The ``LoadModalMasks`` node: a folder of mask images -> MASK.

Mask files are taken in natural name order and read by the engine's one mask reader (`models.io.mask_files`,
``mask_format`` auto / binary / labels): grey-level masks as the authors read them (grey level > 128), or
label/palette images whose values are object ids; ``auto`` decides per folder from evidence and logs why.

The default folder is the shipped example clip's masks, which the pack places in ComfyUI's input folder when it is
loaded (`examples.install_examples`, from ``nodes/__init__.py``); listing this node's inputs does no work beyond
building them.

Queueing a workflow calls `LoadModalMasks.IS_CHANGED`, which looks only at the names, sizes and modification times
of the folder's image files (one ``stat`` each; no file is read), as ComfyUI's own ``LoadVideo`` looks at a
modification time: a long shot's folder of masks is not read at every queue.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from ..models import settings as S
from ..models.settings import Link
from .inputs import node_inputs
from ..models import VideoFrames
from ..models import read_mask_files, read_mask_folder
from ..models import image_files
from ..models import chunks, to_float
from ..models import resize_masks_nearest
from ..models import get_host
from .bool_mask import as_mask
from .examples import example_folder
from .preflight import mask_count_hint
from .video import frame_sequence, is_video

logger = logging.getLogger(__name__)

EXAMPLE_MASKS = example_folder("synthetic_occlusion", "modal")


def resolve_folder(folder: str) -> Path:
    """An absolute folder, or one relative to ComfyUI's input folder (the working directory outside ComfyUI).

    Only the path is built here; `read_mask_folder` says whether it does not exist or is a file."""
    text = folder.strip()
    if not text:
        raise ValueError("folder: give a folder of mask images (relative to ComfyUI's input folder, or absolute).")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (get_host().input_directory() or Path.cwd()) / path
    return path


class LoadModalMasks:
    DESCRIPTION = (
        "Loads the masks of an object's visible part (modal masks) from a folder of images, one per frame: "
        "black-and-white masks, or label/palette PNGs with several object ids (DAVIS, YouTube-VOS, SAM2 exports). "
        "Files are taken in natural name order. Take the same frames as the video loader (start_frame, frame_count, "
        "every_nth)."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "load"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("modal_masks",)
    OUTPUT_TOOLTIPS = ("Masks [frames, height, width], 1 where the object is visible.",)

    @classmethod
    def INPUT_TYPES(cls):
        return node_inputs(
            required=(S.MASK_FOLDER.variant(default=EXAMPLE_MASKS), S.OBJECT_ID, S.START, S.COUNT, S.EVERY),
            optional=(Link("reference_images", "IMAGE,VIDEO",
                           "Connect the video frames: the masks are resized to their size (nearest neighbour), and a "
                           "different number of masks than frames is reported here. With a VIDEO (long shots; from "
                           "Select Frames the masks follow its selection) the masks are held at one byte per pixel, a "
                           "quarter of the memory (a float MASK to every node)."),
                      S.MASK_FORMAT))

    @classmethod
    def IS_CHANGED(cls, folder, start_frame=0, frame_count=0, every_nth=1, mask_format="auto", **_):
        """Hash of the settings and of the name, size and modification time (ns) of every image in the folder.

        The files are the ones `load` reads (`image_files`); their bytes are never read, so a queue costs one
        ``stat`` per file. A file rewritten with the same size within the file system's time resolution is not
        seen (ComfyUI's ``LoadVideo`` and VideoHelperSuite accept the same). It never raises: a missing or
        unreadable folder or a bad range is reported once, by `load` (ComfyUI logs an exception raised here as a
        warning and then runs the node anyway, which made every message appear twice)."""
        digest = hashlib.sha256(repr((start_frame, frame_count, every_nth, mask_format)).encode())
        path = folder
        try:
            path = resolve_folder(folder) if folder.strip() else None
            if path is not None and path.is_dir():
                for file in image_files(path):
                    stat = file.stat()
                    digest.update(repr((file.name, stat.st_size, stat.st_mtime_ns)).encode())
            else:
                digest.update(f"missing:{path}".encode())
        except (OSError, ValueError) as err:  # reported by `load`, which meets the same error
            digest.update(f"unreadable:{path}:{err!r}".encode())
        return digest.hexdigest()

    def load(self, folder, object_id=0, start_frame=0, frame_count=0, every_nth=1, reference_images=None,
             mask_format="auto"):
        path = resolve_folder(folder)
        if is_video(reference_images):
            return (self._for_video(path, object_id, start_frame, frame_count, every_nth, reference_images,
                                    mask_format),)
        try:
            found = read_mask_folder(path, mask_format, start_frame, frame_count, every_nth)
        except ValueError as err:
            raise ValueError(f"folder: {err}") from err
        masks = torch.from_numpy(found.select(object_id))
        if reference_images is not None:
            if reference_images.ndim != 4:
                raise ValueError(f"reference_images: expected an IMAGE [frames, height, width, 3], got "
                                 f"{tuple(reference_images.shape)}.")
            if reference_images.shape[0] not in (1, masks.shape[0]):
                raise ValueError(f"{masks.shape[0]} masks but {reference_images.shape[0]} video frames in "
                                 "reference_images: one mask per frame is needed; "
                                 + mask_count_hint(masks.shape[0], reference_images.shape[0], every_nth))
            masks = resize_masks_nearest(masks, tuple(reference_images.shape[1:3]))
        logger.info("LoadModalMasks: %d masks %dx%d (object_id %d, %s) from %s", masks.shape[0], masks.shape[2],
                    masks.shape[1], object_id, found.format, path)
        return (to_float(masks),)

    @staticmethod
    def _for_video(path, object_id, start_frame, frame_count, every_nth, video, mask_format) -> torch.Tensor:
        """Masks for a VIDEO's frames at its size, as a `BoolMask` (float32 to ComfyUI, held as bool: a long
        shot's masks stay a quarter of their float32 size).

        A folder with one mask per frame of the video file takes the video's own selection (Select Frames); one
        with a mask per selected frame is taken as it is; the widgets select files only when set (they must then
        give one mask per frame of the video)."""
        frames = frame_sequence(video, "reference_images")
        widgets = (start_frame, frame_count, every_nth) != (0, 0, 1)
        total = getattr(frames, "total", frames.count)
        files = image_files(path) if path.is_dir() else []
        if not widgets and isinstance(frames, VideoFrames) and len(files) == total and total != frames.count:
            chosen = [files[i] for i in frames.indices]  # one mask per frame of the file: the video's selection
            found = _read(lambda: read_mask_files(chosen, mask_format, path), path)
        else:
            found = _read(lambda: read_mask_folder(path, mask_format, start_frame, frame_count, every_nth), path)
        if found.count != frames.count:
            raise ValueError(f"{found.count} masks but {frames.count} video frames in reference_images: one mask per "
                             "frame is needed; " + mask_count_hint(found.count, frames.count, every_nth)
                             + " With Select Frames before the video, leave start_frame, frame_count and every_nth "
                             "at 0, 0, 1: the masks then follow the video's selection.")
        masks = torch.empty(found.count, *frames.size, dtype=torch.bool)  # filled part by part: no second copy
        parts = chunks(found.count, frame_pixels=frames.size[0] * frames.size[1])
        for part, read in zip(parts, found.sequence(object_id, tuple(frames.size), "masks").read(parts)):
            masks[part] = read
        logger.info("LoadModalMasks: %d masks %dx%d (object_id %d, %s, bool) from %s for a VIDEO", masks.shape[0],
                    masks.shape[2], masks.shape[1], object_id, found.format, path)
        return as_mask(masks)


def _read(read, path):
    try:
        return read()
    except ValueError as err:
        raise ValueError(f"folder: {err}") from err


NODE_CLASS_MAPPINGS = {"LoadModalMasks": LoadModalMasks}
