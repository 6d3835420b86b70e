"""PseudoDepth node: video frames -> clip-normalized Depth Anything V2 depth, or any depth you already have."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models import INPUT_SIZE, DepthEstimator, load_depth_model, normalize_depth
from ..models import DEFAULT_DEPTH_MODEL, DEPTH, available_models, resolve_depth_model
from ..models import get_host, resolve_dtype
from ..models import DEFAULT_DEPTH_FROM, DepthFromFrames, predict_depth
from ..models import chunks
from ..models import DEFAULT_SIZE
from .adapters import depth_image_frames
from .comfy_bridge import ManagedModels
from ..models import settings as S
from ..models.settings import Link
from .inputs import node_inputs
from .video import frame_sequence, is_video

logger = logging.getLogger(__name__)

MODEL_KIND = DEPTH.folder
DEFAULT_MODEL = DEFAULT_DEPTH_MODEL

_loaded: dict[tuple, tuple[DepthEstimator, ManagedModels]] = {}  # at most one model, reused across runs


def get_estimator(name: str, precision: str) -> tuple[DepthEstimator, ManagedModels]:
    """The loaded model for ``name`` at ``precision``, reused while the key (path, dtype, device) stays the same."""
    device = get_host().torch_device()
    path = resolve_depth_model(name)
    dtype = resolve_dtype(precision, device)
    key = (str(path.resolve()), dtype, str(device))
    if key not in _loaded:
        _loaded.clear()
        estimator = load_depth_model(path, "cpu", dtype)
        _loaded[key] = (estimator, ManagedModels(estimator.modules, device))
        logger.info("PseudoDepth: loaded %s (%s)", path, dtype)
    return _loaded[key]


def external_depth(depth: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """An IMAGE depth ``[T, h, w, C]`` as ``[T, H, W]`` at the size of ``images`` (channel mean, bilinear)."""
    if torch.is_tensor(depth) and depth.shape[0] != images.shape[0]:
        raise ValueError(
            f"depth has {depth.shape[0]} frames but images has {images.shape[0]}; feed the depth of the same "
            "frames (same start, count and frame skip)."
        )
    return depth_image_frames(depth, tuple(images.shape[1:3]), "PseudoDepth")


class PseudoDepth:
    DESCRIPTION = (
        "The scene's depth for Diffusion-VAS stage 1 (near = bright): Depth Anything V2, scaled to 0..1 over the "
        "whole clip as in training. Connect 'depth' to use depth from another node instead (it is only scaled)."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "estimate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("depth",)
    OUTPUT_TOOLTIPS = ("Depth [frames, height, width, 3] in 0..1 (near = bright) at the size of 'images'; from a VIDEO "
                       "at the stage nodes' size (width x height).",)

    @classmethod
    def INPUT_TYPES(cls):
        return node_inputs(
            required=(Link("images", "IMAGE,VIDEO", "The video frames: an IMAGE batch, or a VIDEO (Load Video, Select "
                                                    "Frames) for long shots, decoded a few frames at a time; then the "
                                                    "depth comes back at the stage nodes' size (width x height) to "
                                                    "keep the shot small."),
                      S.DEPTH_MODEL, S.NORMALIZATION, S.DEPTH_BATCH_SIZE, S.DEPTH_PRECISION, S.DEPTH_INPUT_SIZE),
            optional=(Link("depth", "IMAGE", "Depth from another node (Video Depth Anything, DepthCrafter, ...), "
                                             "grayscale with near = bright. Skips the network; only scaled (and "
                                             "resized to 'images')."),
                      S.DEPTH_FROM_SETTING, S.DEPTH_WIDTH, S.DEPTH_HEIGHT))

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        path = Path(model).expanduser()
        if model in available_models(DEPTH) or (path.is_absolute() and path.exists()):
            return True
        return f"model: {model!r} is neither in models/{MODEL_KIND} nor an existing absolute path."

    def estimate(self, images, model=DEFAULT_MODEL, normalization="clip", batch_size=4, precision="auto",
                 input_size=INPUT_SIZE, depth=None, depth_from=DEFAULT_DEPTH_FROM, width=DEFAULT_SIZE[1],
                 height=DEFAULT_SIZE[0]):
        if is_video(images):
            return (self._from_video(frame_sequence(images, "images"), model, normalization, batch_size, precision,
                                     input_size, depth, depth_from, (height, width)),)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images: expected an IMAGE [frames, height, width, 3], got {tuple(images.shape)}.")
        if depth is not None:
            raw = external_depth(depth, images)
        else:
            estimator, managed = get_estimator(model, precision)
            with managed.managed():
                raw = predict_depth(estimator, images, depth_from, (height, width), batch_size,
                                    get_host().progress(images.shape[0], "PseudoDepth"), input_size)
        normalized = normalize_depth(raw, normalization)
        # A 3-channel view, as core MaskToImage returns: no 3x copy of a 1080p/4K clip.
        return (normalized[..., None].expand(-1, -1, -1, 3),)

    @staticmethod
    def _from_video(frames, model, normalization, batch_size, precision, input_size, depth, depth_from, size):
        """A long shot: the frames decoded a few at a time; the depth comes back at the processing ``size`` (the
        stage nodes enlarge it to the masks part by part), never at the input size for the whole shot."""
        if depth is not None:
            raw = depth_image_frames(depth, size, "PseudoDepth")
            if raw.shape[0] != frames.count:
                raise ValueError(f"depth has {raw.shape[0]} frames but images has {frames.count}; feed the depth of "
                                 "the same frames (same start, count and frame skip).")
        else:
            estimator, managed = get_estimator(model, precision)
            with managed.managed(), tempfile.TemporaryDirectory(prefix="diffusion-vas-depth-") as spill:
                computed = DepthFromFrames(estimator, frames.count, frames.size, depth_from, size, batch_size,
                                           input_size, Path(spill) if depth_from == "input" else None,
                                           get_host().progress(frames.count, "PseudoDepth"))
                for part in frames.read(chunks(frames.count, frame_pixels=frames.size[0] * frames.size[1])):
                    computed.feed(part)
                computed.finish()
                if computed.store is not None and tuple(computed.store.shape[-2:]) == tuple(size):
                    raw = computed.store
                else:  # the network saw the frames as they are: its depth made small part by part
                    raw = torch.cat([F.interpolate(part[:, None], size=size, mode="bilinear", antialias=True,
                                                   align_corners=False)[:, 0]
                                     for part in computed.read(chunks(frames.count))])
                computed.close()
        return normalize_depth(raw, normalization)[..., None].expand(-1, -1, -1, 3)


NODE_CLASS_MAPPINGS = {"PseudoDepth": PseudoDepth}
