"""The real model on one GPU, in one short run: seconds per stage, peak VRAM, achieved TFLOP/s, torch.compile, the
1080p host-side cost and a run under a 12 GB VRAM cap (prints figures; ``benchmarks/device_check.sh`` builds the
checkpoints first and runs this within its time budget).

    benchmarks/device_check.sh                    # on a GPU machine, at most 8 minutes
    benchmarks/device_check.sh --cpu --small      # the same steps on the CPU at test sizes (checks the script)

Steps, in order of importance; each prints its table as soon as it is done, and a step that could not finish
before ``--deadline`` is reported as skipped instead of started:

1. **Stages** at the trained size (256x512, 25 frames, 25 steps) in bf16 and fp16: per stage the load time, the
   stage's seconds (`predict_amodal_masks` / `complete_content` on a synthetic clip at the processing size, so
   the host-side work is negligible), peak VRAM, achieved TFLOP/s of the whole stage and of the UNet alone.
   TFLOP: 14.3 per UNet forward of one 25-frame video at 256x512 (the figure the README uses), two forwards per
   step with guidance; other sizes scale it by the ratio PyTorch's FLOP counter gives for the two sizes
   (attention grows faster than the pixels).
2. **12 GB cap**: ``torch.cuda.set_per_process_memory_fraction`` limits this process to 12 GiB; both stage nodes
   (loader, AmodalMaskSVD, AmodalContentSVD, bf16) run on a 25-frame clip at 256x512, both checkpoints cached as
   in ComfyUI, so the second stage must offload the first (`nodes.comfy_bridge`). Peak VRAM and the offloads.
3. **1080p host-side cost**: both stage nodes on a 1920x1080 clip and on a small copy of it, same processing size
   and steps; ``(full - small) / frames`` is the pack's own cost per frame (resizes and upscaling run on the GPU).
4. **512x1024**: the stages at twice the trained size per side, bf16.
5. **torch.compile**: the stages with the UNet compiled: the first call (compiling) and a second one, and the
   largest difference from the eager run of step 1; bf16 right after step 1, fp16 last.

``--cpu --small``: the SMALL architecture of `models.realsize` on the CPU, 4 frames at 64x128 (128x256 for
step 4), 2 steps, a 270x480 "HD" clip, no VRAM cap (the CPU has none; the nodes run as in step 2), the
``aot_eager`` compile backend, and step 5 for the first precision only (the fp16 one is the same call, and fp16
kernels are slow on a CPU). The figures mean nothing there; the run proves every step works.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_speed import TFLOP_PER_FORWARD, _table  # noqa: E402

from diffusion_vas.models import SamplingOptions, complete_content, load_pipeline, predict_amodal_masks  # noqa: E402
from diffusion_vas.models.realsize import ARCHITECTURES, STAGE_FOLDERS  # noqa: E402

logger = logging.getLogger("device_check")
GIB = 2**30
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CAP_BYTES = 12 * GIB


@dataclass(frozen=True)
class Plan:
    """Sizes of one check: the real one, or the small CPU one."""

    size: tuple[int, int]
    big: tuple[int, int]
    hd: tuple[int, int]
    frames: int
    steps: int
    host_steps: int


REAL_PLAN = Plan(size=(256, 512), big=(512, 1024), hd=(1080, 1920), frames=25, steps=25, host_steps=2)
SMALL_PLAN = Plan(size=(64, 128), big=(128, 256), hd=(270, 480), frames=4, steps=2, host_steps=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True, help="folder from tools/build_realsize_checkpoints.py")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (checks the script without a GPU)")
    parser.add_argument("--small", action="store_true", help="test sizes (the SMALL architecture's checkpoints)")
    parser.add_argument("--deadline", type=float, help="time.time() by which every step must have finished")
    parser.add_argument("--precisions", nargs="+", choices=sorted(DTYPES), default=["bf16", "fp16"],
                        help="the first is also used for the cap, host-side, bigger-size and first compile steps")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend (default inductor; --cpu --small checks use aot_eager, which "
                             "traces the same graph without minutes of C++ code generation)")
    return parser


class Budget:
    """Starts a step only when its estimated seconds fit before the deadline; says which steps were skipped."""

    def __init__(self, deadline: float | None):
        self.deadline = deadline

    def allows(self, name: str, estimate: float) -> bool:
        left = None if self.deadline is None else self.deadline - time.time()
        if left is not None and left < estimate:
            print(f"\n{name}: skipped, {left:.0f} s left and about {estimate:.0f} s needed")
            return False
        return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device("cpu" if args.cpu else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("No CUDA device: run on a GPU machine, or pass --cpu --small to check the script.")
    plan = SMALL_PLAN if args.small else REAL_PLAN
    architecture = ARCHITECTURES["small" if args.small else "real"]
    folders = [args.models / name for name in STAGE_FOLDERS]
    budget = Budget(args.deadline)
    _environment(device)
    flops = Flops(architecture, plan)
    eager = stages_step(folders, device, args.precisions, plan, plan.size, flops, budget, "stages")
    compile_step(folders, device, args.precisions[:1], plan, flops, budget, eager, args.compile_backend)
    if budget.allows("12 GB cap", 40 if device.type == "cuda" else 0):
        cap_step(folders, device, plan)
    if budget.allows("1080p host-side cost", 45 if device.type == "cuda" else 0):
        host_step(folders, device, plan)
    stages_step(folders, device, args.precisions[:1], plan, plan.big, flops, budget, "bigger size")
    if not args.small:  # the same call as the first precision's; on the CPU fp16 kernels are slow
        compile_step(folders, device, args.precisions[1:], plan, flops, budget, eager, args.compile_backend)
    return 0


def _environment(device: torch.device) -> None:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        what = f"{props.name}, {total / GIB:.1f} GiB ({free / GIB:.1f} free), CUDA {torch.version.cuda}"
    else:
        what = f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {what}; torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}")


class Flops:
    """TFLOP of one UNet forward of a ``frames``-frame video: 14.3 at 256x512 x 25 frames, other sizes scaled by
    PyTorch's FLOP counter (run on the meta device: shapes only, a second per size)."""

    def __init__(self, architecture, plan: Plan):
        self.architecture, self.plan, self._counted = architecture, plan, {}

    def counted(self, size: tuple[int, int], frames: int) -> float:
        key = (size, frames)
        if key not in self._counted:
            from torch.utils.flop_counter import FlopCounterMode

            from diffusion_vas.models.realsize import build_unet

            unet = build_unet(self.architecture.unet, 0, "meta").eval()
            h, w = size[0] // 8, size[1] // 8
            context = self.architecture.unet["cross_attention_dim"]
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                unet(torch.empty(1, frames, 12, h, w, device="meta"), torch.tensor(1.0, device="meta"),
                     encoder_hidden_states=torch.empty(frames, 1, context, device="meta"),
                     added_time_ids=torch.empty(1, 3, device="meta"))
            self._counted[key] = counter.get_total_flops() / 1e12
        return self._counted[key]

    def per_forward(self, size: tuple[int, int], frames: int) -> float:
        return TFLOP_PER_FORWARD * self.counted(size, frames) / self.counted(REAL_PLAN.size, REAL_PLAN.frames)


def synthetic_inputs(frames: int, size: tuple[int, int]) -> dict:
    """A synthetic clip at ``size``: rendered at a quarter of it (at most 270x480) and upsampled, so a 1080p
    clip costs no rendering time. IMAGE ``[T, H, W, 3]``, MASK ``[T, H, W]`` float tensors."""
    from diffusion_vas.models.evaluation.synthetic import SyntheticSpec, generate_clip

    small = (min(size[0], 270), min(size[1], 480))
    clip = generate_clip(SyntheticSpec(frames=frames, height=small[0], width=small[1]), seed=0)

    def up(x, mode):
        return F.interpolate(x, size=size, mode=mode)

    return dict(images=up(clip.rgb.permute(0, 3, 1, 2), "bilinear").clamp(0, 1).permute(0, 2, 3, 1).contiguous(),
                modal=up(clip.modal[0].float()[:, None], "nearest")[:, 0],
                amodal=up(clip.amodal[0].float()[:, None], "nearest")[:, 0],
                depth=up(clip.depth.float()[:, None], "bilinear")[:, 0])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / GIB:.2f}" if device.type == "cuda" else "-"


def run_stage(pipe, stage: int, inputs: dict, size, frames: int, steps: int):
    """One stage call on the clip; returns (seconds, a result tensor to compare runs with)."""
    device = pipe.device
    _sync(device)
    start = time.perf_counter()
    if stage == 1:
        options = SamplingOptions.for_stage("amodal", num_inference_steps=steps)
        result = predict_amodal_masks(pipe, inputs["modal"][:frames], inputs["depth"][:frames], size, options)
        out = result.probability
    else:
        options = SamplingOptions.for_stage("content", num_inference_steps=steps)
        result = complete_content(pipe, inputs["images"][:frames], inputs["modal"][:frames],
                                  inputs["amodal"][:frames], size, options)
        out = result.rgb
    _sync(device)
    return time.perf_counter() - start, out


def unet_seconds(pipe, size, frames: int, repeats: int = 3) -> float:
    """Seconds of one guidance batch (2 x ``frames`` frames) through the UNet alone, after a warm-up call."""
    config, device, dtype = pipe.unet.config, pipe.device, pipe.dtype
    sample = torch.randn(2, frames, 12, size[0] // 8, size[1] // 8, device=device, dtype=dtype)
    context = torch.randn(2 * frames, 1, config.cross_attention_dim, device=device, dtype=dtype)
    time_ids = torch.tensor([[7.0, 127.0, 0.02]] * 2, device=device, dtype=dtype)
    step = torch.tensor(1.0, device=device)
    with torch.no_grad():
        pipe.unet(sample, step, encoder_hidden_states=context, added_time_ids=time_ids)
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            pipe.unet(sample, step, encoder_hidden_states=context, added_time_ids=time_ids)
        _sync(device)
    return (time.perf_counter() - start) / repeats


def _estimate(plan: Plan, size, device) -> float:
    """Rough seconds of one stage run on an H100-class GPU (for the budget; 0 on the CPU: no budget there)."""
    if device.type != "cuda":
        return 0.0
    return 15.0 * (size[0] * size[1]) / (256 * 512) * plan.steps / 25


def stages_step(folders, device, precisions, plan: Plan, size, flops: Flops, budget: Budget, name: str) -> dict:
    """Step 1 (and 4): both stages per precision; returns {(precision, stage): result tensor}."""
    rows, results = [], {}
    inputs = synthetic_inputs(plan.frames, size)
    forward = flops.per_forward(size, plan.frames)
    for precision in precisions:
        for stage, folder in ((1, folders[0]), (2, folders[1])):
            if not budget.allows(f"{name} {precision} stage {stage}", _estimate(plan, size, device) + 10):
                continue
            start = time.perf_counter()
            pipe = load_pipeline(folder, device, DTYPES[precision])
            _sync(device)
            load_s = time.perf_counter() - start
            _reset_peak(device)
            seconds, out = run_stage(pipe, stage, inputs, size, plan.frames, plan.steps)
            peak = _peak(device)
            unet_s = unet_seconds(pipe, size, plan.frames)
            results[(precision, stage)] = out
            stage_tflop = 2 * forward * plan.steps
            rows.append((f"stage {stage}", precision, f"{load_s:.1f}", f"{seconds:.2f}", peak,
                         f"{stage_tflop / seconds:.0f}", f"{unet_s:.3f}", f"{2 * forward / unet_s:.0f}"))
            del pipe
            _free(device)
    print(f"\n{name}: {size[0]}x{size[1]}, {plan.frames} frames, {plan.steps} steps, guidance 1.5 "
          f"({forward:.1f} TFLOP per UNet forward, {flops.counted(size, plan.frames):.1f} counted by PyTorch)")
    print("\n".join(_table(("stage", "precision", "load s", "stage s", "peak VRAM GiB", "stage TFLOP/s",
                            "UNet s/step", "UNet TFLOP/s"), rows)))
    return results


def cap_step(folders, device, plan: Plan) -> None:
    """Step 2: both stage nodes under a 12 GiB cap, both checkpoints cached (the second offloads the first)."""
    from diffusion_vas.nodes import comfy_bridge, loader, stages

    capped = device.type == "cuda"
    if capped:
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, CAP_BYTES / total), device)
    moves = _CountMoves()
    logging.getLogger(comfy_bridge.__name__).addHandler(moves)
    inputs = synthetic_inputs(plan.frames, plan.size)
    fast = dict(steps=min(plan.steps, 5), width=plan.size[1], height=plan.size[0], seed=1)
    outcome = "failed"
    _reset_peak(device)
    start = time.perf_counter()
    try:
        with torch.inference_mode():  # as ComfyUI's executor calls nodes
            model1 = loader.DiffusionVASLoader().load(str(folders[0]), "bf16")[0]
            masks = stages.AmodalMaskSVD().predict(model1, inputs["modal"], inputs["depth"][..., None].expand(
                -1, -1, -1, 3), **fast)[0]
            model2 = loader.DiffusionVASLoader().load(str(folders[1]), "bf16")[0]
            rgb = stages.AmodalContentSVD().complete(model2, inputs["images"], inputs["modal"], masks, **fast)[0]
        _sync(device)
        outcome = f"outputs {tuple(masks.shape)} and {tuple(rgb.shape)}"
    except torch.cuda.OutOfMemoryError as err:  # the finding this step looks for: report it, go on with the others
        outcome = f"OUT OF MEMORY ({str(err).splitlines()[0]})"
    finally:
        seconds = time.perf_counter() - start
        if capped:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
        logging.getLogger(comfy_bridge.__name__).removeHandler(moves)
        loader._cache.clear()
        _free(device)
    cap = f"{CAP_BYTES / GIB:.0f} GiB cap" if capped else "no cap on the CPU"
    print(f"\n12 GB cap ({cap}): both stage nodes, bf16, {plan.frames} frames at {plan.size[0]}x{plan.size[1]}, "
          f"{fast['steps']} steps: {seconds:.1f} s, peak VRAM {_peak(device)} GiB, {moves.count} offload(s), "
          f"{outcome}")


class _CountMoves(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record):
        self.count += "moving" in record.getMessage()


def host_step(folders, device, plan: Plan) -> None:
    """Step 3: each stage node at the HD size and on a small copy; the difference per frame is the host's cost."""
    from diffusion_vas.nodes import loader, stages

    fast = dict(steps=plan.host_steps, width=plan.size[1], height=plan.size[0], seed=1)
    clips = {"small": synthetic_inputs(plan.frames, plan.size), "full": synthetic_inputs(plan.frames, plan.hd)}
    rows = []
    for stage, folder in ((1, folders[0]), (2, folders[1])):
        model = loader.DiffusionVASLoader().load(str(folder), "bf16")[0]
        seconds = {}
        for label, inputs in clips.items():
            _sync(device)
            start = time.perf_counter()
            with torch.inference_mode():
                if stage == 1:
                    stages.AmodalMaskSVD().predict(model, inputs["modal"],
                                                   inputs["depth"][..., None].expand(-1, -1, -1, 3), **fast)
                else:
                    stages.AmodalContentSVD().complete(model, inputs["images"], inputs["modal"], inputs["amodal"],
                                                       **fast)
            _sync(device)
            seconds[label] = time.perf_counter() - start
        rows.append((f"stage {stage}", f"{seconds['full']:.2f}", f"{seconds['small']:.2f}",
                     f"{(seconds['full'] - seconds['small']) / plan.frames * 1000:.0f}"))
        loader._cache.clear()
        _free(device)
    print(f"\nhost-side cost at {plan.hd[1]}x{plan.hd[0]}: {plan.frames} frames, processing {plan.size[0]}x"
          f"{plan.size[1]}, {plan.host_steps} step(s), bf16 nodes")
    print("\n".join(_table(("node", "HD s", "small copy s", "host ms/frame"), rows)))


def compile_step(folders, device, precisions, plan: Plan, flops: Flops, budget: Budget, eager: dict,
                 backend: str) -> None:
    """Step 5: the stages with the UNet compiled: first call (compiles), second call, difference from eager."""
    if not precisions:
        return
    rows = []
    inputs = synthetic_inputs(plan.frames, plan.size)
    forward = flops.per_forward(plan.size, plan.frames)
    for precision in precisions:
        for stage, folder in ((1, folders[0]), (2, folders[1])):
            estimate = 2 * _estimate(plan, plan.size, device) + (150 if device.type == "cuda" else 0)
            if not budget.allows(f"torch.compile {precision} stage {stage}", estimate):
                continue
            pipe = load_pipeline(folder, device, DTYPES[precision])
            pipe.unet.set_compiled(True, backend=backend)
            first, _ = run_stage(pipe, stage, inputs, plan.size, plan.frames, plan.steps)
            _reset_peak(device)
            second, out = run_stage(pipe, stage, inputs, plan.size, plan.frames, plan.steps)
            reference = eager.get((precision, stage))
            diff = "-" if reference is None else f"{(out.float() - reference.float()).abs().max().item():.2g}"
            rows.append((f"stage {stage}", precision, f"{first:.1f}", f"{second:.2f}", _peak(device),
                         f"{2 * forward * plan.steps / second:.0f}", diff))
            del pipe
            _free(device)
    print(f"\ntorch.compile ({backend}): {plan.size[0]}x{plan.size[1]}, {plan.frames} frames, {plan.steps} steps")
    print("\n".join(_table(("stage", "precision", "first call s (compiles)", "second call s", "peak VRAM GiB",
                            "stage TFLOP/s", "max |diff| vs eager"), rows)))


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
