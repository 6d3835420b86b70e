"""``diffusion-vas run`` and ``diffusion-vas demo``: both stages on a shot, streamed from decode to write.

    diffusion-vas run --frames shot.mp4 --masks masks/ --out results/
    diffusion-vas demo --out results/demo      # the bundled example clip

A shot of any length streams from decode to write (`models.shot`): memory stays flat in its length, results are
written as they are produced, and ``--resume`` continues a stopped run. Models are folder paths or the published
names, downloaded on first use into ``$DIFFUSION_VAS_MODELS_DIR/<kind>/<name>`` (default
``~/.cache/diffusion-vas``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..models.engine.options import parse_size as parse_processing_size
from ..models import DEFAULT_SIZE, SamplingOptions
from ..models.depth.estimator import INPUT_SIZE
from ..models.depth.resolution import DEFAULT_DEPTH_FROM, DEPTH_FROM
from ..models.stages.conditions import AMODAL_SUM_THRESHOLD
from ..models.stages.content_blend import DEFAULT_KEEP_VISIBLE_PIXELS
from ..models.stages.region import DEFAULT_REGION, REGIONS
from ..models.stages.upscale import DEFAULT_MASK_UPSCALE, MASK_UPSCALES
from ..models.io.catalog import AMODAL_SEGMENTATION, CONTENT_COMPLETION, DEFAULT_DEPTH_MODEL, DEPTH_MODELS
from ..models.host import PRECISIONS
from ..models.io.mask_files import MASK_FORMATS
from ..models.io.media import pyav_available
from ..models.shot import DEFAULT_WRITE, WRITE_CHOICES, ShotSettings, run_shot
from ..models.shot.run import FOLDER_FPS


logger = logging.getLogger("diffusion_vas")
EXAMPLE = Path(__file__).resolve().parents[1] / "example_clips" / "synthetic_occlusion"


def add_parsers(commands) -> None:
    """The ``run`` and ``demo`` subcommands."""
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
    run_parser.set_defaults(handler=run, allocator=True)
    demo_parser.set_defaults(handler=demo, allocator=True)


def demo(args: argparse.Namespace) -> None:
    """``demo``: `run` on the bundled example clip."""
    args.frames, args.masks, args.object_ids = EXAMPLE / "rgb", EXAMPLE / "modal", None
    args.mask_format = "auto"
    run(args)


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
    parser.add_argument("--depth-input-size", type=int, default=INPUT_SIZE,
                        help="Depth Anything's network input, shortest side, a multiple of 14: larger gives finer "
                             "depth and costs more (default: %(default)s, as trained)")
    parser.add_argument("--depth-batch-size", type=int, default=4,
                        help="frames per depth-network call; lower it if memory runs out (default: %(default)s)")
    parser.add_argument("--threshold", type=int, default=AMODAL_SUM_THRESHOLD,
                        help="stage 1: a pixel is in the full mask when the model's decoded brightness (R+G+B, "
                             "0..765) exceeds this; lower grows the masks (default: %(default)s, the authors')")
    parser.add_argument("--keep-visible-pixels", action=argparse.BooleanOptionalAction,
                        default=DEFAULT_KEEP_VISIBLE_PIXELS,
                        help="stage 2: the footage's own pixels where the object is visible, the model's colours "
                             "only in the hidden part (--no-keep-visible-pixels: the model's render everywhere, as "
                             "the authors) (default: %(default)s)")
    parser.add_argument("--object-batch-size", type=int, default=amodal.object_batch_size,
                        help="objects (x samples) denoised at once; more is faster and uses more memory "
                             "(default: %(default)s)")
    parser.add_argument("--decode-chunk-size", type=int, default=amodal.decode_chunk_size,
                        help="frames decoded at once by the VAE; lower saves memory (default: %(default)s)")
    parser.add_argument("--motion-bucket-id", type=int, default=amodal.motion_bucket_id,
                        help="motion conditioning (default: %(default)s)")
    parser.add_argument("--noise-aug-strength", type=float, default=amodal.noise_aug_strength,
                        help="noise added to the conditions (default: %(default)s)")
    parser.add_argument("--write", default=",".join(DEFAULT_WRITE), type=_write_list,
                        help=f"what to write per object, comma-separated from {','.join(WRITE_CHOICES)}: masks "
                             "(amodal_masks/ 8-bit grey PNGs), layer (layer/ RGBA PNGs: the completed object, alpha = "
                             "its full mask), rgb (amodal_rgb/: the completed object on white, as the authors save "
                             "it), overlay (overlay/: the frames with the full mask tinted), mp4 (MP4 previews: the "
                             "layer over grey, or the masks when no layer is written, and the overlay), gif (the same "
                             "as small GIFs) (default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a stopped run in --out with the same arguments and inputs (finished work "
                             "is kept; different arguments are refused, naming what differs)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder")
    parser.add_argument("--quiet", action="store_true", help="only warnings and errors")


def _write_list(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in values if v not in WRITE_CHOICES]
    if unknown or not values:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(WRITE_CHOICES)}, comma-separated")
    return values


def run(args: argparse.Namespace) -> None:
    """``run`` and ``demo``: the arguments as `ShotSettings`, then `run_shot`."""
    settings = settings_from_args(args)
    if "mp4" in settings.write and not pyav_available():
        raise ValueError("--write mp4 needs PyAV (a dependency): pip install av, or leave mp4 out of --write.")
    run_shot(settings)


def settings_from_args(args: argparse.Namespace) -> ShotSettings:
    """The parsed ``run``/``demo`` arguments as `ShotSettings`."""
    size = parse_size(args.size)
    shared = dict(num_inference_steps=args.steps, guidance_scale=args.guidance, window=args.window,
                  overlap=args.overlap, samples=args.samples, object_batch_size=args.object_batch_size,
                  decode_chunk_size=args.decode_chunk_size, motion_bucket_id=args.motion_bucket_id,
                  noise_aug_strength=args.noise_aug_strength)
    return ShotSettings(
        frames=args.frames, masks=args.masks, out=args.out, start=args.start, count=args.count, every=args.every,
        mask_format=getattr(args, "mask_format", MASK_FORMATS[0]), object_ids=getattr(args, "object_ids", None),
        depth=args.depth, depth_model=args.depth_model, depth_from=args.depth_from,
        depth_input_size=args.depth_input_size, depth_batch_size=args.depth_batch_size, stage1=args.stage1,
        stage2=args.stage2, size=size, amodal=SamplingOptions.for_stage("amodal", seed=args.seed, **shared),
        content=SamplingOptions.for_stage("content", seed=args.content_seed, **shared), threshold=args.threshold,
        mask_upscale=args.mask_upscale, keep_visible_pixels=args.keep_visible_pixels, region=args.region,
        masks_only=args.masks_only, write=args.write, fps=args.fps, device=args.device, dtype=args.dtype,
        overwrite=args.overwrite, resume=args.resume)


def parse_size(text: str) -> tuple[int, int]:
    """``--size`` -> ``(height, width)``; warns where the published checkpoints need multiples of 64."""
    height, width = parse_processing_size(text, "--size")
    if height % 64 or width % 64:
        logger.warning("--size %s is not a multiple of 64; the published checkpoints need one.", text)
    return height, width
