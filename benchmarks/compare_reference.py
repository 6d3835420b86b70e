"""Times this engine against the authors' reference pipeline on the same checkpoint, in one process.

The reference is imported from a local checkout of github.com/Kaihua-Chen/diffusion-vas kept OUTSIDE this
repository (never copy its code here). Runs alternate (ours, reference, ours, ...) so that machine load affects
both alike; the script also checks that both give the same frames.

    python benchmarks/compare_reference.py --reference-repo ../diffusion-vas \
        --checkpoint ../shared/parity/tiny-amodal-segmentation --frames 25 --steps 10 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from diffusion_vas.models.engine.options import parse_size as size_arg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-repo", required=True, type=Path, help="checkout of the authors' repository")
    parser.add_argument("--checkpoint", required=True, type=Path, help="Diffusion-VAS checkpoint folder")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=size_arg, default=(64, 128), help="processing HxW (default 64x128)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    height, width = args.size

    import diffusion_vas as pack
    sys.path.insert(0, str(args.reference_repo.resolve()))
    from models.diffusion_vas.pipeline_diffusion_vas import DiffusionVASPipeline as Reference

    ours = pack.models.load_pipeline(args.checkpoint)
    reference = Reference.from_pretrained(str(args.checkpoint), torch_dtype=torch.float32)
    reference.set_progress_bar_config(disable=True)

    gen = torch.Generator().manual_seed(0)
    cond_a = torch.rand(args.frames, 3, height, width, generator=gen) * 2 - 1
    cond_b = torch.rand(args.frames, 3, height, width, generator=gen) * 2 - 1

    def run_ours():
        return ours.sample(cond_a, cond_b, seed=23, num_inference_steps=args.steps, window=args.frames)

    def run_reference():
        return reference(cond_a[None], cond_b[None], height=height, width=width, num_frames=args.frames,
                         num_inference_steps=args.steps, decode_chunk_size=8, motion_bucket_id=127, fps=8,
                         noise_aug_strength=0.02, min_guidance_scale=1.5, max_guidance_scale=1.5,
                         generator=torch.manual_seed(23), output_type="pt").frames[0]

    diff = (run_ours() - run_reference()).abs().max().item()  # also warms both up
    times = {"ours": [], "reference": []}
    for _ in range(args.repeats):
        for name, fn in (("ours", run_ours), ("reference", run_reference)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    ours_s, ref_s = statistics.median(times["ours"]), statistics.median(times["reference"])
    print(f"frames={args.frames} steps={args.steps} size={height}x{width} threads={torch.get_num_threads()}")
    print(f"max |ours - reference| = {diff:.2e}")
    print(f"median seconds: ours {ours_s:.3f}  reference {ref_s:.3f}  ratio {ours_s / ref_s:.2f}")


if __name__ == "__main__":
    main()
