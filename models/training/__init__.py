"""Fine-tuning both Diffusion-VAS stages the authors' way (engine only, no ComfyUI).

``train(TrainingConfig(stage=..., base=..., data=..., out=...))`` runs in one process or under
``accelerate launch``; see `config` for every setting and `trainer` for the folders it writes. ``train`` is
imported on first use, so reading the settings does not import accelerate.
"""

from ..engine.options import parse_size  # the engine's one size rule, for the train command
from .config import TrainingConfig

__all__ = ["TrainingConfig", "parse_size", "train"]


def __getattr__(name):
    if name == "train":
        from .trainer import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
