"""``diffusion-vas benchmark run|score``: the real-dataset benchmarks (SAIL-VOS-2D, TAO-Amodal, MOVi).

    diffusion-vas benchmark run --dataset sailvos --annotations val.json --data-root /data/sailvos_cut_png \
        --output results/sailvos.json [--score]
    accelerate launch --multi_gpu --num_processes 8 -m diffusion_vas.commands benchmark run ...   # a shard each
    diffusion-vas benchmark run ... --samples 3 --score     # Top-1 and the oracle Top-3, as the paper's rows
    diffusion-vas benchmark score --dataset sailvos --annotations val.json --predictions results.json

``score`` takes any result JSON in the authors' format (theirs or this project's) and needs no frames. Registered
by `commands` through `add_parsers`; argument parsing and the handler live here.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..models import settings as S
from ..models import parse_size
from .options import add_settings

logger = logging.getLogger("diffusion_vas")


def add_parsers(commands) -> None:
    """Adds ``benchmark run|score`` to the CLI's subcommands; the handler is stored as ``args.handler``."""
    from ..models import DATASETS
    from ..models import DEFAULT_BUCKETS

    bench = commands.add_parser("benchmark", help="predict and score real datasets (SAIL-VOS-2D, TAO-Amodal, MOVi)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = bench.add_subparsers(dest="benchmark_command", required=True)
    run = actions.add_parser("run", help="stage 1 (and optionally stage 2) over a dataset; writes the authors' "
                                         "result JSON (resumes, shards under accelerate)")
    score = actions.add_parser("score", help="score a result JSON in the authors' format (no frames needed)")
    for sub in (run, score):
        sub.add_argument("--dataset", required=True, choices=DATASETS)
        sub.add_argument("--annotations", required=True, type=Path, help="the curated annotation JSON")
        sub.add_argument("--track-offsets", type=Path,
                         help="tao-amodal: the authors' tao_amodal_track_ids_abs2rel_val.json (result keys use "
                              "relative track ids; without it the absolute ids)")
        sub.add_argument("--buckets", type=float, nargs="+", default=list(DEFAULT_BUCKETS),
                         help="visibility bucket edges (default: %(default)s)")
        sub.add_argument("--summary", type=Path, help="also write the scores as JSON here")
        sub.add_argument("--quiet", action="store_true", help="only warnings and errors")
    score.add_argument("--predictions", required=True, type=Path, help="result JSON in the authors' format")
    score.add_argument("--missing", choices=("error", "skip"), default="error",
                       help="clips without results: error (as the authors' script) or skip (default: %(default)s)")
    score.add_argument("--data-root", type=Path, help=argparse.SUPPRESS)
    run.add_argument("--data-root", required=True, type=Path, help="folder the annotation's frame paths are under")
    run.add_argument("--output", type=Path,
                     help="result JSON (default: the authors' file name in the current folder)")
    add_settings(run, (S.CHECKPOINT,))
    run.add_argument("--content", action="store_true", help="also run stage 2 (content completion)")
    run.add_argument("--content-dir", type=Path, help="with --content: where completed frames go (PNG per clip)")
    add_settings(run, (S.DEPTH_MODEL,))
    run.add_argument("--depth-cache", type=Path, help="folder to keep each clip's raw depth in (reused on resume)")
    add_settings(run, (S.STEPS,))
    add_settings(run, (S.SEED,), stages=("amodal",))
    run.add_argument("--limit", type=int, help="only the first N usable clips (with --score: scored on those)")
    add_settings(run, (S.SAMPLES.variant(
        cli_help="K stage-1 samples per clip (sample k with seed + k; sample 0 in the authors' fields); scoring adds "
                 "the oracle Top-K: per clip the best of K, chosen with the ground truth, as the paper's Top-3 rows"),))
    run.add_argument("--size", type=_size, help="processing HEIGHTxWIDTH instead of the dataset's (256x512); "
                                                 "not the authors' setting")
    add_settings(run, (S.DEVICE.variant(cli_help="auto (accelerate's device per process), cpu, cuda, ..."),
                       S.PRECISION))
    run.add_argument("--score", action="store_true", help="score the merged result file at the end")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=run_command, missing="error")
    score.set_defaults(handler=score_command)


def run_command(args: argparse.Namespace) -> None:
    from ..models import load_pipeline
    from ..models import load_depth_model
    from ..models import open_dataset, run_benchmark, settings_for
    from ..models import resolve_checkpoint, resolve_depth_model
    from ..models import resolve_device, resolve_dtype
    from ..models import SamplingOptions

    settings = settings_for(args.dataset)
    if args.samples < 1:
        raise ValueError(f"--samples {args.samples}: give at least 1.")
    state = _process_state(args.device)
    device = state.device if (args.device == "auto" and state is not None) else resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    output = args.output or Path(settings.result_name)
    data = open_dataset(args.dataset, args.annotations, args.data_root, args.track_offsets)
    amodal = load_pipeline(resolve_checkpoint(args.stage1), device, dtype)
    content = load_pipeline(resolve_checkpoint(args.stage2), device, dtype) if args.content else None
    estimator = load_depth_model(resolve_depth_model(args.depth_model), device, dtype)
    report = run_benchmark(
        args.dataset, data, output, amodal, lambda frames: estimator.predict(frames),
        options=SamplingOptions.for_stage("amodal", seed=args.seed, num_inference_steps=args.steps),
        content_pipe=content,
        content_dir=args.content_dir, depth_cache=args.depth_cache, limit=args.limit,
        process_index=state.process_index if state else 0, num_processes=state.num_processes if state else 1,
        barrier=state.wait_for_everyone if state else None, progress=not args.no_progress, size=args.size,
        samples=args.samples,
    )
    logger.info("%d clips predicted here, %d were already done%s.", report.predicted, report.already_done,
                f"; results merged into {report.output}" if report.merged else "")
    if args.score and report.merged:
        args.predictions = report.output
        score_command(args, limit=args.limit)


def score_command(args: argparse.Namespace, limit: int | None = None) -> None:
    """Scores ``args.predictions``; ``limit`` (a ``run --limit N``): only the first N usable clips, the ones
    that run predicted, and the summary says it is a partial run."""
    from itertools import islice

    from ..models import open_dataset, settings_for
    from ..models import format_summary, load_results, score_results

    settings = settings_for(args.dataset)
    data = open_dataset(args.dataset, args.annotations, None, args.track_offsets)
    results = load_results(args.predictions)
    clips = data.clips() if limit is None else islice(data.clips(), limit)
    summary = score_results(clips, results, settings.kind, settings.score_size, args.buckets,
                            args.missing, source=str(args.predictions))
    if limit is not None:
        summary["partial"] = {"limit": limit, "entries": len(data)}
    summary["skipped_entries"] = [{"entry": i, "reason": r} for i, r in data.skipped]
    logger.info("%s", format_summary(summary, args.dataset))
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")


def _size(text: str) -> tuple[int, int]:
    """``--size`` for argparse: the engine's size rule, its message shown as the argument error."""
    try:
        return parse_size(text, "--size")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _process_state(device: str):
    """accelerate's process state (rank, world size, device), or None when accelerate is not installed.

    On a machine without CUDA (or with ``--device cpu``) the state is asked for CPU processes, so that
    ``accelerate launch --multi_gpu --num_processes N`` (torchrun underneath) gives N gloo-connected CPU
    processes instead of N unconnected copies. ``accelerate launch --cpu --num_processes N``, which starts one
    process only, is refused with that form (`models.training.launch`).
    """
    from ..models import check_launch

    check_launch("benchmark run")
    try:
        from accelerate import PartialState
    except ImportError:
        logger.info("accelerate is not installed: running as one process.")
        return None
    import torch

    return PartialState(cpu=device == "cpu" or not torch.cuda.is_available())
