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
from dataclasses import fields
from pathlib import Path

from ..models import SamplingOptions
from ..models import settings as S
from ..models import pyav_available
from ..models.settings import processing_size as parse_size  # noqa: F401  (the --size rule, as tests use it)
from ..models import ShotSettings, run_shot
from .options import add_settings, values


logger = logging.getLogger("diffusion_vas")
EXAMPLE = Path(__file__).resolve().parents[1] / "example_clips" / "synthetic_occlusion"


def add_parsers(commands) -> None:
    """The ``run`` and ``demo`` subcommands."""
    run_parser = commands.add_parser("run", help="amodal masks and completed RGB for a clip and its masks")
    add_settings(run_parser, S.SHOT_INPUTS)
    demo_parser = commands.add_parser("demo",
                                      help="run on the bundled example clip (example_clips/synthetic_occlusion)")
    for sub in (run_parser, demo_parser):
        _add_common(sub)
    run_parser.set_defaults(handler=run, allocator=True)
    demo_parser.set_defaults(handler=demo, allocator=True)


def demo(args: argparse.Namespace) -> None:
    """``demo``: `run` on the bundled example clip."""
    args.frames, args.masks, args.object_ids = EXAMPLE / "rgb", EXAMPLE / "modal", None
    args.mask_format = S.MASK_FORMAT.default
    run(args)


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, S.SHOT_SETTINGS)


def run(args: argparse.Namespace) -> None:
    """``run`` and ``demo``: the arguments as `ShotSettings`, then `run_shot`."""
    settings = settings_from_args(args)
    if "mp4" in settings.write and not pyav_available():
        raise ValueError("--write mp4 needs PyAV (a dependency): pip install av, or leave mp4 out of --write.")
    run_shot(settings)


def settings_from_args(args: argparse.Namespace) -> ShotSettings:
    """The parsed ``run``/``demo`` arguments as `ShotSettings`: each setting's value under the field its declaration
    names; the sampling settings into each stage's `SamplingOptions` (the seeds per stage, the rest shared)."""
    sampling = {stage: SamplingOptions.for_stage(stage, **values(args, S.SAMPLING, stage)) for stage in S.STAGES}
    shot_fields = {f.name for f in fields(ShotSettings)}
    given = values(args, [s for s in (*S.SHOT_INPUTS, *S.SHOT_SETTINGS) if s not in S.SAMPLING])
    return ShotSettings(**{k: v for k, v in given.items() if k in shot_fields}, **sampling)
