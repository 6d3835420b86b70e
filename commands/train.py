"""``diffusion-vas train``: fine-tune either stage (the engine is `models.training`).

    diffusion-vas train --stage amodal --base stable-video-diffusion-img2vid-xt/ --data clips/ --out runs/amodal
    diffusion-vas train --stage content --base diffusion-vas-content-completion --data train.json
        --data-root /data/sailvos_cut_png --out runs/content --max-steps 20000
    accelerate launch --multi_gpu --num_processes 8 -m diffusion_vas.commands train ...   # one process per GPU
    accelerate launch --multi_gpu --num_processes 2 -m diffusion_vas.commands train --cpu ...   # CPU processes (gloo)

Several CPU processes need ``--multi_gpu`` and the command's own ``--cpu``: ``accelerate launch --cpu
--num_processes N`` starts one process only, and is refused. Without ``--max-steps`` the run is ``--epochs``
epochs (the authors' 20); the steps per epoch are logged at the start.

``--data`` is a clip folder or a folder of clips (``rgb/``, ``modal/``, ``amodal/``, optional ``depth/`` and
``amodal_rgb/``), a SAIL-VOS-format ``.json`` (with ``--data-root``) or ``synthetic[:N]``. The final checkpoint
is ``OUT/final`` in the published layout. Registered by `commands` through `add_parsers`; every default comes from
`TrainingConfig`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..models import settings as S
from .options import add_settings, values

logger = logging.getLogger("diffusion_vas")


def add_parsers(commands) -> None:
    """Adds ``train`` to the CLI's subcommands (flags from `models.settings.training_settings`); the handler is
    stored as ``args.handler``."""
    p = commands.add_parser("train", help="fine-tune stage 1 (amodal) or stage 2 (content) the authors' way",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_settings(p, S.training_settings())
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> None:
    from ..models import train

    final = train(config_from_args(args))
    logger.info("fine-tuned checkpoint: %s", final)


def config_from_args(args: argparse.Namespace):
    """The parsed ``train`` arguments as a `TrainingConfig`; published names of the base and depth models are
    resolved (downloaded on first use) to folders."""
    from ..models import TrainingConfig, resolve_checkpoint, resolve_depth_model

    if args.epochs is not None and args.max_steps is not None:
        raise ValueError("Give --epochs or --max-steps, not both (--max-steps fixes the step count, --epochs "
                         "derives it from the data).")
    given = values(args, S.training_settings())
    if given["epochs"] is None:
        del given["epochs"]  # the config's default number of epochs
    del given["quiet"]
    if not Path(given["base"]).expanduser().is_dir():
        given["base"] = str(resolve_checkpoint(given["base"]))
    if given["depth_model"] and not Path(given["depth_model"]).expanduser().exists():
        given["depth_model"] = str(resolve_depth_model(given["depth_model"]))
    return TrainingConfig(**given)
