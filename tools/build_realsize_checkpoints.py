"""Writes real-size Diffusion-VAS checkpoints and Depth Anything V2 Large with random weights (no download).

    python tools/build_realsize_checkpoints.py --out /work/realsize                  # both stages + depth, CPU
    python tools/build_realsize_checkpoints.py --out /tmp/realsize --device cuda --variants fp16   # on a GPU

Writes ``OUT/diffusion-vas-amodal-segmentation/``, ``OUT/diffusion-vas-content-completion/`` (the published
diffusers layout: SVD-XT's UNet configuration plus ``conv_in2``, the SVD-XT temporal VAE, the ViT-H/14 image
encoder, feature extractor and Euler scheduler configs; ``.safetensors`` and ``.fp16.safetensors``) and
``OUT/Depth-Anything-V2-Large-hf/`` (transformers layout). The folders load exactly as the published ones
(`load_pipeline`, the loader node, ``diffusion-vas run --stage1/--stage2/--depth-model``). See
`diffusion_vas.models.realsize` for what the weights are and how they are drawn.

Disk: about 9.2 GB per stage for the UNet (6.1 GB float32 + 3.05 GB float16), 4.4 GB for the VAE and image
encoder (shared by the stages through hard links) and 1.3 GB for depth: about 24 GB with both variants, 8 GB with
``--variants fp16``. Memory: at most about 9 GB (the float32 UNet and one variant's copy while it is written).
On the CPU of a 2-core machine the whole build takes a few minutes; on a GPU the weights are drawn there and the
time is mostly writing files.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from diffusion_vas.models.realsize import (
    ARCHITECTURES, DEPTH_FOLDER, STAGE_FOLDERS, VARIANTS, write_depth_model, write_stage_pair,
)

logger = logging.getLogger("build_realsize_checkpoints")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder to write the three model folders into")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="where the weights are drawn: cpu or cuda (default: cpu)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="weight files to write (default: both); fp16 alone serves fp16 and bf16 runs")
    parser.add_argument("--parts", nargs="+", choices=("stages", "depth"), default=["stages", "depth"],
                        help="what to write (default: both)")
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="real",
                        help="real: the published sizes; small: the same layout at test sizes (default: real)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available in this torch build; use --device cpu.")
    architecture = ARCHITECTURES[args.architecture]
    start = time.perf_counter()
    if "stages" in args.parts:
        folders = write_stage_pair(args.out, args.seed, architecture, tuple(args.variants), device, STAGE_FOLDERS)
        print(f"stages written in {time.perf_counter() - start:.1f} s: {', '.join(str(f) for f in folders)}")
    if "depth" in args.parts:
        begin = time.perf_counter()
        folder = write_depth_model(args.out / DEPTH_FOLDER, args.seed, architecture.depth, device)
        print(f"depth written in {time.perf_counter() - begin:.1f} s: {folder}")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
