"""The fine-tuning loop on `accelerate`: one process per GPU (or CPU), mixed precision, gradient accumulation,
checkpoints that resume bit for bit, validation, and the final checkpoint in the published layout.

Folders under ``out``::

    training_args.json               the full `TrainingConfig` plus run facts (base kind, trained parameters)
    checkpoints/checkpoint-<step>/   accelerate state (model, optimizer, scheduler, scaler, RNG) + trainer_state.json
    validation/step_<step>/          GIFs and metrics.json
    logs/                            tensorboard events (when tensorboard is installed)
    depth_cache/                     estimated depth per clip (stage 1 without depth/ folders)
    final/                           the fine-tuned checkpoint (`load_pipeline` loads it as is)

Randomness: every sample and every noise draw is seeded from ``(seed, process rank, sample index)``, so a resumed
run draws what the uninterrupted run would have drawn, and processes differ from each other. (The authors seed
every process with the same 23, so all GPUs draw the same noise levels and dropout decisions; here each process
draws its own.)
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .config import TrainingConfig
from .data import DepthCache
from .sources import open_source
from .launch import check_launch
from .model import add_lora, enable_block_checkpointing, export_checkpoint, load_base, select_trainable
from .samples import PURPOSE_GLOBAL, PURPOSE_NOISE, IndexRange, TrainingSamples, collate, derived_seed
from .step import LossComputer
from .validation import flat_scalars, run_validation
from ..base.errors import PackError

logger = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
CHECKPOINT_PREFIX = "checkpoint-"
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "no": torch.float32}


def resolve_mixed_precision(value: str, cpu: bool = False) -> str:
    """``auto`` -> ``fp16`` on CUDA (the authors' setting), ``no`` elsewhere."""
    if value == "auto":
        return "fp16" if torch.cuda.is_available() and not cpu else "no"
    return value


def make_optimizer(params, config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW (authors: lr 3e-5, betas 0.9/0.999, wd 0.01, eps 1e-8), or bitsandbytes' 8-bit AdamW."""
    kwargs = dict(lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                  weight_decay=config.weight_decay, eps=config.adam_epsilon)
    if config.use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError as err:
            raise PackError("--use-8bit-adam needs bitsandbytes (a CUDA build): pip install bitsandbytes.") from err
        return bnb.optim.AdamW8bit(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def find_checkpoint(out: Path, resume: str) -> Path:
    """``latest`` -> the newest ``out/checkpoints/checkpoint-N``; otherwise the given folder (or name in there)."""
    folder = out / "checkpoints"
    if resume == "latest":
        found = sorted(folder.glob(f"{CHECKPOINT_PREFIX}*"), key=_checkpoint_step) if folder.is_dir() else []
        if not found:
            raise ValueError(f"--resume latest: no {CHECKPOINT_PREFIX}N folder in {folder}.")
        return found[-1]
    path = Path(resume).expanduser()
    if not path.is_dir() and (folder / resume).is_dir():
        path = folder / resume
    if not (path / STATE_FILE).is_file():
        raise ValueError(f"--resume {resume}: {path} is not a training checkpoint (no {STATE_FILE}); give "
                         f"'latest' or a {folder}/{CHECKPOINT_PREFIX}N folder.")
    return path


def train(config: TrainingConfig, progress: bool = True, on_step: Callable[[int, float], None] | None = None) -> Path:
    """Runs the fine-tuning described by ``config``; returns the ``final`` checkpoint folder.

    Call it in every process (``accelerate launch`` starts them); single-process runs need nothing else.
    ``on_step(step, loss)`` is called after every optimiser step with the loss averaged over processes.
    The run is ``config.max_steps`` optimiser steps, or ``config.epochs`` epochs of `steps_per_epoch` steps
    when ``max_steps`` is None (logged at the start with the steps per epoch).
    """
    check_launch("train")
    out = config.out_dir
    mixed = resolve_mixed_precision(config.mixed_precision, config.cpu)
    report_to = _tracker(config.report_to)
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps, mixed_precision=mixed, log_with=report_to,
        cpu=config.cpu,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )
    rank, device = accelerator.process_index, accelerator.device
    set_seed(derived_seed(config.seed, rank, 0, PURPOSE_GLOBAL) % 2**32)  # anything left on the global RNGs differs per rank
    weight_dtype = _DTYPES[accelerator.mixed_precision]

    base = load_base(config.base)
    unet = base.unet
    if config.lora_rank > 0:
        trained = add_lora(unet, config.lora_rank, config.lora_alpha)
    else:
        trained = select_trainable(unet, config.trained_patterns)
    if config.gradient_checkpointing:
        enable_block_checkpointing(unet)
    unet.train()
    base.vae.to(device, weight_dtype)
    base.image_encoder.to(device, weight_dtype)
    unet.to(device)
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)  # constant, no warmup (authors)
    unet, optimizer, scheduler = accelerator.prepare(unet, optimizer, scheduler)

    depth = DepthCache(config.depth_cache_dir, config.depth_model, device=str(device))
    with accelerator.main_process_first():  # the main process fills the depth cache, the others read it
        source = open_source(config.data, config.size, config.num_frames, config.seed, config.stage == "amodal",
                             depth, config.data_root, config.synthetic_clips)
        samples = TrainingSamples(source, config, rank, accelerator.num_processes)
        if config.stage == "amodal":
            source.precompute_depth()

    step = 0
    if config.resume:
        checkpoint = find_checkpoint(out, config.resume)
        accelerator.load_state(str(checkpoint))
        step = int(json.loads((checkpoint / STATE_FILE).read_text())["global_step"])
        logger.info("resumed from %s at step %d", checkpoint, step)

    total = total_steps(config, samples.steps_per_epoch)
    trained_count = sum(p.numel() for p in params)
    run_facts = {"base_kind": base.kind, "trained_parameters": trained_count, "trained_tensors": len(trained),
                 "processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision,
                 "tracks": len(source), "targets": len(samples.targets),
                 "steps_per_epoch": samples.steps_per_epoch, "total_steps": total}
    args = dict(config.to_dict(), run=run_facts)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "training_args.json").write_text(json.dumps(args, indent=2) + "\n", encoding="utf-8")
        logger.info("training %s: %d tracks (%d targets), %s trained parameters in %d tensors, %d process(es), "
                    "mixed precision %s", config.stage, len(source), len(samples.targets), f"{trained_count:,}",
                    len(trained), accelerator.num_processes, accelerator.mixed_precision)
        logger.info("%d steps per epoch (%d targets / (batch %d x %d process(es) x accumulation %d), rounded up); "
                    "%s", samples.steps_per_epoch, len(samples.targets), config.batch_size,
                    accelerator.num_processes, config.gradient_accumulation_steps,
                    f"{config.epochs} epochs = {total} steps" if config.max_steps is None else
                    f"--max-steps {total} = {total / samples.steps_per_epoch:.2f} epochs")
    if report_to:
        accelerator.init_trackers("diffusion-vas-train", config=_hparams(config))

    per_step = config.batch_size * config.gradient_accumulation_steps
    loader = DataLoader(samples, batch_size=config.batch_size, collate_fn=collate, num_workers=config.num_workers,
                        sampler=IndexRange(step * per_step, max(0, total - step) * per_step))
    loss_fn = LossComputer(base.vae, base.image_encoder, base.clip_mean, base.clip_std, config, device, weight_dtype)
    bar = tqdm(total=total, initial=step, desc=f"train {config.stage}", unit="step",
               disable=not (progress and accelerator.is_local_main_process))
    micro = step * config.gradient_accumulation_steps
    running = []
    for batch in loader:
        generator = torch.Generator().manual_seed(derived_seed(config.seed, rank, micro, PURPOSE_NOISE))
        with accelerator.accumulate(unet):
            loss = loss_fn(unet, batch, generator).loss.mean()
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        micro += 1
        running.append(accelerator.gather(loss.detach().reshape(1)).mean().item())
        if not accelerator.sync_gradients:
            continue
        step += 1
        step_loss = sum(running) / len(running)
        running = []
        if not math.isfinite(step_loss):
            raise PackError(f"The loss became {step_loss} at step {step}; lower --learning-rate or use "
                               f"--mixed-precision bf16/no.")
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if on_step is not None:
            on_step(step, step_loss)
        accelerator.log({"train_loss": step_loss, "lr": scheduler.get_last_lr()[0]}, step=step)
        if step % config.save_every == 0 or step == total:
            save_checkpoint(accelerator, out, step, config.checkpoints_total_limit)
        if config.validation_clips and (step % config.validate_every == 0):
            if accelerator.is_main_process:
                metrics = run_validation(accelerator.unwrap_model(unet), base, samples, step, out, device,
                                         weight_dtype, accelerator.autocast)
                accelerator.log(flat_scalars(metrics), step=step)
            accelerator.wait_for_everyone()
        if step >= total:
            break
    bar.close()

    final = out / "final"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        export_checkpoint(accelerator.unwrap_model(unet), base.unet_config, base.root, final, args)
        logger.info("final checkpoint written to %s", final)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


def total_steps(config: TrainingConfig, per_epoch: int) -> int:
    """The run's optimiser steps: ``max_steps`` when given, else ``epochs x per_epoch`` (the authors'
    ``num_train_epochs x num_update_steps_per_epoch``)."""
    return int(config.max_steps) if config.max_steps is not None else int(config.epochs) * int(per_epoch)


def save_checkpoint(accelerator: Accelerator, out: Path, step: int, keep: int) -> Path:
    """``accelerator.save_state`` into ``out/checkpoints/checkpoint-<step>`` (all processes take part), then keep
    only the newest ``keep`` checkpoints (0 keeps all)."""
    folder = out / "checkpoints" / f"{CHECKPOINT_PREFIX}{step}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / STATE_FILE).write_text(json.dumps({"global_step": step}) + "\n", encoding="utf-8")
        existing = sorted((out / "checkpoints").glob(f"{CHECKPOINT_PREFIX}*"), key=_checkpoint_step)
        for old in existing[:-keep] if keep else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return folder


def _checkpoint_step(path: Path) -> int:
    try:
        return int(path.name[len(CHECKPOINT_PREFIX):])
    except ValueError:
        return -1


def _tracker(report_to: str):
    if report_to in ("none", "", None):
        return None
    if report_to == "auto":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            try:
                import tensorboardX  # noqa: F401
            except ImportError:
                return None
        return "tensorboard"
    return report_to


def _hparams(config: TrainingConfig) -> dict:
    """Scalar settings for the tracker (tensorboard takes int/float/str/bool only)."""
    out = {}
    for key, value in config.to_dict().items():
        if isinstance(value, (int, float, str, bool)):
            out[key] = value
        elif value is not None and not isinstance(value, dict):
            out[key] = str(value)
    return out
