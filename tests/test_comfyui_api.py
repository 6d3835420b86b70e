"""The pack's VIDEO against the ``VideoInput`` of a real ComfyUI checkout, and core videos' trim windows as the pack
reads them.

Skipped unless ``COMFYUI_DIR`` points at a ComfyUI checkout (``.ci/run`` runs it for every checkout it finds). Runs
tests/comfyui_api_check.py in ``COMFYUI_PYTHON`` (default: this interpreter) with the checkout and this pack on
its path: every abstract method of core's ``VideoInput`` implemented, ``save_to`` taking every argument core's
does, and ``as_trimmed`` choosing the frames core's own ``VideoFromFile.as_trimmed`` decodes (ComfyUI 0.3x), for
windows inside, across and past the clip's end.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python pytest tests/test_comfyui_api.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

COMFYUI_DIR = Path(os.environ.get("COMFYUI_DIR", "")).expanduser()
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON", sys.executable)
pytestmark = pytest.mark.skipif(
    not os.environ.get("COMFYUI_DIR") or not (COMFYUI_DIR / "main.py").is_file(),
    reason="set COMFYUI_DIR to a ComfyUI checkout to check the pack against its API",
)


@pytest.fixture(scope="module")
def found(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("api")
    (folder / "diffusion_vas").symlink_to(REPO, target_is_directory=True)
    out = folder / "found.json"
    env = dict(os.environ, API_CHECK_OUT=str(out),
               PYTHONPATH=os.pathsep.join([str(COMFYUI_DIR), str(folder)]))
    result = subprocess.run([COMFYUI_PYTHON, str(REPO / "tests" / "comfyui_api_check.py")], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(out.read_text())


def test_the_pack_video_is_a_complete_video_input(found):
    assert found["is_video_input"], "FrameVideo must subclass ComfyUI's VideoInput"
    assert found["left_abstract"] == [], f"abstract methods of VideoInput not implemented: {found['left_abstract']}"
    assert found["save_to_missing"] == [], f"save_to lacks core's parameters {found['save_to_missing']}"
    assert (found["color_space"], found["bit_depth"]) == ("sRGB", 8)


def test_saved_videos_read_back_in_core_with_every_frame_and_the_rate(found):
    assert found["saved_frames"] == list(range(24)) and found["saved_rate"] == found["rate"] == "8"
    assert found["crf_sizes"][0] > found["crf_sizes"][1], "crf 0 must keep more than crf 51"


def test_trimming_takes_the_frames_core_takes(found):
    if not found["trims"]:
        pytest.skip("this ComfyUI's videos have no trim window (as_trimmed came after 0.8.0)")
    for window, frames in found["trims"].items():
        assert frames["ours"] == frames["core"], f"as_trimmed({window}): ours {frames['ours']}, core's {frames['core']}"
        assert frames["pack_reads_core"] == frames["core"], (
            f"a core video trimmed ({window}) read by the pack: {frames['pack_reads_core']}, core decodes "
            f"{frames['core']}")
