"""Validation during training: sample the first tracks with the current weights, write GIFs and metrics.

Each validated track uses its first ``num_frames`` frames (stage 2: occluders pasted with a fixed seed, so
every validation sees the same pairs) and the authors' sampling settings (guidance 1.5, fps 8, noise
augmentation 0.02) at the training size. GIF rows: stage 1 visible mask | prediction | true full mask;
stage 2 visible colours | prediction | true colours. Metrics (``metrics.json``): stage 1 the paper and strict
protocols of `models.evaluation.metrics`; stage 2 PSNR/SSIM inside the hidden part.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from ..engine.options import SamplingOptions
from ..engine.pipeline import DiffusionVASPipeline
from ..stages.run import complete_content, predict_amodal_masks
from ..evaluation.metrics import completion_metrics, paper_protocol, strict_protocol
from ..io.media import write_animation
from .samples import PURPOSE_VALIDATION, TrainingSamples, derived_seed
from .occluders import synthesize_occlusion

logger = logging.getLogger(__name__)


@torch.no_grad()
def run_validation(unet, base, samples: TrainingSamples, step: int, out: Path, device, dtype,
                   autocast=None) -> dict:
    """Validates ``unet`` on the first ``config.validation_clips`` targets; returns (and writes) the metrics."""
    cfg = samples.config
    folder = Path(out) / "validation" / f"step_{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    was_training = unet.training
    unet.eval()
    pipe = DiffusionVASPipeline(unet=unet, vae=base.vae, image_encoder=base.image_encoder,
                                scheduler_config=base.scheduler_config, clip_mean=base.clip_mean,
                                clip_std=base.clip_std, device=device, dtype=dtype, name="validation")
    options = SamplingOptions(seed=cfg.seed, num_inference_steps=cfg.validation_inference_steps,
                              guidance_scale=cfg.validation_guidance, window=cfg.num_frames, overlap=0)
    t = cfg.num_frames
    preds, amodals, modals, colours, truths, regions = [], [], [], [], [], []
    try:
        for k, index in enumerate(samples.targets[:cfg.validation_clips]):
            track = samples.source.track(index)
            modal, amodal, rgb = track.modal[:t], track.amodal[:t], track.rgb[:t]
            with autocast() if autocast else nullcontext():
                if cfg.stage == "amodal":
                    pred = predict_amodal_masks(pipe, modal, track.depth[:t], cfg.size, options).masks[0]
                    preds.append(pred), amodals.append(amodal), modals.append(modal)
                    panels = [_mask_rgb(modal), _mask_rgb(pred), _mask_rgb(amodal)]
                else:
                    rng = np.random.default_rng(derived_seed(cfg.seed, 0, k, PURPOSE_VALIDATION))
                    occlusion = synthesize_occlusion(
                        modal, amodal, track.key, samples.source.keys,
                        lambda key: samples.occluder_window(key, 0, rng), rng,
                        threshold=cfg.occlusion_iou, max_occluders=cfg.max_occluders)
                    result = complete_content(pipe, rgb, occlusion.modal, amodal, cfg.size, options).rgb[0]
                    truth = track.amodal_rgb[:t] if track.amodal_rgb is not None else rgb
                    truth = truth * amodal[..., None] + (~amodal[..., None]).float()
                    visible = rgb * occlusion.modal[..., None] + (~occlusion.modal[..., None]).float()
                    colours.append(result), truths.append(truth), regions.append(amodal & ~occlusion.modal)
                    panels = [visible, result, truth]
            gif = torch.cat([_to_u8(p) for p in panels], dim=2)
            write_animation(folder / f"{k:02d}_{track.key.replace('/', '_')}.gif", gif, fps=8)
    finally:
        unet.train(was_training)
    if cfg.stage == "amodal":
        metrics = {"paper": paper_protocol(preds, amodals, modals)} if preds else {}
        if preds:
            strict = strict_protocol(preds, amodals, modals)
            strict.pop("per_clip", None)
            metrics["strict"] = strict
    else:
        metrics = completion_metrics(colours, truths, regions) if colours else {}
        metrics.pop("per_clip", None)
    (folder / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2) + "\n", encoding="utf-8")
    logger.info("validation at step %d: %s", step, _summary(metrics))
    return metrics


def flat_scalars(metrics: dict, prefix: str = "val") -> dict[str, float]:
    """Nested metric dict -> ``{"val/paper/miou": 0.8, ...}`` of finite floats (for trackers)."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            out.update(flat_scalars(value, name))
        elif isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def _mask_rgb(mask: torch.Tensor) -> torch.Tensor:
    return mask.float()[..., None].expand(*mask.shape, 3)


def _to_u8(frames: torch.Tensor) -> torch.Tensor:
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8)


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _summary(metrics: dict) -> str:
    return ", ".join(f"{k.split('/', 1)[1]}={v:.4f}" for k, v in flat_scalars(metrics).items()
                     if k.endswith(("miou", "miou_occ", "psnr", "ssim")))
