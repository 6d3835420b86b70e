"""Real shots end to end: a video (or folder of frames) and masks in, result files out, streamed and resumable.

`run_shot` is what ``diffusion-vas run`` does; see `run` for the passes and `outputs` for the files."""

from .run import DEFAULT_WRITE, WRITE_CHOICES, ShotResult, ShotSettings, run_shot

__all__ = ["DEFAULT_WRITE", "WRITE_CHOICES", "ShotResult", "ShotSettings", "run_shot"]
