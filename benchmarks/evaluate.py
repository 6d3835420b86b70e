"""Scores amodal masks (and completions) on a benchmark with ground truth: Diffusion-VAS against model-free
baselines, by the paper's protocol and by the strict one (see models/evaluation/metrics.py and
models/evaluation/evaluate.py).

The benchmark is generated on the fly (synthetic clips, deterministic by seed) or read from a folder in the
layout of models/evaluation/synthetic.py (one clip folder, or a folder of clip folders; stage 1 needs depth/ in
each).

    python benchmarks/evaluate.py --stage1 checkpoints/diffusion-vas-amodal-segmentation --count 8
    python benchmarks/evaluate.py --stage1 ../shared/parity/tiny-amodal-segmentation \
        --stage2 ../shared/parity/tiny-content-completion --count 2 --frames 8 --clip-size 64x128 \
        --size 64x128 --steps 2
    python benchmarks/evaluate.py --clips example_clips/synthetic_occlusion          # baselines only

With ``--samples K`` each stage draws K samples per track: the Diffusion-VAS rows are Top-1 (sample 0) and the
``oracle Top-K`` rows the best of K per track, chosen with the ground truth (the paper's Top-3 rows).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from diffusion_vas.models.engine.options import parse_size as size_arg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    models = parser.add_argument_group("models")
    models.add_argument("--stage1", type=Path, help="amodal-segmentation checkpoint folder (omit: baselines only)")
    models.add_argument("--stage2", type=Path, help="content-completion checkpoint folder (scores completions)")
    models.add_argument("--size", type=size_arg, default=(256, 512), help="processing HxW (default 256x512)")
    models.add_argument("--steps", type=int, default=25, help="denoising steps per stage (default 25)")
    models.add_argument("--completion-masks", choices=("truth", "predicted"), default="truth",
                        help="amodal masks given to stage 2 (default: the true ones)")
    models.add_argument("--samples", type=int, default=1,
                        help="K samples per track and stage: Top-1 and oracle Top-K rows (default 1)")
    models.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    models.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                        help="default: float16 on CUDA, float32 on the CPU")
    data = parser.add_argument_group("benchmark")
    data.add_argument("--clips", type=Path, help="clip folder or folder of clip folders (omit: generate)")
    data.add_argument("--count", type=int, default=4, help="generated clips (default 4)")
    data.add_argument("--seed", type=int, default=0, help="seed of the first generated clip (default 0)")
    data.add_argument("--frames", type=int, default=25, help="frames per generated clip (default 25)")
    data.add_argument("--clip-size", type=size_arg, default=(128, 256), help="generated HxW (default 128x256)")
    data.add_argument("--objects", type=int, default=1, help="objects per generated clip (default 1)")
    data.add_argument("--occluders", type=int, default=1, help="occluders per generated clip (default 1)")
    data.add_argument("--motion", type=float, default=1.0, help="path length scale of generated clips (default 1)")
    data.add_argument("--save-clips", type=Path, help="also write the generated clips here")
    parser.add_argument("--union-radius", type=int, default=4, help="temporal-union baseline: frames each side")
    parser.add_argument("--json", type=Path, help="write the full result (per-clip figures included) here")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from diffusion_vas.models import SamplingOptions
    from diffusion_vas.models.evaluation.evaluate import format_report, run_evaluation
    from diffusion_vas.models.evaluation.synthetic import SyntheticSpec, generate_benchmark, write_clip

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = args.dtype if args.dtype != "auto" else ("float16" if device.startswith("cuda") else "float32")
    clips = args.clips
    spec = SyntheticSpec(frames=args.frames, height=args.clip_size[0], width=args.clip_size[1],
                         objects=args.objects, occluders=args.occluders, motion=args.motion)
    if clips is None and args.save_clips is not None:  # write the generated clips, then evaluate the folder
        for clip in generate_benchmark(args.count, spec, args.seed):
            write_clip(clip, args.save_clips / clip.name)
        clips = args.save_clips
    stage1 = SamplingOptions(num_inference_steps=args.steps)
    stage2 = SamplingOptions.for_stage("content", num_inference_steps=args.steps)
    result = run_evaluation(
        args.stage1, clips, count=args.count, seed=args.seed, spec=spec, stage2_path=args.stage2, size=args.size,
        stage1_options=stage1, stage2_options=stage2, device=device, dtype=getattr(torch, dtype_name),
        union_radius=args.union_radius, completion_masks=args.completion_masks, samples=args.samples,
    )
    print(format_report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
