"""``diffusion-vas memory``: the estimated memory of fine-tuning either stage (the README's table).

    diffusion-vas memory [--frames 25]
"""

from __future__ import annotations

import argparse

from ..models import GIB, MEMORY_SETTINGS as SETTINGS, estimate_memory, memory_table


def add_parsers(commands) -> None:
    parser = commands.add_parser("memory", help="estimated fine-tuning memory (a Markdown table)")
    parser.add_argument("--frames", type=int, default=25, help="frames per training clip (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> None:
    print(memory_table(frames=args.frames))  # noqa: T201 - the table is the output
    for label, kwargs in SETTINGS:
        for size in ((128, 256), (256, 512)):
            e = estimate_memory(size, args.frames, **kwargs)
            print(f"{label} {size}: weights {e.weights / GIB:.2f}, grads {e.gradients / GIB:.2f}, "  # noqa: T201
                  f"optimizer {e.optimizer / GIB:.2f}, activations {e.activations / GIB:.2f}, "
                  f"vae {e.vae_peak / GIB:.2f} GiB")
