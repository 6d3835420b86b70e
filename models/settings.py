"""Every user-facing setting, declared once: its name, type, default, range, words and which stages use it.

Both front ends are generated from these declarations: the nodes' ``INPUT_TYPES`` (`nodes.inputs`) and the
command line's flags (`commands.options`). A `Setting` holds what both need; where one front end has no such
control the declaration says why (`Setting.no_cli`, `Setting.no_node`), and a test holds every node setting to
having a flag or a reason. Defaults are not restated here: sampling settings read `SamplingOptions`, the others
the engine constant their module exports.

The shape follows ComfyUI's input declarations (V1's ``("INT", {"default", "min", "max", "step", "tooltip",
"advanced"})`` and V3's ``io.Int.Input(id, default=, min=, max=, step=, tooltip=, advanced=, optional=)`` carry
the same fields), so a V3 ``io.Schema`` could be generated from the same list by one more adapter.

Words: ``help`` is the tooltip an artist reads in ComfyUI (what the setting does to the picture, when to change
it); ``cli_help`` is the command line's, where flags and their neighbours are named differently. The stages are
named ``amodal`` (stage 1: the full masks) and ``content`` (stage 2: the full appearance) everywhere in code.
"""

from __future__ import annotations

import logging
import dataclasses
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .depth.estimator import INPUT_SIZE, NORMALIZATIONS, PATCH_SIZE
from .depth.resolution import DEFAULT_DEPTH_FROM, DEPTH_FROM
from .editing.composite import MODES
from .engine.options import DEFAULT_SIZE, STAGES, SamplingOptions, parse_size
from .host import PRECISIONS
from .io.catalog import AMODAL_SEGMENTATION, CONTENT_COMPLETION, DEFAULT_DEPTH_MODEL, DEPTH, DEPTH_MODELS, \
    DIFFUSION_VAS, available_models
from .io.mask_files import MASK_FORMATS
from .shot.run import DEFAULT_WRITE, FOLDER_FPS, WRITE_CHOICES
from .stages.conditions import AMODAL_SUM_THRESHOLD
from .stages.content_blend import DEFAULT_KEEP_VISIBLE_PIXELS
from .stages.region import DEFAULT_REGION, REGIONS
from .stages.upscale import DEFAULT_MASK_UPSCALE, MASK_UPSCALES

logger = logging.getLogger(__name__)

INT, FLOAT, BOOLEAN, STRING, COMBO, PATH = "INT", "FLOAT", "BOOLEAN", "STRING", "COMBO", "PATH"


@dataclass(frozen=True)
class Setting:
    """One user-facing setting.

    name: the node input's name (a contract with saved workflows) and, with dashes, the flag's unless ``flag``
        says otherwise.
    type: INT, FLOAT, BOOLEAN, STRING, COMBO (one of ``choices``) or PATH (the command line's files and folders).
    default: the value, or ``{stage: value}`` where the stages differ (the seeds, the checkpoints).
    choices: COMBO's values, or a function listing them when they are found on disk (models): the command line
        then takes any name or path.
    stages: which stages read it (``amodal``, ``content``, ``depth``, ``masks``, ``frames``, ``edit``, ...).
    flag: the command line's flag, or ``{stage: flag}`` for one flag per stage; None: see ``no_cli``.
    field: the engine field it sets (`SamplingOptions` or `ShotSettings`), when not ``name``.
    no_cli / no_node: why one front end has no such control.
    """

    name: str
    type: str
    default: Any = None
    help: str = ""
    cli_help: str | Mapping[str, str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: Sequence[str] | Callable[[], list[str]] | None = None
    stages: tuple[str, ...] = ()
    advanced: bool = False
    flag: str | Mapping[str, str] | None = None
    aliases: tuple[str, ...] = ()
    field: str | None = None
    no_cli: str = ""
    no_node: str = ""
    required: bool = False  # the command line's: the flag must be given
    nargs: str | None = None
    cli_type: Callable[[str], Any] | None = None  # argparse's type, when not the one ``type`` gives
    convert: Callable[[Any], Any] | None = None  # parsed flag value -> engine value (e.g. "256x512" -> (256, 512))
    group: str | None = None  # flags of one group exclude each other
    widget: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # more of ComfyUI's widget options

    def default_for(self, stage: str | None = None) -> Any:
        """The default, for ``stage`` where the stages differ (the first stage's when none is named)."""
        if isinstance(self.default, Mapping):
            return self.default[stage or next(iter(self.default))]
        return self.default

    def choices_now(self) -> list[str] | None:
        """COMBO's values as they are now (models found on disk are listed when asked)."""
        return None if self.choices is None else list(self.choices() if callable(self.choices) else self.choices)

    def flags(self) -> dict[str | None, str]:
        """``{stage: flag}`` (``{None: flag}`` for one flag shared by the stages); empty without a flag."""
        if self.flag is None:
            return {}
        return dict(self.flag) if isinstance(self.flag, Mapping) else {None: self.flag}

    def variant(self, **changes) -> "Setting":
        """The same control as a node shows it with its own default, range or words (e.g. Select Frames' every_nth
        defaults to 3, Load Visible Masks' to 1); declared beside the setting it varies."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Link:
    """A node input that takes another node's output (MASK, IMAGE, VIDEO, ...): a socket, not a widget."""

    name: str
    type: str
    help: str = ""


def _sampling(name: str) -> dict[str, Any]:
    """``{stage: SamplingOptions.for_stage(stage).<name>}``: sampling defaults come from `SamplingOptions`."""
    return {stage: getattr(SamplingOptions.for_stage(stage), name) for stage in STAGES}


def _same(name: str) -> Any:
    """A sampling default both stages share."""
    values = set(_sampling(name).values())
    if len(values) != 1:
        raise AssertionError(f"SamplingOptions.{name} differs between the stages; declare it per stage.")
    return values.pop()


def _write_list(text: str) -> tuple[str, ...]:
    """``--write masks,layer`` -> ``("masks", "layer")``, each one of `WRITE_CHOICES`."""
    import argparse

    values = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in values if v not in WRITE_CHOICES]
    if unknown or not values:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(WRITE_CHOICES)}, comma-separated")
    return values


def processing_size(text: str) -> tuple[int, int]:
    """``--size`` -> ``(height, width)``; warns where the published checkpoints need multiples of 64."""
    height, width = parse_size(text, "--size")
    if height % 64 or width % 64:
        logger.warning("--size %s is not a multiple of 64; the published checkpoints need one.", text)
    return height, width


BOTH = STAGES
_NO_EDIT = ("the command line writes the layers a compositor takes (--write layer, masks); this edit is "
            "Composite Edit's, inside ComfyUI")
_NO_SAMPLE_PICK = "the command line writes every sample in its own folder (obj<id>/sample<k>/)"
_NO_SCORING = "the command line scores datasets with 'diffusion-vas benchmark'"

# --- sampling: both stage nodes, and both stages of 'diffusion-vas run' (SamplingOptions fields) -----------------

SEED = Setting(
    "seed", INT, _sampling("seed"), minimum=0, maximum=0xFFFFFFFFFFFFFFFF, stages=BOTH,
    widget={"control_after_generate": True}, flag={"amodal": "--seed", "content": "--content-seed"},
    help="Another seed gives another plausible answer for the hidden part; the same seed gives the same result "
         "again. Every object starts from it.",
    cli_help={"amodal": "stage-1 random seed", "content": "stage-2 random seed (the reference's pair is 23 / 29)"})
STEPS = Setting(
    "steps", INT, _same("num_inference_steps"), minimum=1, maximum=200, stages=BOTH, flag="--steps",
    field="num_inference_steps",
    help="Denoising steps: fewer is faster and rougher, more is slower and cleaner. "
         f"{_same('num_inference_steps')} as the authors.",
    cli_help="denoising steps")
GUIDANCE_SCALE = Setting(
    "guidance_scale", FLOAT, _same("guidance_scale"), minimum=0.0, maximum=20.0, step=0.05, stages=BOTH,
    flag="--guidance-scale", aliases=("--guidance",),
    help="How closely the result follows the footage and masks rather than the model's own guess: higher is "
         "firmer, too high looks harsh; 1 or less turns it off (classifier-free guidance, "
         f"{_same('guidance_scale')} as the authors).",
    cli_help="guidance scale (classifier-free guidance; 1 or less turns it off)")
WINDOW = Setting(
    "window", INT, _same("window"), minimum=2, maximum=256, stages=BOTH, advanced=True, flag="--window",
    help=f"Frames the model looks at together; keep {_same('window')} (what it was trained on). Longer shots are "
         "done in overlapping windows of this many frames. Lower it only if memory runs out.",
    cli_help="frames per window")
OVERLAP = Setting(
    "overlap", INT, _same("overlap"), minimum=0, maximum=255, stages=BOTH, advanced=True, flag="--overlap",
    help="Frames neighbouring windows share on long shots, so they agree where they meet: more is smoother across "
         "windows and slower. Less than window.",
    cli_help="frames shared by windows")
OBJECT_BATCH_SIZE = Setting(
    "object_batch_size", INT, _same("object_batch_size"), minimum=1, maximum=64, stages=BOTH, advanced=True,
    flag="--object-batch-size",
    help="Objects (and samples) worked on at once: more is faster and needs more memory. The result is the same.",
    cli_help="objects (x samples) denoised at once; more is faster and uses more memory")
DECODE_CHUNK_SIZE = Setting(
    "decode_chunk_size", INT, _same("decode_chunk_size"), minimum=1, maximum=256, stages=BOTH, advanced=True,
    flag="--decode-chunk-size",
    help="Frames turned back into pictures at once (VAE decoding): lower it if memory runs out at the end of a "
         f"run. {_same('decode_chunk_size')} as the authors.",
    cli_help="frames decoded at once by the VAE; lower saves memory")
MODEL_FPS = Setting(
    "fps", INT, _same("fps"), minimum=1, maximum=120, stages=BOTH, advanced=True, flag="--model-fps",
    help=f"The frame rate the model is told; keep {_same('fps')}, what it was trained on, and give it footage at "
         "about 8 fps (every 3rd frame of 24 fps) instead.",
    cli_help="the frame rate the model is told (its fps conditioning; --fps is the written videos' rate); keep it "
             "and take every n-th frame to get about 8 fps instead")
MOTION_BUCKET_ID = Setting(
    "motion_bucket_id", INT, _same("motion_bucket_id"), minimum=0, maximum=1023, stages=BOTH, advanced=True,
    flag="--motion-bucket-id",
    help=f"How much motion the model expects (its motion conditioning, trained with {_same('motion_bucket_id')}); "
         "keep it.",
    cli_help="motion conditioning")
NOISE_AUG_STRENGTH = Setting(
    "noise_aug_strength", FLOAT, _same("noise_aug_strength"), minimum=0.0, maximum=1.0, step=0.005, stages=BOTH,
    advanced=True, flag="--noise-aug-strength",
    help=f"Noise added to the footage and masks the model is given (noise augmentation, "
         f"{_same('noise_aug_strength')} as trained); keep it.",
    cli_help="noise added to the conditions")
SAMPLES = Setting(
    "samples", INT, _same("samples"), minimum=1, maximum=64, stages=BOTH, flag="--samples",
    help="How many different answers to draw per object: what is hidden is ambiguous, and each sample is one "
         "plausible answer. Each costs a full run; sample k is exactly what seed + k gives alone. Compare them with "
         "Select Sample.",
    cli_help="samples per object, sample k drawn with seed + k; K > 1 writes obj<id>/sample<k>/ plus the consensus "
             "masks and the agreement map, and costs K times the sampling")

SAMPLING = (SEED, STEPS, GUIDANCE_SCALE, WINDOW, OVERLAP, OBJECT_BATCH_SIZE, DECODE_CHUNK_SIZE, MODEL_FPS,
            MOTION_BUCKET_ID, NOISE_AUG_STRENGTH, SAMPLES)  # the `SamplingOptions` fields a person sets

# --- the processing size ---------------------------------------------------------------------------------------

WIDTH = Setting(
    "width", INT, DEFAULT_SIZE[1], minimum=64, maximum=4096, step=8, stages=BOTH,
    no_cli="the command line takes the width and height together: --size HEIGHTxWIDTH",
    help="Width the model works at; results come back at your footage's size. Keep 512 (what the model was "
         "trained on): other sizes are slower or less accurate. A multiple of 64 for the published models.")
HEIGHT = Setting(
    "height", INT, DEFAULT_SIZE[0], minimum=64, maximum=4096, step=8, stages=BOTH,
    no_cli="the command line takes the width and height together: --size HEIGHTxWIDTH",
    help="Height the model works at; keep 256 (trained at 512x256). A multiple of 64 for the published models.")
SIZE = Setting(
    "size", STRING, "x".join(map(str, DEFAULT_SIZE)), stages=(*BOTH, "depth"), flag="--size",
    convert=processing_size, no_node="the nodes take it as width and height",
    cli_help="processing HEIGHTxWIDTH, multiples of 64")

# --- stage 1 -----------------------------------------------------------------------------------------------------

THRESHOLD = Setting(
    "threshold", INT, AMODAL_SUM_THRESHOLD, minimum=0, maximum=765, stages=("amodal",), advanced=True,
    flag="--threshold",
    help="How sure the model must be for a pixel to join the full mask: lower grows the masks (more of the hidden "
         f"part, rougher edges), higher shrinks them. {AMODAL_SUM_THRESHOLD} as the authors (out of 765, the "
         "decoded picture's summed brightness).",
    cli_help="stage 1: a pixel is in the full mask when the model's decoded brightness (R+G+B, 0..765) exceeds "
             "this; lower grows the masks (the authors' value)")
MASK_UPSCALE = Setting(
    "mask_upscale", COMBO, DEFAULT_MASK_UPSCALE, choices=MASK_UPSCALES, stages=("amodal",), advanced=True,
    flag="--mask-upscale",
    help="smooth: clean, smooth edges at HD/4K (the model's soft mask is enlarged, then cut). reference: the "
         "authors' blocky nearest-neighbour enlargement, to compare with the paper.",
    cli_help="smooth: masks upsampled smoothly to the frame size; reference: the authors' nearest neighbour")
COMBINE = Setting(
    "combine", COMBO, "consensus", choices=("consensus", "all"), stages=("amodal",),
    no_cli="with --samples above 1 the command line writes both: the consensus masks and every sample's",
    help="With samples above 1: consensus gives one mask per frame, on where most samples agree (the visible part "
         "always in); all gives every sample, to compare them (Select Sample) or complete each one in stage 2.")

# --- both stages ---------------------------------------------------------------------------------------------------

REGION = Setting(
    "region", COMBO, DEFAULT_REGION, choices=REGIONS, stages=BOTH, flag="--region",
    help="frame: the model sees the whole frame, as trained; best for large objects and objects that cross the "
         "frame. object: it sees a crop around where the object is visible in the shot (plus as much again around "
         "it), for more detail on objects small in the frame (HD/4K); nothing outside the crop is predicted.",
    cli_help="frame: whole frames as trained; object: each object in a zoomed crop around it, better for small "
             "objects in HD/4K")

# --- stage 2 -----------------------------------------------------------------------------------------------------

KEEP_VISIBLE_PIXELS = Setting(
    "keep_visible_pixels", BOOLEAN, DEFAULT_KEEP_VISIBLE_PIXELS, stages=("content",), flag="--keep-visible-pixels",
    help="on: your footage's own sharp pixels wherever the object is visible, the model's colours only in the "
         "hidden part (matched in colour, blended over a few pixels). off: the model's lower-resolution picture "
         "everywhere (the authors' output).",
    cli_help="stage 2: the footage's own pixels where the object is visible, the model's colours only in the hidden "
             "part (--no-keep-visible-pixels: the model's render everywhere, as the authors)")

# --- models --------------------------------------------------------------------------------------------------------

CHECKPOINT = Setting(
    "model", COMBO, {"amodal": AMODAL_SEGMENTATION, "content": CONTENT_COMPLETION},
    choices=lambda: available_models(DIFFUSION_VAS), stages=BOTH, flag={"amodal": "--stage1", "content": "--stage2"},
    help="Checkpoint folder in models/diffusion_vas (or an absolute path). The two published checkpoints download "
         "on first use.",
    cli_help={"amodal": "amodal-segmentation checkpoint: folder or published name",
              "content": "content-completion checkpoint: folder or published name"})
PRECISION = Setting(
    "precision", COMBO, "auto", choices=PRECISIONS, stages=(*BOTH, "depth"), flag="--dtype", field="dtype",
    help="Weight precision; auto picks what ComfyUI recommends for the device (fp32 on the CPU).",
    cli_help="precision: auto picks fp16/bf16 on GPUs, fp32 on the CPU")
DEVICE = Setting(
    "device", STRING, "auto", stages=(*BOTH, "depth"), flag="--device",
    no_node="ComfyUI places every model on its own device (its --cpu, --gpu-only, ... options)",
    cli_help="auto, cpu, cuda, cuda:1, ...")

# --- pseudo-depth --------------------------------------------------------------------------------------------------

DEPTH_MODEL = Setting(
    "model", COMBO, DEFAULT_DEPTH_MODEL, choices=lambda: available_models(DEPTH), stages=("depth",),
    flag="--depth-model", field="depth_model", group="depth",
    help="Depth Anything V2: a folder (transformers) or official .pth/.safetensors file in models/depthanything, "
         "or an absolute path. The *-hf models download on first use from huggingface.co/depth-anything. The "
         "authors used Large. Licences: Small Apache-2.0 (commercial work); Base and Large CC-BY-NC-4.0 "
         "(non-commercial).",
    cli_help=f"Depth Anything V2: folder, .pth/.safetensors file or one of {', '.join(DEPTH_MODELS)}")
DEPTH_FOLDER = Setting(
    "depth", PATH, None, stages=("depth",), flag="--depth", group="depth",
    no_node="Pseudo-Depth's depth input takes depth from any node instead",
    cli_help="folder of depth images instead of the depth model (brighter = nearer)")
NORMALIZATION = Setting(
    "normalization", COMBO, NORMALIZATIONS[0], choices=NORMALIZATIONS, stages=("depth",), advanced=True,
    no_cli="the stages were trained on depth scaled over the whole clip, which the command line always does; "
           "frame-by-frame scaling is for comparing depth in ComfyUI",
    help="clip: one brightness scale for the whole clip (what the model was trained on). frame: each frame "
         "stretched to 0..1 on its own (flickers when the scene changes).")
DEPTH_BATCH_SIZE = Setting(
    "batch_size", INT, 4, minimum=1, maximum=256, stages=("depth",), advanced=True, flag="--depth-batch-size",
    field="depth_batch_size",
    help="Frames per network call: lower it if memory runs out; the result is the same.",
    cli_help="frames per depth-network call; lower it if memory runs out")
DEPTH_INPUT_SIZE = Setting(
    "input_size", INT, INPUT_SIZE, minimum=PATCH_SIZE, maximum=2044, step=PATCH_SIZE, stages=("depth",),
    advanced=True, flag="--depth-input-size", field="depth_input_size",
    help=f"Size the depth network works at (shortest side, a multiple of {PATCH_SIZE}); {INPUT_SIZE} as trained. "
         "Larger gives finer depth detail and needs more memory.",
    cli_help=f"Depth Anything's network input, shortest side, a multiple of {PATCH_SIZE}: larger gives finer "
             "depth and costs more (as trained)")
DEPTH_FROM_SETTING = Setting(
    "depth_from", COMBO, DEFAULT_DEPTH_FROM, choices=DEPTH_FROM, stages=("depth",), advanced=True,
    flag="--depth-from",
    help="processing: the network sees the frames at the stage nodes' size (width x height), as the authors "
         "trained (the depth detail the model knows; fast at HD/4K). input: the frames as they are. The output is "
         "at the size of 'images' either way.",
    cli_help="processing: depth network on frames resized to --size, as the authors trained; input: on the frames "
             "as they are")

# --- frames and masks ----------------------------------------------------------------------------------------------

FRAMES = Setting("frames", PATH, None, stages=("frames",), flag="--frames", required=True,
                 no_node="the nodes take frames from a video or image loader",
                 cli_help="video file or folder of frames")
MASK_FOLDER = Setting(
    "folder", STRING, None, stages=("masks",), flag="--masks", field="masks", required=True, cli_type=Path,
    help="Folder of mask images, one per frame, relative to ComfyUI's input folder or absolute. The default is the "
         "example clip the pack places in the input folder.",
    cli_help="folder of visible (modal) masks, one per frame (binary or label/palette PNGs)")
OBJECT_ID = Setting(
    "object_id", INT, 0, minimum=0, maximum=65535, stages=("masks",),
    no_cli="the command line runs several objects at once: --object-ids",
    help="Masks with several objects (label/palette images): which object to load (its label or palette index). "
         "0: every object at once, or the mask itself for black-and-white masks.")
OBJECT_IDS = Setting(
    "object_ids", INT, None, stages=("masks",), flag="--object-ids", nargs="+",
    no_node="Load Visible Masks takes one object_id (0: all)",
    cli_help="label masks: the ids to process (default: every id covering at least 0.1% of a frame in some frame; "
             "the ids found are listed before the run)")
MASK_FORMAT = Setting(
    "mask_format", COMBO, MASK_FORMATS[0], choices=MASK_FORMATS, stages=("masks",), flag="--mask-format",
    help="auto: decided per folder from the files (the log says why); change it only if it guesses wrong. binary: "
         "one object, visible where the mask is brighter than mid-grey (alpha masks and 0/1 masks too). labels: "
         "each pixel's value (palette index) is an object id (DAVIS, YouTube-VOS, SAM2 exports).",
    cli_help="auto: decided from the files (logged with the reason); binary: one object, on where the grey level "
             "is above 128 (as the authors read masks); labels: pixel values / palette indices are object ids")
START = Setting("start_frame", INT, 0, minimum=0, maximum=1_000_000, stages=("frames", "masks"), flag="--start",
                field="start", cli_help="first frame (0 = the first)",
                help="The first mask file to load (0 = the first in name order). Match the video loader's first "
                     "frame.")
COUNT = Setting("frame_count", INT, 0, minimum=0, maximum=1_000_000, stages=("frames", "masks"), flag="--count",
                field="count", cli_help="number of frames, 0 = all",
                help="How many masks to load; 0 loads all to the end. Match the video loader's frame count: one "
                     "mask per video frame.")
EVERY = Setting("every_nth", INT, 1, minimum=1, maximum=1000, stages=("frames", "masks"), flag="--every",
                field="every", cli_help="take every n-th frame (3 turns 24 fps into the 8 fps the model was "
                                        "trained on)",
                help="Take every n-th file: set the video loader's frame skip here too (every 3rd frame of 24 fps "
                     "footage gives the 8 fps the model was trained on).")
# Select Frames picks from a video: frame numbers up to ten million, and 3 by default (24 fps -> the trained 8 fps)
SELECT_START = START.variant(maximum=10_000_000, help="The first frame to take (0 = the first).")
SELECT_COUNT = COUNT.variant(maximum=10_000_000, help="How many frames to take; 0 takes all to the end.")
SELECT_EVERY = EVERY.variant(default=3, help="Take every n-th frame: 3 turns 24 fps footage into the 8 fps the model "
                                             "was trained on (4 for 30 fps).")

# --- the depth node's processing size, and the loader's and depth node's precision ------------------------------

DEPTH_WIDTH = WIDTH.variant(advanced=True, stages=("depth",),
                            help="depth_from processing: the stage nodes' width (keep both the same; trained: 512).")
DEPTH_HEIGHT = HEIGHT.variant(advanced=True, stages=("depth",),
                              help="depth_from processing: the stage nodes' height (keep both the same; trained: "
                                   "256).")
DEPTH_PRECISION = PRECISION.variant(advanced=True, stages=("depth",),
                                    help="Weight precision; auto picks fp16/bf16 on GPUs, fp32 on the CPU.")

# --- edits (Composite Edit) ----------------------------------------------------------------------------------------

MODE = Setting("mode", COMBO, MODES[0], choices=MODES, stages=("edit",), no_cli=_NO_EDIT,
               help="reveal, xray, remove_occluder, layer or move (see the node description).")
OPACITY = Setting("opacity", FLOAT, 0.5, minimum=0.0, maximum=1.0, step=0.05, stages=("edit",), no_cli=_NO_EDIT,
                  help="xray: how solid the hidden part is drawn (0 invisible, 1 opaque).")
FEATHER = Setting("feather", FLOAT, 0.0, minimum=0.0, maximum=64.0, step=0.5, stages=("edit",), no_cli=_NO_EDIT,
                  help="Softens every edge over about this many pixels (0: hard edges). Raise it when a hard edge or "
                       "a fringe of the occluder shows.")
OFFSET_X = Setting("offset_x", INT, 0, minimum=-8192, maximum=8192, step=1, stages=("edit",), no_cli=_NO_EDIT,
                   help="move: pixels to shift the objects right (negative: left).")
OFFSET_Y = Setting("offset_y", INT, 0, minimum=-8192, maximum=8192, step=1, stages=("edit",), no_cli=_NO_EDIT,
                   help="move: pixels to shift the objects down (negative: up).")
OUTLINE_COLOR = Setting("outline_color", STRING, "#00FF00", stages=("edit",), no_cli=_NO_EDIT,
                        help="xray: outline colour as hex RGB, e.g. #00FF00.")
OUTLINE_WIDTH = Setting("outline_width", INT, 2, minimum=0, maximum=64, step=1, stages=("edit",), no_cli=_NO_EDIT,
                        help="xray: outline width in pixels around the full object shape; 0 = no outline.")

# --- picking and scoring samples -------------------------------------------------------------------------------

OBJECTS = Setting("objects", INT, 1, minimum=1, maximum=256, stages=("samples",), no_cli=_NO_SAMPLE_PICK,
                  help="N: number of objects stacked in the batch.")
PICK_SAMPLES = SAMPLES.variant(default=3, stages=("samples",), flag=None, no_cli=_NO_SAMPLE_PICK,
                               help="K: samples per object (the stage node's samples).")
SAMPLE_INDEX = Setting("index", INT, 0, minimum=0, maximum=63, stages=("samples",), no_cli=_NO_SAMPLE_PICK,
                       help="Which sample: 0 is the first (drawn with the stage's seed), k the one drawn with seed + "
                            "k. Less than samples.")
SCORED_OBJECTS = OBJECTS.variant(stages=("evaluate",), no_cli=_NO_SCORING,
                                 help="Number of objects N stacked in the mask batches.")
SCORED_SAMPLES = SAMPLES.variant(stages=("evaluate",), flag=None, no_cli=_NO_SCORING,
                                 help="K: samples per object in amodal_masks (N*K*T frames, object by object, then "
                                      "sample by sample). Above 1 the report adds the oracle Top-K; the other lines "
                                      "score sample 0 (Top-1), amodal_rgb too when it holds K samples.")

# --- the command line's run: where results go and how ----------------------------------------------------------

OUT = Setting("out", PATH, None, flag="--out", required=True, no_node="ComfyUI's Save nodes choose where files go",
              cli_help="output folder")
OUTPUT_FPS = Setting("fps", FLOAT, None, flag="--fps", no_node="Save Video's own frame rate",
                     cli_help="frame rate of the written videos (default: the video's rate divided by --every; "
                              f"{FOLDER_FPS} for a folder of frames)")
MASKS_ONLY = Setting("masks_only", BOOLEAN, False, flag="--masks-only",
                     no_node="in ComfyUI, leave the stage-2 node out", cli_help="stop after stage 1 (amodal masks)")
WRITE = Setting(
    "write", STRING, DEFAULT_WRITE, flag="--write", cli_type=_write_list,
    no_node="ComfyUI's Save nodes write what they are connected to",
    cli_help=f"what to write per object, comma-separated from {','.join(WRITE_CHOICES)}: masks (amodal_masks/ 8-bit "
             "grey PNGs), layer (layer/ RGBA PNGs: the completed object, alpha = its full mask), rgb (amodal_rgb/: "
             "the completed object on white, as the authors save it), overlay (overlay/: the frames with the full "
             "mask tinted), mp4 (MP4 previews: the layer over grey, or the masks when no layer is written, and the "
             "overlay), gif (the same as small GIFs)")
RESUME = Setting("resume", BOOLEAN, False, flag="--resume", no_node="ComfyUI keeps finished nodes' outputs itself",
                 cli_help="continue a stopped run in --out with the same arguments and inputs (finished work is kept; "
                          "different arguments are refused, naming what differs)")
OVERWRITE = Setting("overwrite", BOOLEAN, False, flag="--overwrite", no_node="ComfyUI's Save nodes number files",
                    cli_help="write into a non-empty --out folder")
QUIET = Setting("quiet", BOOLEAN, False, flag="--quiet", no_node="ComfyUI's own log level",
                cli_help="only warnings and errors")

# What 'diffusion-vas run' takes (in --help's order); 'demo' takes the same but the inputs (it brings its clip).
SHOT_INPUTS = (FRAMES, MASK_FOLDER, OBJECT_IDS, MASK_FORMAT)
SHOT_SETTINGS = (
    OUT, CHECKPOINT, DEPTH_MODEL, DEPTH_FOLDER, STEPS, SEED, SIZE, GUIDANCE_SCALE, WINDOW, OVERLAP, SAMPLES, START,
    COUNT, EVERY, DEVICE, PRECISION, OUTPUT_FPS, MASKS_ONLY, REGION, MASK_UPSCALE, DEPTH_FROM_SETTING,
    DEPTH_INPUT_SIZE, DEPTH_BATCH_SIZE, THRESHOLD, KEEP_VISIBLE_PIXELS, OBJECT_BATCH_SIZE, DECODE_CHUNK_SIZE,
    MOTION_BUCKET_ID, NOISE_AUG_STRENGTH, MODEL_FPS, WRITE, RESUME, OVERWRITE, QUIET)


# --- 'diffusion-vas train': every flag sets the `TrainingConfig` field it names, its default read from there ------

def _training(name: str) -> Any:
    from .training.config import TrainingConfig

    return next(f.default for f in fields(TrainingConfig) if f.name == name)


def _training_size(text: str) -> tuple[int, int]:
    return parse_size(text, "--size")


def training_settings() -> tuple[Setting, ...]:
    """The ``train`` command's settings, each setting the `TrainingConfig` field it names (``field`` where the
    flag's name is shorter), defaults read from `TrainingConfig`."""
    from .training.config import CLIP_CONTEXTS, MIXED_PRECISIONS

    no_node = "fine-tuning runs from the command line only"
    flags = (
        Setting("stage", COMBO, None, choices=STAGES, flag="--stage", required=True,
                cli_help="amodal: stage 1 (visible mask + depth -> full mask); content: stage 2 (visible colours + "
                         "full mask -> full colours)"),
        Setting("base", STRING, None, flag="--base", required=True,
                cli_help="SVD-XT folder (conv_in2 created from conv_in) or a Diffusion-VAS checkpoint folder or "
                         "published name (its conv_in2 kept)"),
        Setting("data", STRING, None, flag="--data", required=True,
                cli_help="clip folder, folder of clips, SAIL-VOS .json, or synthetic[:N]"),
        Setting("out", STRING, None, flag="--out", required=True,
                cli_help="output folder (checkpoints, validation, final/)"),
        Setting("data_root", STRING, None, flag="--data-root",
                cli_help="SAIL-VOS JSON: the folder its image_file_names are relative to"),
        Setting("size", STRING, "x".join(map(str, _training("size"))), flag="--size", convert=_training_size,
                cli_help="HEIGHTxWIDTH"),
        Setting("frames", INT, _training("num_frames"), flag="--frames", field="num_frames",
                cli_help="frames per sample"),
        Setting("epochs", INT, None, flag="--epochs",
                cli_help=f"passes over the targets, each split across the processes (default: "
                         f"{_training('epochs')}, the authors'; the steps per epoch are logged at the start)"),
        Setting("max_steps", INT, None, flag="--max-steps",
                cli_help="run exactly this many optimiser steps instead of --epochs (default: none)"),
        Setting("batch_size", INT, _training("batch_size"), flag="--batch-size", cli_help="per process"),
        Setting("gradient_accumulation_steps", INT, _training("gradient_accumulation_steps"),
                flag="--gradient-accumulation-steps", cli_help="optimiser steps accumulate this many batches"),
        Setting("learning_rate", FLOAT, _training("learning_rate"), flag="--learning-rate",
                cli_help="AdamW's learning rate, constant (the authors' effective rate)"),
        Setting("mixed_precision", COMBO, _training("mixed_precision"), choices=MIXED_PRECISIONS,
                flag="--mixed-precision", cli_help="auto: fp16 on CUDA, none on the CPU"),
        Setting("cpu", BOOLEAN, False, flag="--cpu",
                cli_help="train on the CPU; with `accelerate launch --multi_gpu` the processes use gloo"),
        Setting("seed", INT, _training("seed"), flag="--seed", cli_help="each process derives its own from it"),
        Setting("save_every", INT, _training("save_every"), flag="--save-every", cli_help="checkpoint interval"),
        Setting("keep_checkpoints", INT, _training("checkpoints_total_limit"), flag="--keep-checkpoints",
                field="checkpoints_total_limit", cli_help="newest checkpoints kept, 0 = all"),
        Setting("resume", STRING, None, flag="--resume", cli_help="'latest' or a checkpoint-N folder"),
        Setting("validate_every", INT, _training("validate_every"), flag="--validate-every",
                cli_help="validation interval in optimiser steps"),
        Setting("validation_clips", INT, _training("validation_clips"), flag="--validation-clips",
                cli_help="tracks validated, 0 = no validation"),
        Setting("validation_steps", INT, _training("validation_inference_steps"), flag="--validation-steps",
                field="validation_inference_steps", cli_help="denoising steps in validation"),
        Setting("gradient_checkpointing", BOOLEAN, False, flag="--gradient-checkpointing",
                cli_help="recompute UNet blocks in the backward pass"),
        Setting("use_8bit_adam", BOOLEAN, False, flag="--use-8bit-adam",
                cli_help="bitsandbytes' AdamW8bit (needs bitsandbytes)"),
        Setting("lora_rank", INT, _training("lora_rank"), flag="--lora-rank",
                cli_help="LoRA on the temporal blocks instead of training them fully; 0 = off"),
        Setting("clip_context", COMBO, _training("clip_context"), choices=CLIP_CONTEXTS, flag="--clip-context",
                cli_help="all_frames: the authors' training context; per_frame: inference's"),
        Setting("occlusion_iou", FLOAT, _training("occlusion_iou"), flag="--occlusion-iou",
                cli_help="stage 2: paste occluders until the mean visible/amodal IoU is below this"),
        Setting("complete_iou", FLOAT, None, flag="--complete-iou",
                cli_help="stage 2: only tracks whose mean visible/amodal IoU is at least this are targets (the rest "
                         "still occlude). Off by default: every track is a target, as the authors train, and the "
                         "hidden part's target colours are whatever hid it. Use it (e.g. 0.9) to learn only from "
                         "objects whose colours are known everywhere; tracks with amodal_rgb/ always stay. SAIL-VOS "
                         "visible masks are slightly smaller than the full masks even unoccluded, so values near 1 "
                         "also drop small complete objects (the log says how many were dropped)"),
        Setting("depth_model", STRING, None, flag="--depth-model",
                cli_help="stage 1, clips without depth/: Depth Anything V2 folder, file or name"),
        Setting("num_workers", INT, _training("num_workers"), flag="--num-workers", cli_help="data loader workers"),
        Setting("report_to", STRING, _training("report_to"), flag="--report-to",
                cli_help="auto (tensorboard when installed), none, wandb, ..."),
        QUIET,
    )
    return tuple(replace(s, no_node=no_node) for s in flags)
