"""``diffusion-vas train``: fine-tune either stage (the engine is `models.training`).

    diffusion-vas train --stage amodal --base stable-video-diffusion-img2vid-xt/ --data clips/ --out runs/amodal
    diffusion-vas train --stage content --base diffusion-vas-content-completion --data train.json
        --data-root /data/sailvos_cut_png --out runs/content --max-steps 20000
    accelerate launch --multi_gpu --num_processes 8 -m diffusion_vas.commands train ...   # one process per GPU
    accelerate launch --multi_gpu --num_processes 2 -m diffusion_vas.commands train --cpu ...   # CPU processes (gloo)

Several CPU processes need ``--multi_gpu`` and the command's own ``--cpu``: ``accelerate launch --cpu
--num_processes N`` starts one process only, and is refused. Without ``--max-steps`` the run is ``--epochs``
epochs (the authors' 20); the steps per epoch are logged at the start.

``--data`` is a clip folder or a folder of clips (``rgb/``, ``modal/``, ``amodal/``, optional ``depth/`` and
``amodal_rgb/``), a SAIL-VOS-format ``.json`` (with ``--data-root``) or ``synthetic[:N]``. The final checkpoint
is ``OUT/final`` in the published layout. Registered by `commands` through `add_parsers`; every default comes from
`TrainingConfig`.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import MISSING, fields
from pathlib import Path

logger = logging.getLogger("diffusion_vas")


def add_parsers(commands) -> None:
    """Adds ``train`` to the CLI's subcommands; the handler is stored as ``args.handler``."""
    from ..models.training.config import CLIP_CONTEXTS, MIXED_PRECISIONS, STAGES, TrainingConfig

    d = {f.name: f.default for f in fields(TrainingConfig) if f.default is not MISSING}
    p = commands.add_parser("train", help="fine-tune stage 1 (amodal) or stage 2 (content) the authors' way",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--base", required=True,
                   help="SVD-XT folder (conv_in2 created from conv_in) or a Diffusion-VAS checkpoint folder or "
                        "published name (its conv_in2 kept)")
    p.add_argument("--data", required=True, help="clip folder, folder of clips, SAIL-VOS .json, or synthetic[:N]")
    p.add_argument("--out", required=True, type=Path, help="output folder (checkpoints, validation, final/)")
    p.add_argument("--data-root", help="SAIL-VOS JSON: the folder its image_file_names are relative to")
    p.add_argument("--size", default="x".join(map(str, d["size"])), help="HEIGHTxWIDTH (default: %(default)s)")
    p.add_argument("--frames", type=int, default=d["num_frames"], help="frames per sample (default: %(default)s)")
    p.add_argument("--epochs", type=int,
                   help=f"passes over the targets, each split across the processes (default: {d['epochs']}, the "
                        f"authors'; the steps per epoch are logged at the start)")
    p.add_argument("--max-steps", type=int,
                   help="run exactly this many optimiser steps instead of --epochs (default: none)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="per process (default: %(default)s)")
    p.add_argument("--gradient-accumulation-steps", type=int, default=d["gradient_accumulation_steps"])
    p.add_argument("--learning-rate", type=float, default=d["learning_rate"], help="(default: %(default)s)")
    p.add_argument("--mixed-precision", choices=MIXED_PRECISIONS, default=d["mixed_precision"],
                   help="auto: fp16 on CUDA, none on the CPU (default: %(default)s)")
    p.add_argument("--cpu", action="store_true",
                   help="train on the CPU; with `accelerate launch --multi_gpu` the processes use gloo")
    p.add_argument("--seed", type=int, default=d["seed"], help="(default: %(default)s; each process derives its own)")
    p.add_argument("--save-every", type=int, default=d["save_every"], help="checkpoint interval (default: %(default)s)")
    p.add_argument("--keep-checkpoints", type=int, default=d["checkpoints_total_limit"],
                   help="newest checkpoints kept, 0 = all (default: %(default)s)")
    p.add_argument("--resume", help="'latest' or a checkpoint-N folder")
    p.add_argument("--validate-every", type=int, default=d["validate_every"], help="(default: %(default)s)")
    p.add_argument("--validation-clips", type=int, default=d["validation_clips"],
                   help="tracks validated, 0 = no validation (default: %(default)s)")
    p.add_argument("--validation-steps", type=int, default=d["validation_inference_steps"],
                   help="denoising steps in validation (default: %(default)s)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute UNet blocks in the backward pass")
    p.add_argument("--use-8bit-adam", action="store_true", help="bitsandbytes' AdamW8bit (needs bitsandbytes)")
    p.add_argument("--lora-rank", type=int, default=d["lora_rank"],
                   help="LoRA on the temporal blocks instead of training them fully; 0 = off (default: %(default)s)")
    p.add_argument("--clip-context", choices=CLIP_CONTEXTS, default=d["clip_context"],
                   help="all_frames: the authors' training context; per_frame: inference's (default: %(default)s)")
    p.add_argument("--occlusion-iou", type=float, default=d["occlusion_iou"],
                   help="stage 2: paste occluders until the mean visible/amodal IoU is below this (default: %(default)s)")
    p.add_argument("--complete-iou", type=float, default=d["complete_iou"],
                   help="stage 2: only tracks whose mean visible/amodal IoU is at least this are targets (the "
                        "rest still occlude). Off by default: every track is a target, as the authors train, and "
                        "the hidden part's target colours are whatever hid it. Use it (e.g. 0.9) to learn only "
                        "from objects whose colours are known everywhere; tracks with amodal_rgb/ always stay. "
                        "SAIL-VOS visible masks are slightly smaller than the full masks even unoccluded, so "
                        "values near 1 also drop small complete objects (the log says how many were dropped)")
    p.add_argument("--depth-model", help="stage 1, clips without depth/: Depth Anything V2 folder, file or name")
    p.add_argument("--num-workers", type=int, default=d["num_workers"], help="data loader workers (default: %(default)s)")
    p.add_argument("--report-to", default=d["report_to"], help="auto (tensorboard when installed), none, wandb, ...")
    p.add_argument("--quiet", action="store_true", help="only warnings and errors")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> None:
    from ..models.training import TrainingConfig, parse_size, train

    if args.epochs is not None and args.max_steps is not None:
        raise ValueError("Give --epochs or --max-steps, not both (--max-steps fixes the step count, --epochs "
                         "derives it from the data).")
    length = {"epochs": args.epochs} if args.epochs is not None else {}
    base = args.base
    if not Path(base).expanduser().is_dir():
        from ..models.io.catalog import resolve_checkpoint

        base = str(resolve_checkpoint(base))
    depth_model = args.depth_model
    if depth_model and not Path(depth_model).expanduser().exists():
        from ..models.io.catalog import resolve_depth_model

        depth_model = str(resolve_depth_model(depth_model))
    config = TrainingConfig(
        stage=args.stage, base=str(base), data=args.data, out=str(args.out), data_root=args.data_root,
        size=parse_size(args.size), num_frames=args.frames, max_steps=args.max_steps, batch_size=args.batch_size,
        **length,
        gradient_accumulation_steps=args.gradient_accumulation_steps, learning_rate=args.learning_rate,
        mixed_precision=args.mixed_precision, cpu=args.cpu, seed=args.seed, save_every=args.save_every,
        checkpoints_total_limit=args.keep_checkpoints, resume=args.resume, validate_every=args.validate_every,
        validation_clips=args.validation_clips, validation_inference_steps=args.validation_steps,
        gradient_checkpointing=args.gradient_checkpointing, use_8bit_adam=args.use_8bit_adam,
        lora_rank=args.lora_rank, clip_context=args.clip_context, occlusion_iou=args.occlusion_iou,
        complete_iou=args.complete_iou,
        depth_model=depth_model, num_workers=args.num_workers, report_to=args.report_to,
    )
    final = train(config)
    logger.info("fine-tuned checkpoint: %s", final)
