"""Speed and memory of the two stages for several clip lengths (prints figures; not a test).

Checkpoint mode (any Diffusion-VAS checkpoints, the tiny parity ones included): for each length, a synthetic
clip of that many frames at the processing size goes through stage 1 (`predict_amodal_masks`) and stage 2
(`complete_content`, given stage 1's masks). Reported per stage: seconds, seconds per frame and per denoising
step, peak resident memory of the process during the stage (RSS, sampled every 5 ms; where it cannot be sampled the
process's lifetime peak), and peak CUDA memory allocated when on a GPU. With ``--repeats N`` every measurement
runs N times and the fastest time is kept (other programs on the machine only ever slow a run down).

    python benchmarks/benchmark_speed.py --stage1 ../shared/parity/tiny-amodal-segmentation \
        --stage2 ../shared/parity/tiny-content-completion --lengths 25 60 250 --steps 10

Real-size mode (``--real-size``): the UNet alone with SVD-XT's configuration plus ``conv_in2`` (about 1.5 B
parameters, random weights; no download), at 256x512 (latents 32x64), in float16 on CUDA (``--dtype`` to change).
Each step runs the UNet once per 25-frame window (as the sampler does) on a classifier-free-guidance batch of 2.
Reported: seconds per step, total for ``--steps`` steps, peak CUDA memory, and achieved TFLOP/s counting
14.3 TFLOP per UNet forward of one 25-frame 256x512 video (28.6 TFLOP per window per step).

    python benchmarks/benchmark_speed.py --real-size --lengths 25 60 250 --steps 5
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import threading
import time
from pathlib import Path

import torch

from diffusion_vas.models.base.memory import peak_rss, resident_memory
from diffusion_vas.models.engine.options import parse_size as size_arg
from diffusion_vas.models.realsize import REAL

logger = logging.getLogger("benchmark_speed")

TFLOP_PER_FORWARD = 14.3  # one UNet forward, batch 1, 25 frames at 256x512 (latents 32x64)
WINDOW, OVERLAP = 25, 8


class PeakMemory:
    """Peak resident set size (bytes) of this process while the ``with`` block runs; None where unknown.

    Sampled every 5 ms (`resident_memory`: ``/proc`` on Linux, psutil elsewhere). Where it cannot be sampled, the
    process's lifetime peak (`peak_rss`, which cannot be reset, so it also covers what ran before the block).
    """

    def __init__(self):
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self.peak = resident_memory()
        if self.peak is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, resident_memory())
        else:
            self.peak = peak_rss()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, resident_memory())


def in_units(value: int | None, unit: int, digits: int) -> str:
    """``value / unit`` with ``digits`` decimals, or ``-`` for a figure this platform cannot measure."""
    return "-" if value is None else f"{value / unit:.{digits}f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage1", type=Path, help="amodal-segmentation checkpoint folder")
    parser.add_argument("--stage2", type=Path, help="content-completion checkpoint folder")
    parser.add_argument("--real-size", action="store_true", help="time a real-size UNet with random weights")
    parser.add_argument("--lengths", type=int, nargs="+", default=[25, 60, 250], help="clip lengths in frames")
    parser.add_argument("--steps", type=int, default=25, help="denoising steps (default 25)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement, fastest kept (default 1)")
    parser.add_argument("--size", type=size_arg, help="processing HxW (default 64x128; 256x512 with --real-size)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice); on a busy "
                        "machine fewer threads than cores avoid threads waiting on each other")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                        help="default: float16 on CUDA, float32 on the CPU")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.real_size and args.stage1 is None and args.stage2 is None:
        raise SystemExit("Pass --stage1 and/or --stage2 checkpoint folders, or --real-size.")
    if min(args.steps, args.repeats, *args.lengths) < 1:
        raise SystemExit("--steps, --repeats and every --lengths value must be at least 1.")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype if args.dtype != "auto" else ("float16" if device.type == "cuda" else "float32"))
    size = args.size or ((256, 512) if args.real_size else (64, 128))
    print(f"device {device} ({_device_name(device)}), {str(dtype).replace('torch.', '')}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, processing {size[0]}x{size[1]}, {args.steps} steps, "
          f"fastest of {args.repeats}")
    if args.real_size:
        real_size(args.lengths, args.steps, size, device, dtype, args.repeats)
    else:
        checkpoints(args.stage1, args.stage2, args.lengths, args.steps, size, device, dtype, args.repeats)


def checkpoints(stage1, stage2, lengths, steps, size, device, dtype, repeats) -> None:
    from diffusion_vas.models import SamplingOptions, complete_content, load_pipeline, predict_amodal_masks
    from diffusion_vas.models.evaluation.synthetic import SyntheticSpec, generate_clip

    pipes = {name: load_pipeline(path, device=device, dtype=dtype)
             for name, path in (("stage 1", stage1), ("stage 2", stage2)) if path is not None}
    rows = []
    for length in lengths:
        clip = generate_clip(SyntheticSpec(frames=length, height=size[0], width=size[1]), seed=0)
        amodal = clip.amodal
        if "stage 1" in pipes:
            options = SamplingOptions(num_inference_steps=steps)
            result, row = _measure(lambda: predict_amodal_masks(pipes["stage 1"], clip.modal, clip.depth, size,
                                                                options), device, repeats)
            amodal = result.masks_processed
            rows.append(("stage 1", length, *row))
        if "stage 2" in pipes:
            options = SamplingOptions.for_stage("content", num_inference_steps=steps)
            _, row = _measure(lambda: complete_content(pipes["stage 2"], clip.rgb, clip.modal, amodal, size,
                                                       options), device, repeats)
            rows.append(("stage 2", length, *row))
        logger.info("%d frames done", length)
    header = ("stage", "frames", "windows", "seconds", "s/frame", "s/step", "peak RSS MiB", "peak VRAM MiB")
    table = []
    for stage, length, seconds, rss, vram in rows:
        table.append((stage, str(length), str(_windows(length)), f"{seconds:.2f}", f"{seconds / length:.3f}",
                      f"{seconds / steps:.2f}", in_units(rss, 2**20, 0), in_units(vram, 2**20, 0)))
    print("\n".join(_table(header, table)))
    print("s/step: the stage's whole time (conditions, CLIP, VAE encoding and decoding included) / steps.")


def real_size(lengths, steps, size, device, dtype, repeats) -> None:
    from diffusion_vas.models.realsize import build_unet

    flop_scale = (size[0] * size[1]) / (256 * 512)
    if device.type != "cuda":
        logger.warning("--real-size on %s: one step costs %.1f TFLOP per window; expect minutes per step.",
                       device, 2 * TFLOP_PER_FORWARD * flop_scale)
    start = time.perf_counter()
    unet = build_unet(REAL.unet, 0, device).to(dtype).eval().requires_grad_(False)
    params = sum(p.numel() for p in unet.parameters())
    print(f"UNet: {params / 1e9:.2f} B parameters, random weights, built in {time.perf_counter() - start:.1f} s")
    latent_h, latent_w = size[0] // 8, size[1] // 8
    rows = []
    for length in lengths:
        span, windows = min(WINDOW, length), _windows(length)
        sample = torch.randn(2, span, 12, latent_h, latent_w, device=device, dtype=dtype)
        context = torch.randn(2 * span, 1, REAL.unet["cross_attention_dim"], device=device, dtype=dtype)
        time_ids = torch.tensor([[7.0, 127.0, 0.02]] * 2, device=device, dtype=dtype)

        def step() -> None:
            for _ in range(windows):
                unet(sample, 700.0, encoder_hidden_states=context, added_time_ids=time_ids)

        with torch.no_grad():
            step()  # warm-up (kernel selection, allocator)
            _, (seconds, rss, vram) = _measure(lambda: [step() for _ in range(steps)], device, repeats)
        tflop = 2 * TFLOP_PER_FORWARD * windows * span / WINDOW * flop_scale * steps
        rows.append((str(length), str(windows), f"{seconds / steps:.3f}", f"{seconds:.2f}",
                     in_units(vram, 2**30, 2), in_units(rss, 2**30, 2), f"{tflop / seconds:.3g}"))
    header = ("frames", "windows", "s/step", f"total ({steps} steps)", "peak VRAM GiB", "peak RSS GiB", "TFLOP/s")
    print("\n".join(_table(header, rows)))
    print(f"TFLOP/s counts {TFLOP_PER_FORWARD} TFLOP per UNet forward (batch 1, 25 frames, 256x512), 2 per window "
          f"and step (guidance), scaled by frames per window and by pixels relative to 256x512.")


def _measure(fn, device, repeats: int) -> tuple[object, tuple[float, int | None, int | None]]:
    """Runs ``fn`` ``repeats`` times: ``(result, (fastest seconds, peak RSS bytes, peak CUDA bytes))``, a figure
    this platform cannot measure None."""
    times, peaks = [], []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats):
        gc.collect()
        with PeakMemory() as memory:
            start = time.perf_counter()
            result = fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        peaks.append(memory.peak)
    vram = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return result, (min(times), None if None in peaks else max(peaks), vram)


def _windows(length: int) -> int:
    from diffusion_vas.models.engine.windows import window_starts

    return len(window_starts(length, WINDOW, OVERLAP))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return os.uname().machine if hasattr(os, "uname") else "cpu"


def _table(header, rows) -> list[str]:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(row) -> str:
        return "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths)))

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


if __name__ == "__main__":
    main()
