"""The real model's size on this machine: load time, time and peak memory of PseudoDepth and both stages, through
the nodes and through ``diffusion-vas run`` (prints figures; not a test).

    python tools/build_realsize_checkpoints.py --out /work/realsize     # random weights, published layouts
    python benchmarks/benchmark_realsize.py --models /work/realsize --frames 8 --size 128x256 --steps 1

Nodes: every (part, precision) runs in a fresh Python process, so its peak resident memory is that part's own (a
ComfyUI process holds every model it has loaded, see the README's "Speed and memory"). Each loads its checkpoint
with the node's loader (``DiffusionVASLoader`` / PseudoDepth's model cache: read onto the CPU, then placed on the
compute device for the call), then runs the node once on a synthetic clip of ``--frames`` frames at ``--input``
(default: the processing size): PseudoDepth, AmodalMaskSVD (on the clip's depth), AmodalContentSVD (on the clip's
true amodal masks). Reported: seconds to load, seconds of the node call, resident memory after loading, peak
resident memory of the process (sampled every 5 ms), peak CUDA memory on a GPU, the output's shape. Precisions:
``fp32`` reads the float32 files, ``fp16`` and ``bf16`` the ``.fp16.safetensors`` ones.

CLI (``--cli``): ``diffusion-vas run`` (its ``main``, in a fresh process per precision) on the bundled example
clip's first ``--frames`` frames, depth and both stages on the real-size folders; wall time, peak RSS (sampled as
above) and the files it wrote.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_speed import PeakMemory, _table, in_units  # noqa: E402

from diffusion_vas.models.base.memory import resident_memory  # noqa: E402
from diffusion_vas.models.engine.options import parse_size  # noqa: E402
from diffusion_vas.models.realsize import DEPTH_FOLDER, STAGE_FOLDERS  # noqa: E402

logger = logging.getLogger("benchmark_realsize")
REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example_clips" / "synthetic_occlusion"
PARTS = ("depth", "stage1", "stage2")
GIB = 2**30


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True,
                        help="folder written by tools/build_realsize_checkpoints.py")
    parser.add_argument("--frames", type=int, default=8, help="frames of the clip (default 8)")
    parser.add_argument("--size", type=parse_size, default=(128, 256), help="processing HxW (default 128x256)")
    parser.add_argument("--input", type=parse_size, help="input HxW of the node clip (default: the processing size)")
    parser.add_argument("--steps", type=int, default=1, help="denoising steps (default 1)")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "fp16", "bf16"), default=["fp32", "bf16"])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--cli", action="store_true", help="also run diffusion-vas run once per precision")
    parser.add_argument("--no-nodes", action="store_true", help="skip the node runs (with --cli: the CLI only)")
    parser.add_argument("--threads", type=int, help="torch threads in every run (default: torch's choice)")
    parser.add_argument("--child", choices=(*PARTS, "cli"), help=argparse.SUPPRESS)  # one run, JSON on stdout
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        result = cli_run(args.precision, args) if args.child == "cli" else node_run(args.child, args.precision, args)
        print(json.dumps(result))
        return
    missing = [name for name in (*STAGE_FOLDERS, DEPTH_FOLDER) if not (args.models / name).is_dir()]
    if missing:
        raise SystemExit(f"--models {args.models} lacks {', '.join(missing)}: build them first with "
                         f"python tools/build_realsize_checkpoints.py --out {args.models}")
    print(f"{args.frames} frames, processing {args.size[0]}x{args.size[1]}, {args.steps} step(s), torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    if not args.no_nodes:
        rows = []
        for precision in args.precisions:
            for part in args.parts:
                result = _child(part, precision, args)
                logger.info("%s %s: %s", part, precision, json.dumps(result))
                rows.append((part, precision, f"{result['load_s']:.1f}", f"{result['run_s']:.1f}",
                             in_units(result['loaded_rss'], GIB, 2), in_units(result['peak_rss'], GIB, 2),
                             "-" if result["peak_vram"] is None else f"{result['peak_vram'] / GIB:.2f}",
                             result["device"], "x".join(map(str, result["shape"]))))
        print("\nnodes, one process per row")
        print("\n".join(_table(("part", "precision", "load s", "node s", "RSS loaded GiB", "peak RSS GiB",
                                "peak VRAM GiB", "device", "output"), rows)))
    if args.cli:
        rows = []
        for precision in args.precisions:
            result = _child("cli", precision, args)
            logger.info("cli %s: %s", precision, json.dumps(result))
            rows.append((precision, f"{result['seconds']:.1f}", in_units(result['peak_rss'], GIB, 2),
                         f"{result['files']} ({', '.join(result['outputs'])})"))
        print("\ndiffusion-vas run (depth, stage 1, stage 2 in one process)")
        print("\n".join(_table(("precision", "seconds", "peak RSS GiB", "files written"), rows)))


def _child(part: str, precision: str, args) -> dict:
    command = [sys.executable, __file__, "--models", str(args.models), "--frames", str(args.frames),
               "--size", "x".join(map(str, args.size)), "--steps", str(args.steps), "--child", part,
               "--precision", precision]
    if args.input:
        command += ["--input", "x".join(map(str, args.input))]
    if args.threads:
        command += ["--threads", str(args.threads)]
    logger.info("%s %s ...", part, precision)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{part} {precision} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def node_run(part: str, precision: str, args) -> dict:
    """Loads ``part`` through the node's loader and runs the node once (this process does nothing else)."""
    from diffusion_vas.nodes import depth as depth_node, loader, stages
    from diffusion_vas.models.host import get_host

    inputs = node_inputs(args.frames, args.input or args.size)
    fast = dict(steps=args.steps, width=args.size[1], height=args.size[0], seed=1)
    device = get_host().torch_device()
    with PeakMemory() as memory:
        start = time.perf_counter()
        if part == "depth":
            model = str(args.models / DEPTH_FOLDER)
            depth_node.get_estimator(model, precision)
        else:
            model = loader.DiffusionVASLoader().load(str(args.models / STAGE_FOLDERS[part == "stage2"]),
                                                     precision)[0]
        load_s = time.perf_counter() - start
        loaded_rss = resident_memory()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        with torch.inference_mode():  # as ComfyUI's executor calls nodes
            if part == "depth":
                out = depth_node.PseudoDepth().estimate(inputs["images"], model, precision=precision,
                                                        width=args.size[1], height=args.size[0])[0]
            elif part == "stage1":
                out = stages.AmodalMaskSVD().predict(model, inputs["modal"], inputs["depth"], **fast)[0]
            else:
                out = stages.AmodalContentSVD().complete(model, inputs["images"], inputs["modal"], inputs["amodal"],
                                                         **fast)[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        run_s = time.perf_counter() - start
    if not torch.isfinite(out.float()).all():
        raise SystemExit(f"{part} {precision}: the output has NaN or infinite values.")
    return dict(load_s=load_s, run_s=run_s, loaded_rss=loaded_rss, peak_rss=memory.peak,
                peak_vram=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
                device=str(device), shape=list(out.shape))


def node_inputs(frames: int, size: tuple[int, int]) -> dict:
    """ComfyUI-typed inputs: a synthetic clip (IMAGE ``[T, H, W, 3]``, MASK ``[T, H, W]``) at ``size``."""
    from diffusion_vas.models.evaluation.synthetic import SyntheticSpec, generate_clip

    clip = generate_clip(SyntheticSpec(frames=frames, height=size[0], width=size[1]), seed=0)
    return dict(images=clip.rgb, modal=clip.modal[0].float(), amodal=clip.amodal[0].float(),
                depth=clip.depth[..., None].expand(-1, -1, -1, 3))


def cli_run(precision: str, args) -> dict:
    """``diffusion-vas run`` on the example clip, in this process (which does nothing else)."""
    from diffusion_vas.commands import main as cli_main

    with tempfile.TemporaryDirectory(prefix="realsize-cli-") as out:
        argv = ["run", "--frames", str(EXAMPLE / "rgb"), "--masks", str(EXAMPLE / "modal"), "--count",
                str(args.frames), "--out", out, "--overwrite", "--stage1", str(args.models / STAGE_FOLDERS[0]),
                "--stage2", str(args.models / STAGE_FOLDERS[1]), "--depth-model", str(args.models / DEPTH_FOLDER),
                "--size", "x".join(map(str, args.size)), "--steps", str(args.steps), "--dtype", precision, "--quiet"]
        with PeakMemory() as memory:
            start = time.perf_counter()
            code = cli_main(argv)
            seconds = time.perf_counter() - start
        if code:
            raise SystemExit(f"diffusion-vas {' '.join(argv)} exited with {code}")
        files = [p for p in Path(out).rglob("*") if p.is_file()]
        outputs = sorted({p.parent.name for p in files if p.suffix == ".png"})
    return dict(seconds=seconds, peak_rss=memory.peak, files=len(files), outputs=outputs)


if __name__ == "__main__":
    main()
