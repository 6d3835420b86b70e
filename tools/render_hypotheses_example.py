"""The README's picture of several samples: stage 1 with three samples on the bundled example clip, a few frames
of each sample's amodal mask and of the agreement map, as one PNG grid (and the hypotheses workflow's thumbnail).

It runs the **tiny random-weight** test checkpoint (``../shared/parity``, or the suite's own tiny models), so the
shapes are noise: the picture shows the layout and the plumbing, not the method's quality; the README says so.

    python tools/render_hypotheses_example.py [--out docs/images/hypotheses_tiny.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tiny_models import tiny_models  # noqa: E402

from diffusion_vas.models import SamplingOptions, load_pipeline, predict_amodal_masks  # noqa: E402
from diffusion_vas.models.depth.estimator import estimate_depth, load_depth_model  # noqa: E402
from diffusion_vas.models.evaluation.synthetic import read_clip  # noqa: E402
from diffusion_vas.models.stages.hypotheses import agreement  # noqa: E402

SAMPLES, FRAMES, LABEL = 3, (0, 8, 16, 24), 22


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "hypotheses_tiny.png")
    parser.add_argument("--thumbnail", type=Path, default=REPO / "workflows" / "Diffusion-VAS hypotheses.jpg")
    args = parser.parse_args()
    tiny = tiny_models(REPO.parent / "shared" / "parity")
    clip = read_clip(REPO / "example_clips" / "synthetic_occlusion")
    frames, modal = clip.rgb, clip.modal
    depth = clip.depth if clip.depth is not None else estimate_depth(load_depth_model(tiny.depth), frames, "clip")
    options = SamplingOptions.for_stage("amodal", num_inference_steps=4, samples=SAMPLES, object_batch_size=SAMPLES)
    result = predict_amodal_masks(load_pipeline(tiny.stage1), modal, depth, (64, 128), options)
    rows = [("input", [(frames[t] * 255).round().to(torch.uint8).numpy() for t in FRAMES])]
    rows += [(f"sample {k} (seed 23 + {k})", [_grey(result.masks[k, t]) for t in FRAMES]) for k in range(SAMPLES)]
    fraction = agreement(result.masks, SAMPLES)[0]
    rows.append(("agreement (white: all 3)", [_grey(fraction[t]) for t in FRAMES]))
    grid = _grid(rows, "tiny random-weight checkpoint: layout only, not model quality")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out, optimize=True)
    side = min(grid.size)
    grid.crop((0, 0, side, side)).convert("RGB").resize((512, 512)).save(args.thumbnail, quality=85)
    print(args.out, grid.size)


def _grey(mask: torch.Tensor):
    return (mask.float() * 255).round().to(torch.uint8)[..., None].expand(-1, -1, 3).numpy()


def _grid(rows, caption: str) -> Image.Image:
    h, w = rows[0][1][0].shape[:2]
    pad, label_w = 4, 190
    image = Image.new("RGB", (label_w + len(FRAMES) * (w + pad) + pad, LABEL + len(rows) * (h + pad) + pad + LABEL),
                      "white")
    draw = ImageDraw.Draw(image)
    for i, t in enumerate(FRAMES):
        draw.text((label_w + pad + i * (w + pad), 5), f"frame {t}", fill="black")
    for r, (label, tiles) in enumerate(rows):
        y = LABEL + pad + r * (h + pad)
        draw.text((6, y + h // 2 - 6), label, fill="black")
        for i, tile in enumerate(tiles):
            image.paste(Image.fromarray(tile), (label_w + pad + i * (w + pad), y))
    draw.text((6, image.size[1] - LABEL + 4), caption, fill=(160, 0, 0))
    return image


if __name__ == "__main__":
    main()
