"""The command line, one module per subcommand: ``run`` and ``demo`` (`run`), ``train``, ``benchmark`` and
``memory``. Both stages on a shot without ComfyUI:

    diffusion-vas run --frames shot.mp4 --masks masks/ --out results/
    diffusion-vas demo --out results/demo      # the bundled example clip

A shot of any length streams from decode to write (`models.shot`): memory stays flat in its length, results are
written as they are produced, and ``--resume`` continues a stopped run. Models are folder paths or the published
names, downloaded on first use into ``$DIFFUSION_VAS_MODELS_DIR/<kind>/<name>`` (default
``~/.cache/diffusion-vas``). Exit codes: 0 success, 1 a problem with the inputs or models (the message says
which), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..models import PackError
from ..models import tune_for_long_runs
from . import benchmark, memory, run, train


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code. The error policy of every subcommand: an input or model problem
    (`ValueError`, `FileNotFoundError`, the pack's `PackError`, each explained in its message) is one line on
    stderr and exit code 1; anything else (a bug, PyTorch's own errors) shows its traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="%(message)s")
    try:
        if getattr(args, "allocator", False):
            tune_for_long_runs()  # reuse freed pages instead of faulting them in again, part after part
        args.handler(args)
    except (ValueError, FileNotFoundError, PackError) as err:
        print(f"diffusion-vas: error: {err}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffusion-vas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (run, benchmark, train, memory):
        module.add_parsers(commands)
    return parser
