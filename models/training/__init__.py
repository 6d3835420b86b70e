"""Fine-tuning both Diffusion-VAS stages the authors' way (engine only, no ComfyUI).

``train(TrainingConfig(stage=..., base=..., data=..., out=...))`` runs in one process or under
``accelerate launch``; see `config` for every setting and `trainer` for the folders it writes.
"""

from .config import TrainingConfig, parse_size
from .trainer import train

__all__ = ["TrainingConfig", "parse_size", "train"]
