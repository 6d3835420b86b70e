"""Run by tests/test_comfyui_api.py inside a ComfyUI checkout's Python (``API_CHECK_OUT=FILE python
comfyui_api_check.py``):
the pack's VIDEO against core's ``VideoInput`` of that ComfyUI, and the trim window of core's own videos.

Writes one JSON object of findings to ``FILE``; the test asserts on them, so a failure names what differs.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

sys.argv = [sys.argv[0], "--cpu"]  # ComfyUI's model management reads its flags at import
import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()

import av  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from comfy_api.v0_0_2 import Input, InputImpl  # noqa: E402

from diffusion_vas.nodes import video  # noqa: E402

FRAMES, FPS = 24, 8
LEVELS = np.arange(FRAMES) * 10 + 5  # frame k is grey level 10 k + 5: told apart after lossy coding


def write_clip(path: Path) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.options = {"crf": "0"}
        for level in LEVELS:
            image = np.full((32, 48, 3), level, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def frame_indices(images: torch.Tensor) -> list[int]:
    """Which of the clip's frames each decoded frame ``[t, H, W, 3]`` (0..1 or 0..255) is."""
    values = images.float().mean(dim=(1, 2, 3)).numpy()
    values = values * 255 if values.max() <= 1.0 else values
    return [int(np.abs(LEVELS - v).argmin()) for v in values]


def main(out: Path) -> None:
    found: dict = {}
    base = Input.Video
    found["abstract"] = sorted(getattr(base, "__abstractmethods__", ()))
    ours = video.frames_video(torch.from_numpy(np.broadcast_to(LEVELS[:, None, None, None] / 255,
                                                               (FRAMES, 32, 48, 3)).astype(np.float32)), FPS)
    found["is_video_input"] = isinstance(ours, base)
    found["left_abstract"] = sorted(getattr(type(ours), "__abstractmethods__", ()))
    core_save = inspect.signature(base.save_to).parameters
    found["save_to_missing"] = sorted(set(core_save) - set(inspect.signature(type(ours).save_to).parameters))
    found["color_space"], found["bit_depth"] = ours.get_color_space(), ours.get_bit_depth()

    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        write_clip(clip)
        trims = {}
        core_trims = hasattr(InputImpl.VideoFromFile, "as_trimmed")  # ComfyUI 0.3x; 0.8.0's videos have no trim
        for start, duration, strict in [(0, 0, False), (1, 0, False), (0.5, 1, False), (1.1, 0.5, False),
                                        (-1, 0, False), (2, 5, False), (2, 5, True), (0.25, 0.25, True)]:
            if not core_trims:
                break
            core = InputImpl.VideoFromFile(str(clip)).as_trimmed(start, duration, strict_duration=strict)
            mine = ours.as_trimmed(start, duration, strict_duration=strict)
            core_frames = None if core is None else frame_indices(core.get_components().images)
            my_frames = None if mine is None else frame_indices(torch.cat(list(mine.frames.read(mine.parts()))))
            read = None if core is None else list(video.frame_sequence(core, "video").indices)
            trims[f"{start},{duration},{strict}"] = {"core": core_frames, "ours": my_frames,
                                                     "pack_reads_core": read}
        found["trims"] = trims
        for crf in (0, 51):
            ours.save_to(str(Path(folder) / f"crf{crf}.mp4"), crf=crf)
        found["crf_sizes"] = [(Path(folder) / f"crf{crf}.mp4").stat().st_size for crf in (0, 51)]
        saved = InputImpl.VideoFromFile(str(Path(folder) / "crf0.mp4"))
        found["saved_frames"] = frame_indices(saved.get_components().images)
        found["saved_rate"] = str(saved.get_frame_rate())
    found["rate"] = str(Fraction(ours.get_frame_rate()))
    out.write_text(json.dumps(found))


if __name__ == "__main__":
    main(Path(os.environ["API_CHECK_OUT"]))
