"""What the pack hands ComfyUI, without ComfyUI: VIDEO trimming and saving options, masks held as bool that compute as
float32 MASKs, trim windows of a video file, and the one-line refusal of a ComfyUI older than the floor.

tests/test_comfyui_api.py checks the same VIDEO against a real ComfyUI's ``VideoInput``.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import textwrap

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from diffusion_vas.models.io.frame_source import VideoFrames
from diffusion_vas.nodes import video
from diffusion_vas.nodes.bool_mask import BoolMask, as_mask, bool_values
from diffusion_vas.nodes.comfy_version import MIN_COMFYUI, version_problem, version_tuple


def grey_clip(frames: int = 24) -> torch.Tensor:
    """``[frames, 16, 24, 3]`` float, frame k at grey level (10 k + 5) / 255."""
    levels = (torch.arange(frames, dtype=torch.float32) * 10 + 5) / 255
    return levels[:, None, None, None].expand(frames, 16, 24, 3).contiguous()


def shown(clip) -> list[int]:
    """Which frames of `grey_clip` a VIDEO holds."""
    if clip is None:
        return None
    frames = torch.cat(list(clip.frames.read(clip.parts()))).float()
    return [round((float(f.mean()) * (1 if f.max() > 1 else 255) - 5) / 10) for f in frames]


@pytest.mark.parametrize("window, expected", [
    ((0, 0, False), list(range(24))),
    ((1, 0, False), list(range(8, 24))),          # frame k is shown at k / 8 s
    ((0.5, 1, False), list(range(4, 12))),
    ((1.1, 0.5, False), [9, 10, 11, 12]),          # from the first frame at or after 1.1 s, before 1.6 s
    ((-1, 0, False), list(range(16, 24))),         # the last second
    ((2, 5, False), list(range(16, 24))),          # past the end: what is left
    ((2, 5, True), None),                          # strict: fewer seconds than asked
    ((3, 0, False), None),                         # nothing left
    ((0.25, 0.25, True), [2, 3]),
])
def test_as_trimmed_takes_the_frames_shown_in_the_window(window, expected):
    """The windows and frames tests/test_comfyui_api.py found core's VideoFromFile to decode (ComfyUI 0.33.0)."""
    clip = video.frames_video(grey_clip(), 8)
    assert shown(clip.as_trimmed(*window)) == expected


def test_trimmed_stage_results_keep_their_colours_and_masks_follow_file_selections(tmp_path):
    rgb = grey_clip(12)[None]
    alpha = torch.ones(1, 12, 16, 24, dtype=torch.bool)
    clip = video.objects_video(rgb, alpha, 4).as_trimmed(1, 1)  # frames 4..7
    assert shown(clip) == [4, 5, 6, 7]
    (part, colours, shape), = clip.content.parts([slice(0, 4)])
    assert part == slice(0, 4) and torch.equal(colours, rgb[:, 4:8]) and shape.shape == (1, 4, 16, 24)
    path = tmp_path / "clip.mp4"
    video.frames_video(grey_clip(), 8).save_to(str(path), crf=0)
    selected = video.FrameVideo(VideoFrames(path), 8).as_trimmed(0.5, 1)
    assert isinstance(selected.frames, VideoFrames) and selected.frames.indices == list(range(4, 12))


def test_save_to_takes_core_options_and_refuses_what_it_cannot_write(tmp_path):
    clip = video.frames_video(grey_clip(), 8)
    sizes = []
    for crf in (0, 51):
        clip.save_to(str(tmp_path / f"{crf}.mp4"), format="auto", codec="auto", metadata={"prompt": {}},
                     bit_depth=8, crf=crf, color_space="sRGB")
        sizes.append((tmp_path / f"{crf}.mp4").stat().st_size)
    assert sizes[0] > sizes[1]
    with av.open(str(tmp_path / "0.mp4")) as container:
        assert container.streams.video[0].frames == 24
    with pytest.raises(ValueError, match="8-bit.*bit_depth 10"):
        clip.save_to(str(tmp_path / "x.mp4"), bit_depth=10)
    with pytest.raises(ValueError, match="sRGB.*'HDR'"):
        clip.save_to(str(tmp_path / "x.mp4"), color_space="HDR")
    assert (clip.get_color_space(), clip.get_bit_depth()) == ("sRGB", 8)


def test_a_trim_window_of_a_file_selects_frames_by_presentation_time(tmp_path):
    path = tmp_path / "clip.mp4"
    video.frames_video(grey_clip(), 8).save_to(str(path), crf=0)
    frames = VideoFrames(path)
    assert frames.within(0, 0).indices == list(range(24))
    assert frames.within(1.1, 0.5).indices == [9, 10, 11, 12]
    assert frames.select(1, 0, 2).within(1, 1).indices == [9, 11, 13, 15]  # within the selection
    with pytest.raises(ValueError, match="no frame from 5 s"):
        frames.within(5, 1)

    class CoreVideo:  # what core Load Video hands on in ComfyUI 0.3x: a file and a trim window
        def get_stream_source(self):
            return str(path)

        def get_active_trim_window(self):
            return 2.0, 0.5

    assert video.frame_sequence(CoreVideo(), "video").indices == [16, 17, 18, 19]


def test_a_mask_held_as_bool_computes_as_float32():
    """What core mask nodes do with a MASK (Invert, Threshold, Grow's reshape and numpy, Join Image with Alpha's
    resize and concatenation, Mask To Image's reshape) gives exactly what the float32 mask gives."""
    bits = torch.rand(6, 10, 12) > 0.5
    ref = bits.float()
    with torch.inference_mode():
        mask = as_mask(bits)
        assert isinstance(mask, torch.Tensor) and mask.dtype == torch.float32 and mask.shape == (6, 10, 12)
        assert bool_values(mask) is bits and bool_values(ref) is None
        assert torch.equal(1.0 - mask, 1.0 - ref)
        assert torch.equal((mask > 0.5).float(), ref)
        assert np.array_equal(mask.reshape((-1, 10, 12))[3].numpy(), ref[3].numpy())
        assert np.array_equal(mask.numpy(), ref.numpy())
        resized = F.interpolate(mask.reshape((-1, 1, 10, 12)), size=(5, 6), mode="bilinear")
        assert torch.equal(resized, F.interpolate(ref.reshape((-1, 1, 10, 12)), size=(5, 6), mode="bilinear"))
        image = torch.rand(6, 10, 12, 3)
        assert torch.equal(torch.cat((image, mask.unsqueeze(-1)), dim=-1), torch.cat((image, ref[..., None]), -1))
        assert torch.equal(mask.reshape((-1, 1, 10, 12)).movedim(1, -1).expand(-1, -1, -1, 3),
                           ref.reshape((-1, 1, 10, 12)).movedim(1, -1).expand(-1, -1, -1, 3))
        assert torch.equal(mask[2], ref[2]) and torch.equal(mask[1:4], ref[1:4])  # only those frames made
        assert type(mask[1:4]) is torch.Tensor and type(1.0 - mask) is torch.Tensor
        assert [torch.equal(a, b) for a, b in zip(mask, ref)] == [True] * 6
        assert torch.equal(pickle.loads(pickle.dumps(mask)), ref)
    with pytest.raises(TypeError, match="bool tensor"):
        BoolMask(ref)


def test_versions_older_than_the_floor_are_refused_in_one_line():
    assert version_tuple("0.33.0") == (0, 33, 0) and version_tuple("0.9.1rc2") == (0, 9, 1)
    assert version_problem(MIN_COMFYUI) is None and version_problem("0.33.0") is None
    assert version_problem("1.0") is None and version_problem("nightly") is None
    for old in ("0.3.45", "0.7.9"):
        line = version_problem(old)
        assert f"needs ComfyUI {MIN_COMFYUI} or newer" in line and f"this ComfyUI is {old}" in line
        assert "\n" not in line
    assert "without comfyui_version.py" in version_problem(None)


def test_the_pyproject_floor_is_the_packs(tmp_path):
    import tomllib

    comfy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["comfy"]
    assert comfy.get("requires-comfyui") == f">={MIN_COMFYUI}"


def test_an_older_comfyui_loads_no_node_and_logs_one_line(tmp_path):
    """The pack imported as ComfyUI imports it (its folder as a package), in a ComfyUI 0.7.0 made of stand-in
    modules: no node, no traceback, one error line naming both versions."""
    fake = tmp_path / "comfy_root"
    (fake / "comfy").mkdir(parents=True)
    (fake / "comfyui_version.py").write_text('__version__ = "0.7.0"\n')
    (fake / "folder_paths.py").write_text("")
    (fake / "comfy" / "__init__.py").write_text("")
    for name in ("model_management", "utils", "model_patcher"):
        (fake / "comfy" / f"{name}.py").write_text("ModelPatcher = object\n")
    script = textwrap.dedent(f"""
        import importlib.util, logging, sys
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        sys.path.insert(0, {str(fake)!r})
        spec = importlib.util.spec_from_file_location("diffusion-vas", {str(REPO / "__init__.py")!r},
                                                      submodule_search_locations=[{str(REPO)!r}])
        module = importlib.util.module_from_spec(spec)
        sys.modules["diffusion-vas"] = module
        spec.loader.exec_module(module)
        print("NODES", len(module.NODE_CLASS_MAPPINGS), len(module.NODE_DISPLAY_NAME_MAPPINGS))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NODES 0 0" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "needs ComfyUI 0.8.0 or newer" in errors[0] and "0.7.0" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
