"""Renders one picture per CompositeEdit mode from a clip with ground-truth amodal layers, for the README.

The clip is a folder in the layout of ``models.evaluation.synthetic`` (``read_clip``): ``rgb/``, ``modal/``, ``amodal/``,
``amodal_rgb/`` and ``occluder/`` with one PNG per frame (several objects: one sub-folder per object in
``modal/``, ``amodal/`` and ``amodal_rgb/``, back to front). The background plate is not used: ``remove_occluder``
and ``move`` build the clean plate from the clip, as the node does without a ``background`` input.

Each picture ``<out>/composite_<mode>.png`` has the input frames on top and the mode's output below, for a few
evenly spaced frames (``layer`` is shown over a checkerboard so its alpha is visible). The inputs are the clip's
ground truth, not model output: the model's weights cannot run everywhere, and the pictures show the edits.

    python tools/render_composite_examples.py example_clips/<clip> --out docs/images
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]

LABEL_HEIGHT = 14

logger = logging.getLogger("render_composite_examples")


def checkerboard(height: int, width: int, square: int = 8) -> torch.Tensor:
    """``[H, W, 3]`` light-grey checkerboard, the usual backdrop for showing transparency."""
    rows, cols = torch.arange(height)[:, None] // square, torch.arange(width)[None, :] // square
    return (0.8 + 0.15 * ((rows + cols) % 2)).float()[..., None].expand(height, width, 3)


def strip(frames: torch.Tensor, label: str) -> Image.Image:
    """Frames ``[K, H, W, 3]`` side by side under a one-line label."""
    row = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 0, 2, 3).reshape(frames.shape[1], -1, 3)
    image = Image.new("RGB", (row.shape[1], row.shape[0] + LABEL_HEIGHT), "white")
    image.paste(Image.fromarray(row.numpy()), (0, LABEL_HEIGHT))
    ImageDraw.Draw(image).text((2, 1), label, fill="black")
    return image


def render(clip: Path, out: Path, frames: int, feather: float, offset: tuple[int, int] | None) -> list[Path]:
    """Writes ``composite_<mode>.png`` for every mode into ``out``; returns the paths."""
    from diffusion_vas.models.editing.composite import MODES, composite_edit
    from diffusion_vas.models.evaluation.synthetic import read_clip

    data = read_clip(clip)
    if data.amodal_rgb is None or data.occluder is None:
        raise ValueError(f"{clip} needs amodal_rgb/ and occluder/ folders (the ground-truth layers) besides rgb/, "
                         "modal/ and amodal/.")
    t, h, w = data.rgb.shape[:3]
    picks = torch.linspace(0, t - 1, min(frames, t)).round().long().unique()
    offset = offset if offset is not None else (-(w // 10), 0)
    top = strip(data.rgb[picks], "input")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for mode in MODES:
        image, mask = composite_edit(
            data.rgb, data.amodal_rgb, data.amodal, mode, modal_masks=data.modal, occluder_masks=data.occluder,
            feather=feather, offset=offset,
        )
        if mode == "layer":
            alpha = mask[..., None]
            image = checkerboard(h, w) * (1 - alpha) + image * alpha
        bottom = strip(image[picks], f"{mode} (ground-truth amodal layers)")
        picture = Image.new("RGB", (top.width, top.height + bottom.height), "white")
        picture.paste(top, (0, 0))
        picture.paste(bottom, (0, top.height))
        path = out / f"composite_{mode}.png"
        picture.save(path)
        written.append(path)
        logger.info("wrote %s", path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path, help="clip folder in the layout of models.evaluation.synthetic")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="where the PNGs go")
    parser.add_argument("--frames", type=int, default=4, help="how many evenly spaced frames each picture shows")
    parser.add_argument("--feather", type=float, default=1.0, help="alpha feather in pixels")
    parser.add_argument("--offset", type=int, nargs=2, metavar=("X", "Y"),
                        help="move offset in pixels (default: -W/10, 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        render(args.clip, args.out, args.frames, args.feather, tuple(args.offset) if args.offset else None)
    except ValueError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
