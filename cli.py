"""Command line: run both Diffusion-VAS stages on a clip without ComfyUI.

    diffusion-vas run --frames clip.mp4 --masks masks/ --out results/
    diffusion-vas demo --out results/demo      # the bundled example clip

Models are folder paths or the published names, downloaded on first use into
``$DIFFUSION_VAS_MODELS_DIR/<kind>/<name>`` (default ``~/.cache/diffusion-vas``). Exit codes: 0 success,
1 a problem with the inputs or models (the message says which), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .models.engine.options import parse_size as parse_processing_size
from .models import DEFAULT_SIZE, SamplingOptions, complete_content, load_pipeline, predict_amodal_masks
from .models.stages.hypotheses import agreement, consensus
from .models.depth.estimator import load_depth_model, normalize_depth
from .models.depth.resolution import DEFAULT_DEPTH_FROM, DEPTH_FROM, predict_depth
from .models.io.frame_names import check_output_folder, source_frame_names, write_named_pngs
from .models.stages.region import DEFAULT_REGION, REGIONS
from .models.stages.upscale import DEFAULT_MASK_UPSCALE, MASK_UPSCALES
from .models.host import (
    AMODAL_SEGMENTATION, CONTENT_COMPLETION, DEFAULT_DEPTH_MODEL, DEPTH, DEPTH_MODELS, DIFFUSION_VAS, PRECISIONS,
    check_obtainable, resolve_checkpoint, resolve_depth_model, resolve_device, resolve_dtype,
)
from .models.io.mask_files import MASK_FORMATS, read_mask_folder
from .models.io.media import frame_rate, output_frame_rate, pyav_available, read_frames, write_animation
from .models.stages.conditions import resize_masks_nearest

from .benchmark_cli import add_benchmark_parser
from .train_cli import add_train_parser

logger = logging.getLogger("diffusion_vas")
EXAMPLE = Path(__file__).resolve().parent / "example_clips" / "synthetic_occlusion"
FOLDER_FPS = 8  # written videos of a folder of frames (no rate of its own): the rate the authors sample at


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        if args.command == "demo":
            args.frames, args.masks, args.object_ids = EXAMPLE / "rgb", EXAMPLE / "modal", None
            args.mask_format = "auto"
        getattr(args, "handler", run)(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"diffusion-vas: error: {err}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffusion-vas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="amodal masks and completed RGB for a clip and its masks")
    run_parser.add_argument("--frames", required=True, type=Path, help="video file or folder of frames")
    run_parser.add_argument("--masks", required=True, type=Path,
                            help="folder of modal masks, one per frame (binary or label/palette PNGs)")
    run_parser.add_argument("--object-ids", type=int, nargs="+",
                            help="label masks: the ids to process (default: every id covering at least 0.1%% of "
                                 "a frame in some frame; the ids found are listed before the run)")
    run_parser.add_argument("--mask-format", choices=MASK_FORMATS, default=MASK_FORMATS[0],
                            help="auto: decided from the files (logged with the reason); binary: one object, on "
                                 "where the grey level is above 128 (as the authors read masks); labels: pixel "
                                 "values / palette indices are object ids (default: %(default)s)")
    demo_parser = commands.add_parser("demo", help="run on the bundled example clip (example_clips/synthetic_occlusion)")
    for sub in (run_parser, demo_parser):
        _add_common(sub)
    add_benchmark_parser(commands)
    add_train_parser(commands)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--stage1", default=AMODAL_SEGMENTATION,
                        help="amodal-segmentation checkpoint: folder or published name (default: %(default)s)")
    parser.add_argument("--stage2", default=CONTENT_COMPLETION,
                        help="content-completion checkpoint: folder or published name (default: %(default)s)")
    depth = parser.add_mutually_exclusive_group()
    depth.add_argument("--depth-model", default=DEFAULT_DEPTH_MODEL,
                       help="Depth Anything V2: folder, .pth/.safetensors file or one of "
                            f"{', '.join(DEPTH_MODELS)} (default: %(default)s)")
    depth.add_argument("--depth", type=Path, help="folder of depth images instead of the depth model (brighter = nearer)")
    amodal, content = SamplingOptions.for_stage("amodal"), SamplingOptions.for_stage("content")
    parser.add_argument("--steps", type=int, default=amodal.num_inference_steps,
                        help="denoising steps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=amodal.seed, help="stage-1 random seed (default: %(default)s)")
    parser.add_argument("--content-seed", type=int, default=content.seed,
                        help="stage-2 random seed (default: %(default)s; the reference's pair is 23 / 29)")
    parser.add_argument("--size", default="x".join(map(str, DEFAULT_SIZE)),
                        help="processing HEIGHTxWIDTH, multiples of 64 (default: %(default)s)")
    parser.add_argument("--guidance", type=float, default=amodal.guidance_scale,
                        help="guidance scale (default: %(default)s)")
    parser.add_argument("--window", type=int, default=amodal.window, help="frames per window (default: %(default)s)")
    parser.add_argument("--overlap", type=int, default=amodal.overlap,
                        help="frames shared by windows (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=amodal.samples,
                        help="samples per object, sample k drawn with seed + k; K > 1 writes obj<id>/sample<k>/ plus "
                             "the consensus masks and the agreement map, and costs K times the sampling "
                             "(default: %(default)s)")
    parser.add_argument("--start", type=int, default=0, help="first frame (default: 0)")
    parser.add_argument("--count", type=int, default=0, help="number of frames, 0 = all (default: 0)")
    parser.add_argument("--every", type=int, default=1, help="take every n-th frame (default: 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default: %(default)s)")
    parser.add_argument("--dtype", default="auto", choices=PRECISIONS, help="precision (default: auto)")
    parser.add_argument("--fps", type=float, default=None,
                        help=f"frame rate of the written videos (default: the video's rate divided by --every; "
                             f"{FOLDER_FPS} for a folder of frames)")
    parser.add_argument("--masks-only", action="store_true", help="stop after stage 1 (amodal masks)")
    parser.add_argument("--region", choices=REGIONS, default=DEFAULT_REGION,
                        help="frame: whole frames as trained; object: each object in a zoomed crop around it, "
                             "better for small objects in HD/4K (default: %(default)s)")
    parser.add_argument("--mask-upscale", choices=MASK_UPSCALES, default=DEFAULT_MASK_UPSCALE,
                        help="smooth: masks upsampled smoothly to the frame size; reference: the authors' nearest "
                             "neighbour (default: %(default)s)")
    parser.add_argument("--depth-from", choices=DEPTH_FROM, default=DEFAULT_DEPTH_FROM,
                        help="processing: depth network on frames resized to --size, as the authors trained; "
                             "input: on the frames as they are (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")


def run(args: argparse.Namespace) -> None:
    size = parse_size(args.size)
    check_output_folder(args.out, args.overwrite)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    check_models(args)
    frames = read_frames(args.frames, args.start, args.count, args.every)
    fps = args.fps or output_frame_rate(frame_rate(args.frames), args.every, FOLDER_FPS)
    ids, modal = read_objects(args.masks, args.object_ids, args.start, args.count, args.every,
                              getattr(args, "mask_format", "auto"))
    modal = match_frames(modal, frames, args.masks, args.frames)
    logger.info("%d frames of %dx%d (HxW), objects %s, processing at %dx%d on %s (%s)", frames.shape[0],
                frames.shape[1], frames.shape[2], ids, size[0], size[1], device, dtype)

    depth = read_depth(args, frames, device, dtype, size)
    shared = dict(num_inference_steps=args.steps, guidance_scale=args.guidance, window=args.window,
                  overlap=args.overlap, samples=args.samples)
    stage1 = load_pipeline(resolve_checkpoint(args.stage1), device, dtype)
    with _progress("stage 1: amodal masks") as bar:
        amodal = predict_amodal_masks(stage1, modal, depth, size,
                                      SamplingOptions.for_stage("amodal", seed=args.seed, **shared), callback=bar,
                                      mask_upscale=args.mask_upscale, region=args.region)
    del stage1
    content = None
    if not args.masks_only:
        stage2 = load_pipeline(resolve_checkpoint(args.stage2), device, dtype)
        with _progress("stage 2: content completion") as bar:
            content = complete_content(stage2, frames, modal, amodal.masks, size,
                                       SamplingOptions.for_stage("content", seed=args.content_seed, **shared),
                                       callback=bar, region=args.region)
    names = source_frame_names(args.frames, args.start, args.count, args.every, frames.shape[0])
    write_results(args.out, frames, ids, amodal.masks, content.rgb if content else None, fps, amodal.samples, names)
    logger.info("results written to %s", args.out)


def check_models(args: argparse.Namespace) -> None:
    """Every model the run needs is on disk or downloadable, checked before any heavy work."""
    needed = [(DIFFUSION_VAS, args.stage1)] + ([] if args.masks_only else [(DIFFUSION_VAS, args.stage2)])
    if args.depth is None:
        needed.append((DEPTH, args.depth_model))
    for kind, name in needed:
        logger.info("model %s", check_obtainable(kind, name))


def parse_size(text: str) -> tuple[int, int]:
    """``--size`` -> ``(height, width)``; warns where the published checkpoints need multiples of 64."""
    height, width = parse_processing_size(text, "--size")
    if height % 64 or width % 64:
        logger.warning("--size %s is not a multiple of 64; the published checkpoints need one.", text)
    return height, width


def read_objects(folder: Path, wanted: list[int] | None, start: int, count: int, step: int,
                 mask_format: str = "auto"):
    """Mask folder -> (object ids, ``[N, T, H, W]`` bool); the format, its reason and the ids found with their
    pixel counts are logged before anything runs."""
    try:
        found = read_mask_folder(folder, mask_format, start, count, step)
    except ValueError as err:
        raise ValueError(f"--masks: {err}") from err
    ids = wanted or found.ids
    if not ids:
        raise ValueError(f"--masks {folder}: every mask is empty (read as {found.format}: {found.reason}); the "
                         "object must be visible in some frame, or try --mask-format.")
    try:
        masks = np.stack([found.select(i) for i in ids])
    except ValueError as err:
        raise ValueError(f"--object-ids: {err}") from err
    return ids, torch.from_numpy(masks)


def match_frames(modal: torch.Tensor, frames: torch.Tensor, masks_arg, frames_arg) -> torch.Tensor:
    """Checks ``[N, T, h, w]`` masks against ``[T, H, W, 3]`` frames: the same count, and the same size or the
    same aspect ratio (then resized, nearest neighbour, with a warning); otherwise says what differs and the fix."""
    count, (height, width) = frames.shape[0], tuple(frames.shape[1:3])
    mask_count, (mask_h, mask_w) = modal.shape[1], tuple(modal.shape[2:4])
    if mask_count != count:
        raise ValueError(f"--masks {masks_arg} gives {mask_count} masks but --frames {frames_arg} gives {count} "
                         "frames (after --start/--count/--every, which apply to both): give one mask per frame, "
                         "named so that they sort in frame order.")
    if (mask_h, mask_w) == (height, width):
        return modal
    if abs(mask_w / mask_h - width / height) <= 1 / min(mask_h, height):
        logger.warning("--masks are %dx%d (WxH) but the frames are %dx%d: resizing the masks to the frame size "
                       "(nearest neighbour).", mask_w, mask_h, width, height)
        return resize_masks_nearest(modal, (height, width))
    raise ValueError(f"--masks {masks_arg} are {mask_w}x{mask_h} (WxH) but --frames {frames_arg} are {width}x{height}, "
                     "a different aspect ratio: export the masks at the frame size (or crop/resize the frames to "
                     "the masks' size).")


def read_depth(args, frames: torch.Tensor, device, dtype, size: tuple[int, int]) -> torch.Tensor:
    """``[T, H, W]`` depth normalized over the clip, from a depth folder or Depth Anything V2 (run at the
    processing ``size`` with ``--depth-from processing``)."""
    if args.depth is not None:
        depth = read_frames(args.depth, args.start, args.count, args.every).float().mean(dim=-1)
        if depth.shape != frames.shape[:3]:
            raise ValueError(f"--depth gives {tuple(depth.shape)} frames; it needs {tuple(frames.shape[:3])} "
                             "(one depth image per frame, at the frame size).")
        return normalize_depth(depth, "clip")
    path = resolve_depth_model(args.depth_model)
    estimator = load_depth_model(path, device, dtype)
    with _progress("pseudo-depth") as bar:
        raw = predict_depth(estimator, frames, args.depth_from, size, callback=bar)
    return normalize_depth(raw, "clip")


def write_results(out: Path, frames: torch.Tensor, ids: list[int], masks: torch.Tensor,
                  rgb: torch.Tensor | None, fps: float, samples: int = 1, names: list[str] | None = None) -> None:
    """Per object ``obj<id>/``: amodal masks, completed RGB and an overlay, as PNG frames plus GIF and MP4.

    With ``samples`` K > 1 (``masks``/``rgb`` hold N * K rows, object-major): sample k's outputs in
    ``obj<id>/sample<k>/``, and in ``obj<id>/`` the majority-vote ``consensus_masks`` and the ``agreement`` map
    (fraction of samples covering each pixel, 0..255). PNG frames are named ``names`` (the source frames';
    default: their indices)."""
    names = names or [f"{i:05d}" for i in range(frames.shape[0])]
    mp4 = pyav_available()
    if not mp4:
        logger.warning("PyAV is not installed, so no MP4 is written (PNG frames and GIFs are): pip install av.")
    for index, object_id in enumerate(ids):
        folder = out / f"obj{object_id}"
        rows = slice(index * samples, (index + 1) * samples)
        for k, row in enumerate(range(rows.start, rows.stop)):
            outputs = {"amodal_masks": masks[row].to(torch.uint8) * 255, "overlay": overlay(frames, masks[row])}
            if rgb is not None:
                outputs["amodal_rgb"] = (rgb[row] * 255).round().to(torch.uint8)
            _write_videos(folder / f"sample{k}" if samples > 1 else folder, outputs, fps, mp4, names)
        if samples > 1:
            _write_videos(folder, {
                "consensus_masks": consensus(masks[rows], samples)[0].to(torch.uint8) * 255,
                "agreement": (agreement(masks[rows], samples)[0] * 255).round().to(torch.uint8),
            }, fps, mp4, names)


def _write_videos(folder: Path, outputs: dict, fps: float, mp4: bool, names: list[str]) -> None:
    """Each ``name: [T, H, W(, 3)]`` uint8 video as PNG frames ``folder/name/<source frame name>.png`` (written in
    parallel), plus a GIF and (PyAV) an MP4."""
    for name, video in outputs.items():
        write_named_pngs(folder / name, video, names)
        write_animation(folder / f"{name}.gif", video, fps)
        if mp4:
            write_animation(folder / f"{name}.mp4", video, fps)


def overlay(frames: torch.Tensor, mask: torch.Tensor, colour=(255, 64, 160), alpha: float = 0.5) -> torch.Tensor:
    """Frames with the amodal mask tinted: ``[T, H, W, 3]`` uint8."""
    tint = torch.tensor(colour, dtype=torch.float32)
    blended = frames.float() * (1 - alpha) + tint * alpha
    return torch.where(mask[..., None], blended, frames.float()).round().to(torch.uint8)


class _progress:
    """A terminal progress bar usable as the engine's ``callback(done, total)``."""

    def __init__(self, label: str):
        self.label, self.bar = label, None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.label, unit="step", disable=not logger.isEnabledFor(logging.INFO))
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()



if __name__ == "__main__":  # `python -m diffusion_vas.cli ...`, as `accelerate launch -m diffusion_vas.cli` runs it
    sys.exit(main())
