"""Sampling settings: the one source of every default, from a node widget or CLI flag to the sampler.

The reference samples both stages with the same settings and two seeds (23 for amodal segmentation, 29 for
content completion, as in the authors' demo). `SamplingOptions.for_stage` gives a stage's defaults; node widgets,
CLI flags and `DiffusionVASPipeline.sample` all read their defaults from this dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

STAGES = ("amodal", "content")  # the stages' one name in code: stage 1 (amodal masks), stage 2 (content completion)
STAGE_SEEDS = {"amodal": 23, "content": 29}  # the reference demo's seeds
DEFAULT_SIZE = (256, 512)  # (height, width): the authors' demo and SAIL-VOS evaluation size


@dataclass
class SamplingOptions:
    """Sampling settings shared by both stages (defaults: the reference's)."""

    seed: int = STAGE_SEEDS["amodal"]
    num_inference_steps: int = 25
    guidance_scale: float = 1.5  # constant over the frames (the reference's min = max = 1.5)
    fps: int = 8  # frame-rate conditioning; the model sees fps - 1, as SVD was trained
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    decode_chunk_size: int = 8  # changes results slightly (temporal VAE decoding per chunk), as in the reference
    window: int = 25  # frames denoised together (trained on 25)
    overlap: int = 8  # frames shared by neighbouring windows
    object_batch_size: int = 1  # object-samples denoised in one UNet batch
    samples: int = 1  # independent samples per object; sample k is drawn exactly as a run with seed + k

    @classmethod
    def for_stage(cls, stage: str, **changes) -> "SamplingOptions":
        """The defaults of ``stage`` (``"amodal"`` or ``"content"``) with ``changes`` applied."""
        if stage not in STAGE_SEEDS:
            raise ValueError(f"stage must be one of {sorted(STAGE_SEEDS)}, got {stage!r}.")
        return cls(seed=STAGE_SEEDS[stage]).with_changes(**changes)

    def with_changes(self, **changes) -> "SamplingOptions":
        """A copy with ``changes`` (field names); unknown names raise naming the valid ones."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"unknown sampling setting(s) {unknown}; valid: {[f.name for f in fields(self)]}.")
        return replace(self, **changes)

    def validate(self) -> None:
        """Raises ValueError naming the setting that cannot be sampled with."""
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {self.num_inference_steps}.")
        if self.decode_chunk_size < 1:
            raise ValueError(f"decode_chunk_size must be at least 1, got {self.decode_chunk_size}.")
        if self.window < 2 or not 0 <= self.overlap < self.window:
            raise ValueError(f"Need window >= 2 and 0 <= overlap < window; got window={self.window}, "
                             f"overlap={self.overlap}.")
        if self.object_batch_size < 1:
            raise ValueError(f"object_batch_size must be at least 1, got {self.object_batch_size}.")
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}.")


def parse_size(text: str, what: str = "--size") -> tuple[int, int]:
    """``"HEIGHTxWIDTH"`` -> ``(height, width)``, positive multiples of 8 (64 for the published checkpoints)."""
    try:
        height, width = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"{what} {text!r}: write HEIGHTxWIDTH, e.g. 256x512.") from None
    if height <= 0 or width <= 0 or height % 8 or width % 8:
        raise ValueError(f"{what} {text!r}: both sides must be positive multiples of 8 (64 for the real model).")
    return height, width
