"""The working memory a sampling call needs beyond the weights: the estimate model management is given
(`models.engine.runtime.sampling_memory`) against the measured peak, on real-size checkpoints (prints figures; not
a test).

    python tools/build_realsize_checkpoints.py --out /work/realsize --variants fp32 --parts stages
    python benchmarks/benchmark_sampling_memory.py --models /work/realsize
    python benchmarks/benchmark_sampling_memory.py --models /work/realsize --device cuda --dtype fp16

Every setting runs in a fresh Python process that loads the stage-1 checkpoint, reads every weight once (float32
weights stay mapped from the file and become resident when first read), makes random conditions for the setting's
objects and calls `DiffusionVASPipeline.sample` once. Measured: on the CPU the peak resident memory of
the call minus the resident memory right before it (Linux: the kernel's high-water mark, reset before the call
through ``/proc/self/clear_refs``, after returning freed heap to the system; elsewhere sampled every 5 ms); on
CUDA ``torch.cuda.max_memory_allocated`` minus the memory allocated before the call. With ``--parts`` the process
then measures each part alone the same way (one VAE-encoder call, one CLIP call, one UNet call, one decoder call),
which is what the constants of the estimate are calibrated from.

Settings are ``HxW:frames:object_batch_size:samples:decode_chunk_size:guidance`` (``--objects`` objects per call);
the default pair differs in the processing size.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_speed import PeakMemory, _table  # noqa: E402

from diffusion_vas.models.engine.options import SamplingOptions  # noqa: E402
from diffusion_vas.models.engine.runtime import sampling_memory  # noqa: E402
from diffusion_vas.models.realsize import STAGE_FOLDERS  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEFAULT_SETTINGS = ("64x128:8:1:1:8:1.5", "128x256:8:1:1:8:1.5")
FIELDS = ("size", "frames", "object_batch_size", "samples", "decode_chunk_size", "guidance_scale")
GIB = 2**30


def parse_setting(text: str) -> dict:
    """``HxW:frames:object_batch_size:samples:decode_chunk_size:guidance`` -> a dict of those fields."""
    parts = text.split(":")
    if len(parts) != len(FIELDS):
        raise argparse.ArgumentTypeError(f"setting {text!r}: write {':'.join(FIELDS)}, e.g. 128x256:8:1:1:8:1.5")
    height, width = (int(v) for v in parts[0].lower().split("x"))
    return dict(size=(height, width), frames=int(parts[1]), object_batch_size=int(parts[2]), samples=int(parts[3]),
                decode_chunk_size=int(parts[4]), guidance_scale=float(parts[5]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True,
                        help="folder written by tools/build_realsize_checkpoints.py")
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS),
                        help=f"settings {':'.join(FIELDS)} (default: {' '.join(DEFAULT_SETTINGS)})")
    parser.add_argument("--objects", type=int, default=1, help="objects (condition rows) per call (default 1)")
    parser.add_argument("--steps", type=int, default=1, help="denoising steps (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--parts", action="store_true", help="also measure each part of the call alone")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one setting, JSON on stdout
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(parse_setting(args.child), args)))
        return
    folder = args.models / STAGE_FOLDERS[0]
    if not folder.is_dir():
        raise SystemExit(f"--models {args.models} lacks {STAGE_FOLDERS[0]}: build it with python "
                         f"tools/build_realsize_checkpoints.py --out {args.models} --variants fp32 --parts stages")
    print(f"{args.objects} object(s), {args.steps} step(s), {args.dtype} on {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    rows, part_rows = [], []
    for text in args.settings:
        parse_setting(text)
        start = time.perf_counter()
        result = _child(text, args)
        wall = time.perf_counter() - start
        estimate = result["estimate"]
        rows.append((text, f"{estimate['peak'] / GIB:.3f}", f"{result['measured'] / GIB:.3f}",
                     f"{result['measured'] / estimate['peak']:.2f}", max(("encode", "clip", "unet", "decode"),
                                                                         key=estimate.get),
                     f"{result['load_s']:.0f}", f"{result['call_s']:.0f}", f"{wall:.0f}"))
        for part, measured in result.get("parts", {}).items():
            part_rows.append((text, part, f"{estimate[part] / GIB:.3f}", f"{measured / GIB:.3f}",
                              f"{measured / max(estimate[part], 1):.2f}"))
    print("\n".join(_table(("setting", "estimate GiB", "measured GiB", "measured/estimate", "largest part",
                            "load s", "call s", "process s"), rows)))
    if part_rows:
        print("\nparts alone")
        print("\n".join(_table(("setting", "part", "estimate GiB", "measured GiB", "measured/estimate"), part_rows)))


def _child(text: str, args) -> dict:
    command = [sys.executable, __file__, "--models", str(args.models), "--objects", str(args.objects), "--steps",
               str(args.steps), "--device", args.device, "--dtype", args.dtype, "--child", text]
    if args.parts:
        command.append("--parts")
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"setting {text} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(setting: dict, args) -> dict:
    """Loads stage 1 and measures one sample call of ``setting`` (and with ``--parts`` each part alone)."""
    from diffusion_vas.models.engine.loading import load_pipeline

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    start = time.perf_counter()
    pipe = load_pipeline(args.models / STAGE_FOLDERS[0], device, dtype)
    load_s = time.perf_counter() - start
    _touch_weights(pipe)
    size, frames = setting["size"], setting["frames"]
    options = SamplingOptions(num_inference_steps=args.steps, seed=1, **{k: v for k, v in setting.items()
                                                                         if k not in ("size", "frames")})
    generator = torch.Generator().manual_seed(0)
    cond_a, cond_b = (torch.rand(args.objects, frames, 3, *size, generator=generator) * 2 - 1 for _ in range(2))
    estimate = sampling_memory(options, args.objects, size, dtype, frames, pipe.vae_encode_dtype)
    start = time.perf_counter()
    measured = _measure(device, lambda: pipe.sample(cond_a, cond_b, options))
    result = dict(estimate={**estimate.__dict__, "peak": estimate.peak}, measured=measured, load_s=load_s,
                  call_s=time.perf_counter() - start)
    if args.parts:
        result["parts"] = _parts(pipe, options, size, frames, args.objects, device, dtype)
    return result


@torch.no_grad()
def _parts(pipe, options: SamplingOptions, size: tuple[int, int], frames: int, objects: int, device, dtype) -> dict:
    """Each part of the call alone, at the shapes the sampler gives it."""
    from diffusion_vas.models.engine.resize import ENCODE_CHUNK, clip_image_embeddings

    h, w = size[0] // 8, size[1] // 8
    encoded = min(ENCODE_CHUNK, frames)
    pixels = torch.rand(encoded, 3, *size) * 2 - 1
    rows = min(options.object_batch_size, objects * options.samples)
    batch = rows * (2 if options.guidance_scale > 1 else 1)
    span = min(options.window, frames)
    unet_in = torch.randn(batch, span, 12, h, w, device=device, dtype=dtype)
    context = torch.randn(batch * span, 1, pipe.unet.config.cross_attention_dim, device=device, dtype=dtype)
    time_ids = torch.tensor([[7.0, 127.0, 0.02]], device=device, dtype=dtype).repeat(batch, 1)
    chunk = min(options.decode_chunk_size, frames)
    latents = torch.randn(chunk, 4, h, w, device=device, dtype=dtype)
    return dict(
        encode=_measure(device, lambda: pipe.vae.encode(pixels.to(device, pipe.vae_encode_dtype)).latent_dist.mode()),
        clip=_measure(device, lambda: clip_image_embeddings(pipe.image_encoder, pixels, pipe.clip_mean,
                                                            pipe.clip_std, device, dtype)),
        unet=_measure(device, lambda: pipe.unet(unet_in, torch.tensor(1.0), encoder_hidden_states=context,
                                                added_time_ids=time_ids)[0]),
        decode=_measure(device, lambda: pipe.vae.decode(latents, num_frames=chunk).sample),
    )


@torch.no_grad()
def _touch_weights(pipe) -> None:
    """Reads every weight once: float32 files load as tensors mapped from the file (no copy), whose pages become
    resident only when first read; touched here, the weights are all counted before the call, not in it."""
    for module in pipe.modules.values():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.sum()


def _measure(device: torch.device, call) -> int:
    """Peak memory of ``call()`` beyond what was in use right before it, in bytes (see the module docstring)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        call()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    _trim_heap()
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():
        before = _status_kib("VmRSS")
        clear_refs.write_text("5")  # resets VmHWM to the current resident size
        call()
        return (_status_kib("VmHWM") - before) * 1024
    with PeakMemory() as memory:
        before = memory.peak
        call()
    return memory.peak - before


def _trim_heap() -> None:
    """Returns the C heap's free pages to the system (glibc), so the call cannot reuse memory counted before it."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text(encoding="ascii")
    return int(re.search(rf"^{field}:\s+(\d+)", text, re.M).group(1))


if __name__ == "__main__":
    main()
