"""`TrainingConfig`: every fine-tuning setting and its default, in one place.

The defaults reproduce the authors' recipe (``../shared/docs/reference-training-and-evaluation.md`` §1-3, 10):
AdamW 3e-5 constant (their effective rate; their YAML says 3e-6 but argparse overrides it), betas (0.9, 0.999),
weight decay 0.01, eps 1e-8, no gradient clipping, batch 1 per process, 25 frames at 128x256, 20 epochs over the
targets, fp16 mixed precision on GPUs, noise level ``ln sigma ~ N(0.7, 1.6^2)``, condition noise
``ln sigma_c ~ N(-3, 0.5^2)``, conditioning dropout p = 0.1 (CLIP dropped when u < 2p, both latent conditions
when p <= u < 3p), time ids [8, 127, sigma_c], checkpoints every 500 steps keeping 2, validation every 500 steps
on 7 clips, stage-2 occluders pasted until the mean visible/amodal IoU falls below 0.7 (at most 5), every track a
stage-2 target (the authors' content training takes every entry of its file). The CLI, `train` and
``training_args.json`` all read this dataclass; nothing else holds a default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..engine.options import STAGES

CLIP_CONTEXTS = ("all_frames", "per_frame")
MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")
TRAINED_PATTERNS = ("temporal_transformer_block", "conv_in2")  # authors: a parameter trains if its name has one


@dataclass
class TrainingConfig:
    """One fine-tuning run. Paths are strings so the config round-trips through JSON.

    stage: ``amodal`` (stage 1: modal mask + depth -> amodal mask) or ``content`` (stage 2: modal RGB + amodal
        mask -> amodal RGB).
    base: an SVD-XT folder (``stabilityai/stable-video-diffusion-img2vid-xt`` layout; ``conv_in2`` is created
        from ``conv_in``) or a Diffusion-VAS checkpoint folder (its ``conv_in2`` is kept).
    data: a clip folder, a folder of clip folders (the ``example_clips/`` layout), a SAIL-VOS-format ``.json``
        (with ``data_root``), or ``synthetic`` / ``synthetic:N`` (N generated clips, default `synthetic_clips`).
    out: output folder (checkpoints, validation, logs, ``final/``).
    size: processing ``(height, width)``; multiples of 8 (64 for the real model).
    num_frames: frames per training sample (the model was trained on 25).
    epochs: passes over the targets (the authors train 20). One epoch is `steps_per_epoch` optimiser steps: every
        target once, split across the processes, as the authors' sharded loader does.
    max_steps: optimiser steps (each of ``batch_size x gradient_accumulation_steps`` samples per process); None
        runs ``epochs`` epochs, a number runs exactly that many steps instead (``epochs`` is then unused).
    mixed_precision: ``auto`` = fp16 on CUDA (the authors'), none elsewhere.
    clip_context: ``all_frames`` (authors' training: each frame cross-attends to the 25 per-frame CLIP
        embeddings) or ``per_frame`` (one token per frame, the layout inference uses).
    lora_rank: 0 trains the temporal blocks fully (authors); > 0 trains LoRA adapters of that rank on their
        linear layers instead (merged into the weights on export). ``conv_in2`` is always trained fully.
    occlusion_iou / max_occluders: stage-2 pair synthesis stops once the clip's mean visible/amodal IoU is below
        ``occlusion_iou`` or ``max_occluders`` tracks were pasted.
    complete_iou: stage 2, off (None) by default: only tracks whose mean visible/amodal IoU (over the frames
        where the object is present) is at least this are targets; the others are still
        occluders. The authors train on every entry of their file, so a partly hidden target's "complete" colours
        include whatever hid it; a threshold such as 0.9 keeps only (almost) fully visible targets, whose colours
        are known everywhere. Tracks with ``amodal_rgb/`` (true hidden colours) are always targets. Note that
        SAIL-VOS visible masks are a little smaller than the full masks even when nothing hides the object, so a
        threshold near 1 also drops complete small objects.
    depth_model: Depth Anything V2 folder or file, for stage-1 clips without a ``depth/`` folder.
    depth_cache: where estimated depth is cached (default ``<out>/depth_cache``).
    resume: ``latest`` or a ``checkpoint-N`` folder to continue from.
    """

    stage: str = "amodal"
    base: str = ""
    data: str = ""
    out: str = ""
    data_root: str | None = None
    size: tuple[int, int] = (128, 256)
    num_frames: int = 25
    epochs: int = 20
    max_steps: int | None = None  # None: `epochs` epochs
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 3e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 0.0  # 0 = no clipping (authors: clipping commented out)
    mixed_precision: str = "auto"
    cpu: bool = False  # force the CPU (also makes `accelerate launch --multi_gpu` run CPU processes over gloo)
    seed: int = 23
    p_mean: float = 0.7
    p_std: float = 1.6
    cond_sigma_mean: float = -3.0
    cond_sigma_std: float = 0.5
    conditioning_dropout: float = 0.1
    fps_id: int = 8
    motion_bucket_id: int = 127
    clip_context: str = "all_frames"
    trained_patterns: tuple[str, ...] = TRAINED_PATTERNS
    gradient_checkpointing: bool = False
    use_8bit_adam: bool = False
    lora_rank: int = 0
    lora_alpha: float = 0.0  # 0 = lora_rank
    save_every: int = 500
    checkpoints_total_limit: int = 2
    validate_every: int = 500
    validation_clips: int = 7
    validation_inference_steps: int = 25
    validation_guidance: float = 1.5
    occlusion_iou: float = 0.7
    max_occluders: int = 5
    complete_iou: float | None = None  # None: every track is a stage-2 target (authors)
    synthetic_clips: int = 64
    depth_model: str | None = None
    depth_cache: str | None = None
    num_workers: int = 0
    resume: str | None = None
    report_to: str = "auto"  # auto = tensorboard when installed; "none" to turn off
    extra: dict = field(default_factory=dict)  # free-form notes written into training_args.json

    def __post_init__(self):
        self.size = tuple(int(v) for v in self.size)
        self.trained_patterns = tuple(self.trained_patterns)
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first bad setting and how to fix it."""
        if self.stage not in STAGES:
            raise ValueError(f"stage {self.stage!r}: choose one of {', '.join(STAGES)}.")
        h, w = self.size
        if h <= 0 or w <= 0 or h % 8 or w % 8:
            raise ValueError(f"size {h}x{w}: both sides must be positive multiples of 8 (64 for the real model).")
        if self.max_steps is not None and int(self.max_steps) < 1:
            raise ValueError(f"max_steps must be at least 1 (or None for `epochs` epochs), got {self.max_steps}.")
        for name in ("num_frames", "epochs", "batch_size", "gradient_accumulation_steps", "save_every",
                     "validate_every", "max_occluders", "synthetic_clips", "validation_inference_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be at least 2 (a video), got {self.num_frames}.")
        for name in ("validation_clips", "lora_rank", "num_workers", "checkpoints_total_limit"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}.")
        if not 0 <= self.conditioning_dropout <= 1 / 3:
            raise ValueError(f"conditioning_dropout must be in [0, 1/3] (three disjoint ranges of u), "
                             f"got {self.conditioning_dropout}.")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ValueError(f"mixed_precision {self.mixed_precision!r}: choose one of {', '.join(MIXED_PRECISIONS)}.")
        if self.clip_context not in CLIP_CONTEXTS:
            raise ValueError(f"clip_context {self.clip_context!r}: choose one of {', '.join(CLIP_CONTEXTS)}.")
        if not 0 < self.occlusion_iou <= 1:
            raise ValueError(f"occlusion_iou must be in (0, 1], got {self.occlusion_iou}.")
        if self.complete_iou is not None and not 0 < self.complete_iou <= 1:
            raise ValueError(f"complete_iou must be in (0, 1] (or None: every track is a target), got "
                             f"{self.complete_iou}.")

    @property
    def out_dir(self) -> Path:
        if not self.out:
            raise ValueError("out is empty: give the output folder (--out).")
        return Path(self.out).expanduser()

    @property
    def depth_cache_dir(self) -> Path:
        return Path(self.depth_cache).expanduser() if self.depth_cache else self.out_dir / "depth_cache"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["size"] = list(self.size)
        data["trained_patterns"] = list(self.trained_patterns)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown training settings {unknown}; known: {sorted(known)}.")
        return cls(**data)
